import type { Logger } from 'pino';
import { ConnectionErrors } from './errors.ts';
import { GrantError, type TokenSet } from './oauth.ts';
import { ConnectionStore, type TokenRow } from './store.ts';

/** The part of a connection the vault needs. */
export interface VaultConnection {
  readonly name: string;
  readonly revision: number;
}

/** What is kept sealed per user and connection. */
interface SealedTokens {
  access_token: string;
  refresh_token?: string | undefined;
  token_type: string;
  scope?: string | undefined;
}

interface Entry {
  readonly accessToken: string;
  readonly expiresAt: number;
  /** When to refresh: `margin` before expiry, but never before half the token's life. */
  refreshAt: number;
  readonly version: number;
  readonly revision: number;
}

export interface TokenVaultOptions {
  store: ConnectionStore;
  logger: Logger;
  now: () => number;
  refreshMarginMs: number;
  maxEntries: number;
  /** Performs the refresh grant for a connection (openid-client underneath). */
  refresh(connection: VaultConnection, refreshToken: string): Promise<TokenSet>;
  /** Tells other nodes that a user's tokens changed. */
  changed(connection: string, user: string): void;
}

/** After a transient refresh failure, keep using the still-valid token this long before retrying. */
const TRANSIENT_BACKOFF_MS = 10_000;

/**
 * Users' tokens for connections. Decrypted access tokens are cached in memory with their
 * expiry so the proxy's hot path is a map lookup, not a database read and a decryption.
 * A token near expiry is refreshed once however many requests need it (single flight);
 * across nodes, a refresh writes only over the version it read, so the loser of a race
 * adopts the winner's tokens instead of discarding them.
 */
export class TokenVault {
  readonly #o: TokenVaultOptions;
  readonly #cache = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Entry | null>>();

  constructor(options: TokenVaultOptions) {
    this.#o = options;
  }

  static key(connection: string, user: string): string {
    return `${connection}\u0000${user}`;
  }

  /** The user's access token, refreshed if near expiry; null when there is none usable. */
  async accessToken(connection: VaultConnection, user: string): Promise<string | null> {
    const key = TokenVault.key(connection.name, user);
    const entry = this.#cache.get(key);
    if (entry !== undefined && entry.revision === connection.revision && this.#o.now() < entry.refreshAt) return entry.accessToken;
    const fresh = await this.#singleFlight(key, () => this.#load(key, connection, user));
    return fresh?.accessToken ?? null;
  }

  /** Stores tokens from a completed authorization, replacing earlier ones. */
  async put(connection: VaultConnection, user: string, tokens: TokenSet): Promise<void> {
    const row = this.#row(connection.name, user, tokens, 1);
    await this.#o.store.putToken(row);
    this.forget(connection.name, user);
    this.#o.changed(connection.name, user);
  }

  /**
   * The resource refused this access token (revoked, or the clocks disagree): refresh it
   * now, once for all requests that saw the refusal. Returns the token to retry with, or
   * null when there is none (or it is the same refused one).
   */
  async replaceRejected(connection: VaultConnection, user: string, rejected: string): Promise<string | null> {
    const key = TokenVault.key(connection.name, user);
    const entry = this.#cache.get(key);
    if (entry !== undefined && entry.accessToken !== rejected && entry.revision === connection.revision && this.#o.now() < entry.refreshAt) return entry.accessToken;
    const fresh = await this.#singleFlight(key, () => this.#load(key, connection, user, rejected));
    return fresh && fresh.accessToken !== rejected ? fresh.accessToken : null;
  }

  /** Drops cached tokens of one user, or of every user of a connection. */
  forget(connection: string, user?: string): void {
    if (user !== undefined) {
      this.#cache.delete(TokenVault.key(connection, user));
      return;
    }
    const prefix = `${connection}\u0000`;
    for (const key of this.#cache.keys()) if (key.startsWith(prefix)) this.#cache.delete(key);
  }

  clear(): void {
    this.#cache.clear();
  }

  async #singleFlight(key: string, work: () => Promise<Entry | null>): Promise<Entry | null> {
    const running = this.#inflight.get(key);
    if (running) return running;
    const promise = work().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, promise);
    return promise;
  }

  #remember(key: string, entry: Entry): Entry {
    this.#cache.delete(key);
    // Bounded: the oldest entry goes first (Map keeps insertion order).
    if (this.#cache.size >= this.#o.maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, entry);
    return entry;
  }

  #refreshAt(expiresAt: number, obtainedAt: number): number {
    const margin = Math.min(this.#o.refreshMarginMs, Math.max(0, (expiresAt - obtainedAt) / 2));
    return expiresAt - margin;
  }

  #row(connection: string, user: string, tokens: TokenSet, version: number): TokenRow {
    const sealed: SealedTokens = { access_token: tokens.accessToken, refresh_token: tokens.refreshToken, token_type: tokens.tokenType, scope: tokens.scope };
    return {
      connection_name: connection,
      user_name: user,
      tokens: this.#o.store.secrets.seal(JSON.stringify(sealed), ConnectionStore.tokenContext(connection, user)),
      expires_at: tokens.expiresAt,
      has_refresh: tokens.refreshToken ? 1 : 0,
      version,
      updated_at: tokens.obtainedAt,
    };
  }

