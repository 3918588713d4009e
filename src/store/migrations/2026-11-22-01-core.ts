import type { Kysely } from 'kysely';

// Migrations never import application code: they describe tables as they were on their date.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('name', 'varchar(200)', (c) => c.primaryKey())
    .addColumn('password_hash', 'text')
    .addColumn('roles', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('email', 'varchar(320)', (c) => c.unique())
    .addColumn('picture', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('groups')
    .addColumn('name', 'varchar(200)', (c) => c.primaryKey())
    .addColumn('roles', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('group_members')
    .addColumn('group_name', 'varchar(200)', (c) => c.notNull().references('groups.name').onDelete('cascade').onUpdate('cascade'))
    .addColumn('user_name', 'varchar(200)', (c) => c.notNull().references('users.name').onDelete('cascade').onUpdate('cascade'))
    .addPrimaryKeyConstraint('group_members_pk', ['group_name', 'user_name'])
    .execute();
  await db.schema.createIndex('group_members_user').on('group_members').column('user_name').execute();

  await db.schema
    .createTable('sessions')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('user_name', 'varchar(200)', (c) => c.notNull().references('users.name').onDelete('cascade').onUpdate('cascade'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('user_agent', 'text')
    .addColumn('ip', 'varchar(64)')
    .addColumn('sso_provider', 'varchar(100)')
    .addColumn('sso_sid', 'varchar(500)')
    .execute();
  await db.schema.createIndex('sessions_user').on('sessions').column('user_name').execute();
  await db.schema.createIndex('sessions_sso').on('sessions').columns(['sso_provider', 'sso_sid']).execute();

  await db.schema
    .createTable('settings')
    .addColumn('key', 'varchar(200)', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('signing_keys')
    .addColumn('kid', 'varchar(100)', (c) => c.primaryKey())
    .addColumn('algorithm', 'varchar(20)', (c) => c.notNull())
    .addColumn('private_key', 'text', (c) => c.notNull())
    .addColumn('public_jwk', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('retired_at', 'bigint')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['signing_keys', 'settings', 'sessions', 'group_members', 'groups', 'users']) {
    await db.schema.dropTable(table).execute();
  }
}
