import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import * as oidc from 'openid-client';
import type { SessionManager } from '../identity/index.ts';
import type { SecretBox } from '../store/index.ts';
import type { ProviderClient, TokenSet } from './providers.ts';
import type { SsoDb, SsoTables } from './tables.ts';

type Row = SsoTables['sso_sessions'];

/** What is sealed in a row: the token set, never in clear text at rest. */
interface Sealed {
  access_token: string;
  token_type?: string | undefined;
  refresh_token?: string | undefined;
  id_token?: string | undefined;
  scope?: string | undefined;
}

/** A usable provider access token (for the gateway's own use; never sent to browsers). */
export interface ProviderToken {
  readonly provider: string;
  readonly accessToken: string;
  readonly tokenType: string;
  readonly scope: string | undefined;
  readonly expiresAt: number;
  readonly refreshable: boolean;
}

/** Without expires_at or expires_in a token is assumed to last this long, ms. */
const DEFAULT_TOKEN_LIFETIME_MS = 3600_000;
/** How long one node may hold the refresh lease, ms. */
const REFRESH_LEASE_MS = 15_000;
const POLL_MS = 50;

/** `expires_at` in ms: the provider's `expires_at` (epoch s), else now + `expires_in`, else one hour. */
export function normalizeExpiry(tokens: Pick<TokenSet, 'expires_at' | 'expires_in'>, now: number): number {
  if (typeof tokens.expires_at === 'number' && Number.isFinite(tokens.expires_at) && tokens.expires_at > 0) return Math.floor(tokens.expires_at) * 1000;
  if (typeof tokens.expires_in === 'number' && Number.isFinite(tokens.expires_in) && tokens.expires_in >= 0) return now + Math.floor(tokens.expires_in * 1000);
  return now + DEFAULT_TOKEN_LIFETIME_MS;
}

const context = (id: string) => `sso-session:${id}`;

/**
 * Provider token sets, one per SSO-created gateway session, sealed with AES-256-GCM.
 * A token with less than the refresh margin left is refreshed on demand: one refresh
 * per row at a time in this process (concurrent callers share it) and, through a lease
 * column, across nodes. A refresh the provider refuses deletes the row.
 */
export class ProviderSessions {
  readonly #db: SsoDb;
  readonly #secrets: SecretBox;
  readonly #clients: ReadonlyMap<string, ProviderClient>;
  readonly #sessions: SessionManager;
  readonly #marginMs: number;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #inflight = new Map<string, Promise<ProviderToken | null>>();