  #open(row: TokenRow): SealedTokens {
    return JSON.parse(this.#o.store.secrets.open(row.tokens, ConnectionStore.tokenContext(row.connection_name, row.user_name))) as SealedTokens;
  }

  #entry(row: TokenRow, tokens: SealedTokens, revision: number): Entry {
    return { accessToken: tokens.access_token, expiresAt: row.expires_at, refreshAt: this.#refreshAt(row.expires_at, row.updated_at), version: row.version, revision };
  }

  async #load(key: string, connection: VaultConnection, user: string, rejected?: string): Promise<Entry | null> {
    const row = await this.#o.store.token(connection.name, user);
    if (!row) {
      this.#cache.delete(key);
      return null;
    }
    const tokens = this.#open(row);
    const current = this.#entry(row, tokens, connection.revision);
    const now = this.#o.now();
    const refused = current.accessToken === rejected;
    if (now < current.refreshAt && !refused) return this.#remember(key, current);
    if (!tokens.refresh_token) {
      // Nothing to refresh with: usable until it expires, then the user must authorize again.
      if (now < current.expiresAt && !refused) return this.#remember(key, { ...current, refreshAt: current.expiresAt });
      this.#cache.delete(key);
      // A refused token without a way to renew it is dead: the user's list should say so.
      if (refused) await this.#o.store.deleteToken(connection.name, user, row.version);
      return null;
    }
    let fresh: TokenSet;
    try {
      fresh = await this.#o.refresh(connection, tokens.refresh_token);
    } catch (error) {
      return this.#refreshFailed(key, connection, user, row, refused ? { ...current, expiresAt: now } : current, error);
    }
    const next = this.#row(connection.name, user, fresh, row.version + 1);
    if (!(await this.#o.store.replaceToken(connection.name, user, row.version, next))) {
      // Another node refreshed (or the user re-authorized) meanwhile: theirs is in the store.
      return this.#adopt(key, connection, user);
    }
    this.#o.changed(connection.name, user);
    this.#o.logger.debug({ connection: connection.name, user }, 'refreshed a connection token');
    return this.#remember(key, this.#entry(next, { access_token: fresh.accessToken, token_type: fresh.tokenType }, connection.revision));
  }

  async #adopt(key: string, connection: VaultConnection, user: string): Promise<Entry | null> {
    const row = await this.#o.store.token(connection.name, user);
    if (!row) return null;
    const entry = this.#entry(row, this.#open(row), connection.revision);
    if (this.#o.now() >= entry.expiresAt) return null;
    return this.#remember(key, { ...entry, refreshAt: Math.max(entry.refreshAt, this.#o.now() + 1000) });
  }

  async #refreshFailed(key: string, connection: VaultConnection, user: string, row: TokenRow, current: Entry, error: unknown): Promise<Entry | null> {
    const failure = error instanceof GrantError ? error : new GrantError('transient', String(error), error);
    const now = this.#o.now();
    if (failure.failure === 'transient') {
      this.#o.logger.warn({ connection: connection.name, user, detail: failure.detail }, 'refreshing a connection token failed; will retry');
      if (now < current.expiresAt) return this.#remember(key, { ...current, refreshAt: Math.min(current.expiresAt, now + TRANSIENT_BACKOFF_MS) });
      throw ConnectionErrors.refreshUnavailable(connection.name, failure.detail, error);
    }
    // The grant or the client is gone, unless another node refreshed first (rotated refresh token).
    const latest = await this.#o.store.token(connection.name, user);
    if (latest && latest.version !== row.version) return this.#adopt(key, connection, user);
    this.#o.logger.info({ connection: connection.name, user, detail: failure.detail }, 'a connection token can no longer be refreshed; the user must authorize again');
    await this.#o.store.deleteToken(connection.name, user, row.version);
    this.#cache.delete(key);
    this.#o.changed(connection.name, user);
    return null;
  }
}
