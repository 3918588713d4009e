import { mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { PortcullisError } from '../errors.ts';
import { migrationProvider } from './migrations/index.ts';
import type { Database } from './schema.ts';
import { SecretBox, loadSecretKey } from './secret-box.ts';
import { openSqlite } from './sqlite-database.ts';

// BIGINT columns hold epoch milliseconds, well inside a double's exact range.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export type Dialect = 'sqlite' | 'postgres';

/** The store: one Kysely query layer over SQLite or PostgreSQL, plus the secret box. */
export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  readonly secrets: SecretBox;
  /** Cheap round trip for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreOptions {
  database: string;
  dataDir: string;
  secretKey?: string | undefined;
}

/**
 * Opens the database named by `database` (`sqlite:PATH` or `postgres://…`) and runs
 * pending migrations. A `schema` query parameter on a PostgreSQL URL selects a schema
 * (created if missing) — tests use it to isolate runs in one database.
 */
export async function openStore(options: StoreOptions): Promise<Store> {
  const secrets = new SecretBox(loadSecretKey(options.secretKey, options.dataDir));
  let db: Kysely<Database>;
  let dialect: Dialect;
  // Kysely looks for its bookkeeping tables in every schema it can see: name ours, or
  // another schema's (another app's, another test run's) would be taken for them.
  let migrationTableSchema: string | undefined;
  if (options.database.startsWith('sqlite:')) {
    const file = path.resolve(options.database.slice('sqlite:'.length));
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const { database } = openSqlite(file);
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
    dialect = 'sqlite';
  } else {
    const url = new URL(options.database);
    const schema = url.searchParams.get('schema');
    url.searchParams.delete('schema');
    // pg falls back to $USER, which service environments often lack.
    if (!url.username) url.username = userInfo().username;
    if (schema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new PortcullisError(500, 'store_config', 'the schema parameter must be a plain lower-case identifier');
    }
    if (schema) {
      const admin = new pg.Client({ connectionString: url.toString() });
      await admin.connect();
      try {
        await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      } finally {
        await admin.end();
      }
    }
    const pool = new pg.Pool({
      connectionString: url.toString(),
      max: 10,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    pool.on('error', () => {
      // An idle client lost its connection; the pool replaces it. Queries report their own errors.
    });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    migrationTableSchema = schema ?? 'public';
    dialect = 'postgres';
  }

  const migrator = new Migrator({ db, provider: migrationProvider, ...(migrationTableSchema ? { migrationTableSchema } : {}) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error');
    throw new PortcullisError(500, 'store_migration_failed', `migration ${failed?.migrationName ?? '?'} failed: ${String((error as Error).message ?? error)}`, { cause: error });
  }

  return {
    db,
    dialect,
    secrets,
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    close: () => db.destroy(),
  };
}
