import type { Kysely } from 'kysely';

// Upstream OAuth connections (SPEC §6). Migrations never import application code: they
// describe tables as they were on their date. Secrets are sealed text (SecretBox).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('connections')
    .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('auth', 'varchar(20)', (c) => c.notNull())
    .addColumn('scope', 'text')
    // Static bearer token, or the admin-supplied client secret: sealed.
    .addColumn('secret', 'text')
    // Client registration and the discovered server metadata: sealed JSON.
    .addColumn('client', 'text')
    // Bumped on every change of the client, so concurrent re-registrations can tell who won.
    .addColumn('revision', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('connection_tokens')
    .addColumn('connection_name', 'varchar(64)', (c) => c.notNull().references('connections.name').onDelete('cascade'))
    .addColumn('user_name', 'varchar(200)', (c) => c.notNull().references('users.name').onDelete('cascade').onUpdate('cascade'))
    // access_token, refresh_token, token_type, scope: sealed JSON.
    .addColumn('tokens', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('has_refresh', 'integer', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('connection_tokens_pk', ['connection_name', 'user_name'])
    .execute();
  await db.schema.createIndex('connection_tokens_user').on('connection_tokens').column('user_name').execute();

  // Authorizations in progress: the callback may land on any node.
  await db.schema
    .createTable('connection_authorizations')
    // SHA-256 of the state: a database read cannot be replayed as a callback.
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('connection_name', 'varchar(64)', (c) => c.notNull().references('connections.name').onDelete('cascade'))
    .addColumn('user_name', 'varchar(200)', (c) => c.notNull().references('users.name').onDelete('cascade').onUpdate('cascade'))
    // PKCE verifier, redirect URI, client id: sealed JSON.
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('return_to', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('connection_authorizations_expiry').on('connection_authorizations').column('expires_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['connection_authorizations', 'connection_tokens', 'connections']) {
    await db.schema.dropTable(table).execute();
  }
}
