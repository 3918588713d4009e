import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import pg from 'pg';
import { loadConfig, type ConfigInput } from '../../src/config/index.ts';
import { createGateway, type Capability, type Gateway } from '../../src/server/index.ts';

export const ADMIN_PASSWORD = 'admin-password-for-tests';
export const PG_URL = 'postgres://127.0.0.1:5432/test';

export interface TestGateway {
  gateway: Gateway;
  /** Base URL, e.g. http://127.0.0.1:43121 */
  url: string;
  dataDir: string;
  /** `Authorization` header value for the built-in admin. */
  adminAuth: string;
  /** Stops the gateway; `keepData` leaves the data directory for a restart. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

export function basic(name: string, password: string): string {
  return 'Basic ' + Buffer.from(`${name}:${password}`).toString('base64');
}

/** A fresh PostgreSQL schema name: each test run gets its own tables in database `test`. */
export function freshPgSchema(): string {
  return `t_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

export async function dropPgSchema(schema: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port: 5432, database: 'test', user: userInfo().username });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/**
 * Starts a real gateway on 127.0.0.1 port 0 with a temporary data directory (SQLite by
 * default; pass `database` for PostgreSQL). Logs are silent unless PORTCULLIS_TEST_LOG is set.
 */
export async function startTestGateway(
  options: { config?: ConfigInput; dataDir?: string; capabilities?: Capability[]; now?: () => number } = {},
): Promise<TestGateway> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'portcullis-test-'));
  const config = loadConfig({
    overrides: {
      listen: '127.0.0.1:0',
      dataDir,
      outbound: { allowPrivateAddresses: true },
      ...options.config,
    },
  });
  const logger = pino({ level: process.env.PORTCULLIS_TEST_LOG ?? 'silent' });
  const gateway = await createGateway(config, {
    adminPassword: ADMIN_PASSWORD,
    logger,
    ...(options.capabilities ? { capabilities: options.capabilities } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  const url = await gateway.listen();
  return {
    gateway,
    url,
    dataDir,
    adminAuth: basic('admin', ADMIN_PASSWORD),
    async close(closeOptions = {}) {
      await gateway.close();
      if (!closeOptions.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
