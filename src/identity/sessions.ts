import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Bus } from '../cluster/index.ts';
import type { Database } from '../store/index.ts';

export interface SessionRecord {
  readonly id: string;
  readonly userName: string;
  readonly createdAt: number;
  readonly lastSeenAt: number;
  readonly expiresAt: number;
  readonly userAgent: string | null;
  readonly ip: string | null;
  readonly ssoProvider: string | null;
  readonly ssoSid: string | null;
}

interface Cached {
  record: SessionRecord | null;
  fetchedAt: number;
}

/** How often last_seen_at is written (a write per request would be waste). */
const TOUCH_INTERVAL_MS = 60_000;

const hashToken = (token: string) => createHash('sha256').update(token).digest('base64url');

/**
 * Server-side browser sessions. The cookie holds a random token; the store keeps only its
 * hash. Lookups are cached for a few seconds per node; ending a session is published on
 * the bus so every node forgets it at once.
 */
export class SessionManager {
  readonly #db: Kysely<Database>;
  readonly #bus: Bus;
  readonly #ttlMs: number;
  readonly #cacheTtlMs: number;
  readonly #now: () => number;
  /** Keyed by the cookie token itself, so a hit costs no hashing. */
  readonly #cache = new Map<string, Cached>();
  /** Session id → cached token, to drop an entry when the session ends anywhere. */
  readonly #tokenById = new Map<string, string>();
  readonly #unsubscribe: () => void;

  constructor(options: { db: Kysely<Database>; bus: Bus; ttlMs: number; cacheTtlMs: number; now?: () => number }) {
    this.#db = options.db;
    this.#bus = options.bus;
    this.#ttlMs = options.ttlMs;
    this.#cacheTtlMs = options.cacheTtlMs;
    this.#now = options.now ?? Date.now;
    this.#unsubscribe = this.#bus.subscribe((message) => {
      if (message.type === 'session-ended') this.#forget(message.sessionId);
      if (message.type === 'user-ended') {
        for (const entry of this.#cache.values()) if (entry.record?.userName === message.userName) this.#forget(entry.record.id);
      }
    });
  }

  close(): void {
    this.#unsubscribe();
  }

  async create(userName: string, meta: { userAgent?: string | undefined; ip?: string | undefined; ssoProvider?: string; ssoSid?: string | undefined }): Promise<{ token: string; record: SessionRecord }> {
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    const record: SessionRecord = {
      id: hashToken(token),
      userName,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.#ttlMs,
      userAgent: meta.userAgent?.slice(0, 300) ?? null,
      ip: meta.ip ?? null,
      ssoProvider: meta.ssoProvider ?? null,
      ssoSid: meta.ssoSid ?? null,
    };
    await this.#db
      .insertInto('sessions')
      .values({
        id: record.id,
        user_name: userName,
        created_at: now,
        last_seen_at: now,
        expires_at: record.expiresAt,
        user_agent: record.userAgent,
        ip: record.ip,
        sso_provider: record.ssoProvider,
        sso_sid: record.ssoSid,
      })
      .execute();
    return { token, record };
  }

  /** The live session behind a cookie token, or null (unknown, expired or ended). */
  async resolve(token: string): Promise<SessionRecord | null> {
    if (token.length !== 43) return null;
    const now = this.#now();
    let entry = this.#cache.get(token);
    if (!entry || now - entry.fetchedAt > this.#cacheTtlMs) {
      const id = hashToken(token);
      const row = await this.#db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
      entry = { record: row ? toRecord(row) : null, fetchedAt: now };
      if (this.#cache.size > 50_000) {
        this.#cache.clear();
        this.#tokenById.clear();
      }
      this.#cache.set(token, entry);
      this.#tokenById.set(id, token);
    }
    const record = entry.record;
    if (!record || record.expiresAt <= now) return null;
    if (now - record.lastSeenAt > TOUCH_INTERVAL_MS) {
      entry.record = { ...record, lastSeenAt: now };
      // Best effort and off the request's path: a lost touch only makes "last seen" older.
      this.#db.updateTable('sessions').set({ last_seen_at: now }).where('id', '=', record.id).execute().catch(() => {});
    }
    return entry.record;
  }

  #forget(id: string): void {
    const token = this.#tokenById.get(id);
    if (token !== undefined) {
      this.#cache.delete(token);
      this.#tokenById.delete(id);
    }
  }

  async listForUser(userName: string): Promise<SessionRecord[]> {
    const rows = await this.#db
      .selectFrom('sessions')
      .selectAll()
      .where('user_name', '=', userName)
      .where('expires_at', '>', this.#now())
      .orderBy('created_at', 'desc')
      .execute();
    return rows.map(toRecord);
  }

  /** Ends one session everywhere. Returns whether it existed (and belonged to `userName`, if given). */
  async end(id: string, reason: string, userName?: string): Promise<boolean> {
    let query = this.#db.deleteFrom('sessions').where('id', '=', id);
    if (userName !== undefined) query = query.where('user_name', '=', userName);
    const row = await this.#db.selectFrom('sessions').select('user_name').where('id', '=', id).executeTakeFirst();
    const result = await query.executeTakeFirst();
    if (Number(result.numDeletedRows) === 0 || !row) return false;
    await this.#bus.publish({ type: 'session-ended', sessionId: id, userName: row.user_name, reason });
    return true;
  }

  /** Ends every session of a user (sign out everywhere, back-channel logout by `sub`). */
  async endAllForUser(userName: string, reason: string, filter?: { ssoProvider?: string; ssoSid?: string }): Promise<number> {
    let select = this.#db.selectFrom('sessions').select('id').where('user_name', '=', userName);
    if (filter?.ssoProvider) select = select.where('sso_provider', '=', filter.ssoProvider);
    if (filter?.ssoSid) select = select.where('sso_sid', '=', filter.ssoSid);
    const ids = (await select.execute()).map((r) => r.id);
    for (const id of ids) await this.end(id, reason);
    return ids.length;
  }

  /** Sessions created through an SSO provider's session id (back-channel logout by `sid`). */
  async findBySsoSid(provider: string, sid: string): Promise<SessionRecord[]> {
    const rows = await this.#db.selectFrom('sessions').selectAll().where('sso_provider', '=', provider).where('sso_sid', '=', sid).execute();
    return rows.map(toRecord);
  }

  async purgeExpired(): Promise<void> {
    await this.#db.deleteFrom('sessions').where('expires_at', '<=', this.#now()).execute();
  }
}

function toRecord(row: Database['sessions']): SessionRecord {
  return {
    id: row.id,
    userName: row.user_name,
    createdAt: Number(row.created_at),
    lastSeenAt: Number(row.last_seen_at),
    expiresAt: Number(row.expires_at),
    userAgent: row.user_agent,
    ip: row.ip,
    ssoProvider: row.sso_provider,
    ssoSid: row.sso_sid,
  };
}
