import type { Kysely } from 'kysely';

// Migrations never import application code: they describe tables as they were on their date.
export async function up(db: Kysely<any>): Promise<void> {
  // Which provider account (provider, subject) is which gateway user.
  await db.schema
    .createTable('sso_identities')
    .addColumn('provider', 'varchar(100)', (c) => c.notNull())
    .addColumn('subject', 'varchar(255)', (c) => c.notNull())
    .addColumn('user_name', 'varchar(200)', (c) => c.notNull().references('users.name').onDelete('cascade').onUpdate('cascade'))
    .addColumn('email', 'varchar(320)')
    .addColumn('display_name', 'varchar(300)')
    /** The picture URL last fetched, so an unchanged picture is not fetched at every login. */
    .addColumn('picture_url', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_login_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('sso_identities_pk', ['provider', 'subject'])
    .execute();
  await db.schema.createIndex('sso_identities_user').on('sso_identities').column('user_name').execute();

  // Provider token sets, sealed with the secret box; one per gateway session created by SSO.
  await db.schema
    .createTable('sso_sessions')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('provider', 'varchar(100)', (c) => c.notNull())
    .addColumn('subject', 'varchar(255)', (c) => c.notNull())
    .addColumn('user_name', 'varchar(200)', (c) => c.notNull().references('users.name').onDelete('cascade').onUpdate('cascade'))
    .addColumn('session_id', 'varchar(64)', (c) => c.references('sessions.id').onDelete('cascade'))
    .addColumn('sid', 'varchar(500)')
    .addColumn('tokens', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
    /** A node refreshing the tokens holds this lease so other nodes wait instead of refreshing too. */
    .addColumn('refreshing_until', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sso_sessions_user').on('sso_sessions').columns(['user_name', 'provider', 'created_at']).execute();
  await db.schema.createIndex('sso_sessions_session').on('sso_sessions').column('session_id').execute();
  await db.schema.createIndex('sso_sessions_sid').on('sso_sessions').columns(['provider', 'sid']).execute();

  // One-time decisions (the first SSO user's admin grant): a primary key makes them race-free.
  await db.schema
    .createTable('sso_markers')
    .addColumn('key', 'varchar(100)', (c) => c.primaryKey())
    .addColumn('value', 'varchar(300)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['sso_markers', 'sso_sessions', 'sso_identities']) await db.schema.dropTable(table).execute();
}
