import type { Migration, MigrationProvider } from 'kysely/migration';
import * as core from './2026-11-22-01-core.ts';
import * as connections from './2026-11-22-05-connections.ts';
import * as devices from './2026-11-22-04-devices.ts';
import * as sso from './2026-11-22-03-sso.ts';

/**
 * Every migration, by date-prefixed name. Listed explicitly (not read from the folder)
 * so the set is fixed at build time; Kysely applies them in name order.
 */
const migrations: Record<string, Migration> = {
  '2026-11-22-01-core': core,
  '2026-11-22-03-sso': sso,
  '2026-11-22-04-devices': devices,
  '2026-11-22-05-connections': connections,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