  constructor(options: {
    db: SsoDb;
    secrets: SecretBox;
    clients: ReadonlyMap<string, ProviderClient>;
    sessions: SessionManager;
    refreshMarginMs: number;
    logger: Logger;
    now?: () => number;
  }) {
    this.#db = options.db;
    this.#secrets = options.secrets;
    this.#clients = options.clients;
    this.#sessions = options.sessions;
    this.#marginMs = options.refreshMarginMs;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  /** Stores the tokens of a new login and prunes the user's oldest sets beyond `max`. */
  async store(entry: { provider: string; subject: string; userName: string; sessionId: string; sid: string | undefined; tokens: TokenSet }, max: number): Promise<string> {
    const id = randomBytes(18).toString('base64url');
    const now = this.#now();
    await this.#db
      .insertInto('sso_sessions')
      .values({
        id,
        provider: entry.provider,
        subject: entry.subject,
        user_name: entry.userName,
        session_id: entry.sessionId,
        sid: entry.sid ?? null,
        tokens: this.#seal(id, entry.tokens),
        expires_at: normalizeExpiry(entry.tokens, now),
        version: 0,
        refreshing_until: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    const rows = await this.#db
      .selectFrom('sso_sessions')
      .select('id')
      .where('user_name', '=', entry.userName)
      .where('provider', '=', entry.provider)
      .orderBy('created_at', 'desc')
      .execute();
    const extra = rows.map((r) => r.id).filter((rid) => rid !== id).slice(Math.max(0, max - 1));
    if (extra.length > 0) await this.#db.deleteFrom('sso_sessions').where('id', 'in', extra).execute();
    return id;
  }

  async rowForSession(sessionId: string): Promise<Row | undefined> {
    return this.#db.selectFrom('sso_sessions').selectAll().where('session_id', '=', sessionId).executeTakeFirst();
  }

  /** A valid access token for a gateway session's provider tokens, refreshed if needed; null if there is none. */
  async tokenForSession(sessionId: string): Promise<ProviderToken | null> {
    const row = await this.rowForSession(sessionId);
    return row ? this.token(row.id) : null;
  }

  /** A valid access token for one stored set, refreshed if needed; concurrent callers share one refresh. */
  token(id: string): Promise<ProviderToken | null> {
    let pending = this.#inflight.get(id);
    if (!pending) {
      pending = this.#fresh(id, true).finally(() => this.#inflight.delete(id));
      this.#inflight.set(id, pending);
    }
    return pending;
  }

  async deleteForUser(userName: string, provider: string): Promise<void> {
    await this.#db.deleteFrom('sso_sessions').where('user_name', '=', userName).where('provider', '=', provider).execute();
  }

  async deleteForSid(provider: string, sid: string): Promise<void> {
    await this.#db.deleteFrom('sso_sessions').where('provider', '=', provider).where('sid', '=', sid).execute();
  }

  async #read(id: string): Promise<Row | undefined> {
    return this.#db.selectFrom('sso_sessions').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async #fresh(id: string, mayWait: boolean): Promise<ProviderToken | null> {
    const row = await this.#read(id);
    if (!row) return null;
    const now = this.#now();
    if (Number(row.expires_at) - now > this.#marginMs) return this.#view(row);
    const leased = await this.#db
      .updateTable('sso_sessions')
      .set({ refreshing_until: now + REFRESH_LEASE_MS })
      .where('id', '=', id)
      .where('version', '=', row.version)
      .where((eb) => eb.or([eb('refreshing_until', 'is', null), eb('refreshing_until', '<', now)]))
      .executeTakeFirst();
    if (Number(leased.numUpdatedRows) === 0) return mayWait ? this.#awaitOther(id, row.version) : null;
    return this.#refresh(row);
  }

  /** Another node holds the lease: wait for its result rather than refresh the same token twice. */
  async #awaitOther(id: string, version: number): Promise<ProviderToken | null> {
    const until = Date.now() + REFRESH_LEASE_MS;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const row = await this.#read(id);
      if (!row) return null;
      if (row.version !== version) return this.#view(row);
      if (row.refreshing_until === null || Number(row.refreshing_until) < this.#now()) break;
    }
    return this.#fresh(id, false);
  }

  async #refresh(row: Row): Promise<ProviderToken | null> {
    const client = this.#clients.get(row.provider);
    const sealed = this.#open(row);
    if (!client || !sealed?.refresh_token) {
      await this.#drop(row, client ? 'the provider issued no refresh token' : 'the provider is no longer configured');
      return null;
    }
    let fresh: TokenSet;
    try {
      fresh = await client.refresh(sealed.refresh_token);
    } catch (error) {
      if (error instanceof oidc.ResponseBodyError || (error as { code?: string }).code?.startsWith('OAUTH_')) {
        await this.#drop(row, `the provider refused the refresh (${error instanceof oidc.ResponseBodyError ? error.error : 'invalid response'})`);
      } else {
        // Unreachable provider: keep the tokens for a later attempt, release the lease.
        this.#logger.warn({ provider: row.provider, user: row.user_name, err: { code: (error as { code?: string }).code } }, 'provider token refresh failed; will retry');
        await this.#db.updateTable('sso_sessions').set({ refreshing_until: null }).where('id', '=', row.id).execute();
      }
      return null;
    }
    const now = this.#now();
    const merged: TokenSet = {
      ...fresh,
      // A provider that does not rotate refresh tokens omits them from the response.
      refresh_token: fresh.refresh_token ?? sealed.refresh_token,
      id_token: fresh.id_token ?? sealed.id_token,
    };
    const updated = await this.#db
      .updateTable('sso_sessions')
      .set({ tokens: this.#seal(row.id, merged), expires_at: normalizeExpiry(fresh, now), version: row.version + 1, refreshing_until: null, updated_at: now })
      .where('id', '=', row.id)
      .where('version', '=', row.version)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) return null;
    this.#logger.info({ provider: row.provider, user: row.user_name }, 'refreshed provider tokens');
    const next = await this.#read(row.id);
    return next ? this.#view(next) : null;
  }

  async #drop(row: Row, why: string): Promise<void> {
    this.#logger.info({ provider: row.provider, user: row.user_name, reason: why }, 'deleting provider session: refresh failed');
    await this.#db.deleteFrom('sso_sessions').where('id', '=', row.id).execute();
    const client = this.#clients.get(row.provider);
    if (client?.config.endSessionOnRefreshFailure && row.session_id) {
      await this.#sessions.end(row.session_id, 'your sign-in at the identity provider has ended');
    }
  }

  #view(row: Row): ProviderToken | null {
    const sealed = this.#open(row);
    if (!sealed) return null;
    return {
      provider: row.provider,
      accessToken: sealed.access_token,
      tokenType: sealed.token_type ?? 'Bearer',
      scope: sealed.scope,
      expiresAt: Number(row.expires_at),
      refreshable: sealed.refresh_token !== undefined,
    };
  }

  #seal(id: string, tokens: TokenSet): string {
    const sealed: Sealed = {
      access_token: tokens.access_token,
      token_type: tokens.token_type,
      refresh_token: tokens.refresh_token,
      id_token: tokens.id_token,
      scope: tokens.scope,
    };
    return this.#secrets.seal(JSON.stringify(sealed), context(id));
  }

  #open(row: Row): Sealed | undefined {
    try {
      return JSON.parse(this.#secrets.open(row.tokens, context(row.id))) as Sealed;
    } catch (error) {
      this.#logger.error({ provider: row.provider, err: { code: (error as { code?: string }).code } }, 'stored provider tokens cannot be opened');
      return undefined;
    }
  }
}
