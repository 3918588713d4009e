import type { Kysely } from 'kysely';

// Devices (SPEC §7). Migrations never import application code: they describe tables as
// they were on their date. The gateway's own SSH client key lives in `settings`, sealed.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('devices')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(100)', (c) => c.notNull().unique())
    // JSON array of role names; a principal with any of them may open a terminal.
    .addColumn('allowed_roles', 'text', (c) => c.notNull())
    .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
    // Public halves only: the Ed25519 JWK that verifies connect assertions, and the
    // OpenSSH line of the pinned SSH host key. Null until the device enrolls.
    .addColumn('identity_key', 'text')
    .addColumn('host_key', 'text')
    // SHA-256 (hex) of the one-time enrollment token: a database read cannot enroll a device.
    .addColumn('enrollment_token_hash', 'varchar(64)', (c) => c.unique())
    .addColumn('enrollment_expires_at', 'bigint')
    .addColumn('enrollment_used', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('enrolled_at', 'bigint')
    .addColumn('last_seen_at', 'bigint')
    .addColumn('agent_version', 'varchar(100)')
    .addColumn('hostname', 'varchar(255)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('devices').execute();
}
