import type { Kysely } from 'kysely';
import type { Database, SecretBox } from '../store/index.ts';

/** Row shape of the devices table (migration 2026-11-22-04-devices). */
export type DeviceTables = {
  devices: {
    id: string;
    name: string;
    /** JSON array of role names. */
    allowed_roles: string;
    disabled: number;
    /** Public Ed25519 JWK (JSON) that verifies connect assertions; null until enrolled. */
    identity_key: string | null;
    /** OpenSSH public key line of the pinned SSH host key; null until enrolled. */
    host_key: string | null;
    enrollment_token_hash: string | null;
    enrollment_expires_at: number | null;
    enrollment_used: number;
    enrolled_at: number | null;
    last_seen_at: number | null;
    agent_version: string | null;
    hostname: string | null;
    created_at: number;
    updated_at: number;
  };
};

export type DeviceRow = DeviceTables['devices'];
type Db = Kysely<Database & DeviceTables>;

/** `settings` key of the gateway's SSH client key (sealed JSON `{private, public}`). */
const GATEWAY_KEY_SETTING = 'devices.gateway_ssh_key';
const GATEWAY_KEY_CONTEXT = 'devices:gateway-ssh-key';

/** The devices table and the gateway key, nothing else: queries only, no policy. */
export class DeviceStore {
  readonly db: Db;
  readonly #secrets: SecretBox;

  constructor(db: Kysely<Database>, secrets: SecretBox) {
    this.db = db.withTables<DeviceTables>();
    this.#secrets = secrets;
  }

  list(): Promise<DeviceRow[]> {
    return this.db.selectFrom('devices').selectAll().orderBy('name').execute();
  }

  async get(id: string): Promise<DeviceRow | undefined> {
    return this.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async byName(name: string): Promise<DeviceRow | undefined> {
    return this.db.selectFrom('devices').selectAll().where('name', '=', name).executeTakeFirst();
  }

  async byTokenHash(hash: string): Promise<DeviceRow | undefined> {
    return this.db.selectFrom('devices').selectAll().where('enrollment_token_hash', '=', hash).executeTakeFirst();
  }

  async insert(row: DeviceRow): Promise<void> {
    await this.db.insertInto('devices').values(row).execute();
  }

  /** Returns whether a row was updated. */
  async update(id: string, values: Partial<DeviceRow>): Promise<boolean> {
    const result = await this.db.updateTable('devices').set(values).where('id', '=', id).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async remove(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('devices').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /**
   * Spends an enrollment token and stores the device's keys in one statement, so two
   * agents racing with the same token cannot both enroll. Returns the device, or
   * undefined when the token is unknown, used or expired (the caller finds out which).
   */
  async enroll(hash: string, now: number, values: Partial<DeviceRow>): Promise<DeviceRow | undefined> {
    const result = await this.db
      .updateTable('devices')
      .set({ ...values, enrollment_used: 1 })
      .where('enrollment_token_hash', '=', hash)
      .where('enrollment_used', '=', 0)
      .where('enrollment_expires_at', '>', now)
      .where('disabled', '=', 0)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return undefined;
    return this.byTokenHash(hash);
  }

  /** Marks devices as seen now; returns the ids that still exist and are enabled. */
  async touch(ids: readonly string[], now: number): Promise<Set<string>> {
    const live = new Set<string>();
    // Bounded IN lists: PostgreSQL and SQLite both cap bound parameters.
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      await this.db.updateTable('devices').set({ last_seen_at: now }).where('id', 'in', chunk).execute();
      const rows = await this.db.selectFrom('devices').select('id').where('id', 'in', chunk).where('disabled', '=', 0).execute();
      for (const r of rows) live.add(r.id);
    }
    return live;
  }

  /**
   * The gateway's SSH client key, created on first use. Two nodes starting at once may
   * both generate one: the first insert wins and both read it back.
   */
  async gatewayKey(generate: () => { private: string; public: string }): Promise<{ private: string; public: string }> {
    const read = async () => {
      const row = await this.db.selectFrom('settings').select('value').where('key', '=', GATEWAY_KEY_SETTING).executeTakeFirst();
      return row === undefined ? undefined : (JSON.parse(this.#secrets.open(row.value, GATEWAY_KEY_CONTEXT)) as { private: string; public: string });
    };
    const existing = await read();
    if (existing !== undefined) return existing;
    const key = generate();
    await this.db
      .insertInto('settings')
      .values({ key: GATEWAY_KEY_SETTING, value: this.#secrets.seal(JSON.stringify(key), GATEWAY_KEY_CONTEXT) })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return (await read())!;
  }
}
