import { createHash } from 'node:crypto';
import type * as client from 'openid-client';
import type { Logger } from 'pino';
import type { Bus } from '../cluster/index.ts';
import { isUniqueViolation, safeReturnPath } from '../identity/index.ts';
import { discover, type Discovery } from './discovery.ts';
import { ConnectionErrors, clip } from './errors.ts';
import { authorizationRequest, clientRejected, configurationFor, exchangeCode, isInvalidClient, refresh, usesPkce } from './oauth.ts';
import type { Outbound } from './outbound.ts';
import { registerClient, staticClient, type ClientInfo } from './registration.ts';
import { ConnectionStore, type ConnectionRow } from './store.ts';
import { TokenVault, type VaultConnection } from './tokens.ts';

export const AUTH_KINDS = ['none', 'bearer', 'oauth2.1', 'oauth2.1-static'] as const;
export type ConnectionAuth = (typeof AUTH_KINDS)[number];

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** RFC 6750 b64token and friends: visible ASCII only, so it cannot break a header. */
const HEADER_SAFE = /^[\x21-\x7e]{1,4096}$/;
/** RFC 6749 §3.3 scope tokens separated by single spaces. */
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/;

export interface ConnectionInput {
  name: string;
  url: string;
  auth: ConnectionAuth;
  token?: string | undefined;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  scope?: string | null | undefined;
}

export type ConnectionPatch = Partial<Omit<ConnectionInput, 'name'>>;

/** What admins see: never a secret. */
export interface ConnectionView {
  name: string;
  url: string;
  auth: ConnectionAuth;
  scope: string | null;
  clientId: string | null;
  redirectUri: string | null;
  authorizationServer: string | null;
  metadataUrl: string | null;
  tokenEndpointAuthMethod: string | null;
  pkce: boolean | null;
  registered: boolean;
  createdAt: number;
  updatedAt: number;
}

/** What a user sees: whether the gateway holds a usable token for them. */
export interface UserConnectionView {
  name: string;
  url: string;
  auth: ConnectionAuth;
  authorized: boolean;
}

/** A connection as the proxy uses it: decrypted once, then cached. */
export interface LiveConnection extends VaultConnection {
  readonly url: string;
  readonly origin: string;
  /** Path of the URL without a trailing slash ('' for none). */
  readonly basePath: string;
  readonly host: string;
  readonly auth: ConnectionAuth;
  readonly scope: string | null;
  readonly bearer: string | undefined;
  readonly client: ClientInfo | undefined;
}

interface CachedLive {
  live: LiveConnection;
  checkedAt: number;
  config?: client.Configuration;
}

/** A validated connection definition. */
interface Checked {
  url: string;
  auth: ConnectionAuth;
  scope: string | null;
  token?: string;
  clientId?: string;
  clientSecret?: string;
}

/** Sealed with each pending authorization. */
interface PendingSecret {
  verifier?: string | undefined;
  state: string;
  clientId: string;
  redirectUri: string;
}

export interface ConnectionServiceOptions {
  store: ConnectionStore;
  outbound: Outbound;
  bus: Bus;
  logger: Logger;
  /** The gateway's public URL (redirect URIs and authorize links derive from it). */
  publicUrl: () => string;
  now?: () => number;
  refreshMarginMs: number;
  authorizeTtlMs: number;
  tokenCacheSize: number;
  /** How long a node trusts a cached connection before checking its revision, ms. */
  cacheTtlMs: number;
}

const BUS_CHANNEL = 'connections';

interface BusPayload {
  name: string;
  user?: string;
}

/** A relative path on this gateway to send the browser back to (`/` when none was given); undefined if unsafe. */
export function safeReturnTo(value: unknown): string | undefined {
  return value === undefined || value === '' ? '/' : safeReturnPath(value);
}

function stateId(state: string): string {
  return createHash('sha256').update(state).digest('hex');
}

function parseConnectionUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw ConnectionErrors.invalidUrl('is not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw ConnectionErrors.invalidUrl('must use http or https');
  if (url.username || url.password || url.search || url.hash) throw ConnectionErrors.invalidUrl('must not carry credentials, a query or a fragment');
  if (value.length > 2048) throw ConnectionErrors.invalidUrl('is too long');
  return url;
}

/**
 * Connections: their definitions (admin), discovery and registration, each user's
 * authorization, and the tokens the proxy injects. One instance per gateway node;
 * other nodes hear of changes through the bus.
 */
export class ConnectionService {
  readonly #o: ConnectionServiceOptions;
  readonly #store: ConnectionStore;
  readonly #now: () => number;
  readonly #live = new Map<string, CachedLive>();
  readonly #loading = new Map<string, Promise<CachedLive | undefined>>();
  readonly #registering = new Map<string, Promise<CachedLive>>();
  readonly vault: TokenVault;
  readonly #unsubscribe: () => void;

  constructor(options: ConnectionServiceOptions) {
    this.#o = options;
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
    this.vault = new TokenVault({
      store: options.store,
      logger: options.logger,
      now: this.#now,
      refreshMarginMs: options.refreshMarginMs,
      maxEntries: options.tokenCacheSize,
      refresh: async (connection, refreshToken) => {
        const cached = await this.#cached(connection.name);
        if (!cached?.live.client) throw ConnectionErrors.notFound(connection.name);
        return refresh(this.#config(cached), cached.live.client, refreshToken, this.#now());
      },
      changed: (name, user) => void this.#publish({ name, user }),
    });
    this.#unsubscribe = options.bus.subscribe((message) => {
      if (message.type !== 'custom' || message.channel !== BUS_CHANNEL) return;
      const payload = message.payload as BusPayload;
      if (payload.user !== undefined) {
        this.vault.forget(payload.name, payload.user);
      } else {
        this.#live.delete(payload.name);
        this.vault.forget(payload.name);
      }
    });
  }

  close(): void {
    this.#unsubscribe();
    this.vault.clear();
    this.#live.clear();
  }

  /** `{publicUrl}/api/connections/{name}/callback`: the redirect URI registered for a connection. */
  redirectUri(name: string): string {
    return `${this.#o.publicUrl()}/api/connections/${encodeURIComponent(name)}/callback`;
  }

  authorizeUrl(name: string): string {
    return `${this.#o.publicUrl()}/api/connections/${encodeURIComponent(name)}/authorize`;
  }

  async #publish(payload: BusPayload): Promise<void> {
    try {
      await this.#o.bus.publish({ type: 'custom', channel: BUS_CHANNEL, payload });
    } catch (err) {
      this.#o.logger.warn({ err }, 'could not tell other nodes about a connection change');
    }
  }

  // ---- definitions (admin) ----

  async list(): Promise<ConnectionView[]> {
    return (await this.#store.list()).map((row) => this.#view(row));
  }

  async get(name: string): Promise<ConnectionView> {
    const row = await this.#store.get(name);
    if (!row) throw ConnectionErrors.notFound(name);
    return this.#view(row);
  }

  /**
   * Creates a connection. OAuth connections are discovered (and, for `oauth2.1`,
   * registered) first: if any step fails nothing is stored.
   */
  async create(input: ConnectionInput): Promise<ConnectionView> {
    if (typeof input.name !== 'string' || !NAME_PATTERN.test(input.name)) throw ConnectionErrors.invalidName(String(input.name));
    const checked = this.#validate(input);
    if (await this.#store.get(input.name)) throw ConnectionErrors.exists(input.name);
    const client = await this.#buildClient(input.name, checked);
    const now = this.#now();
    const row: ConnectionRow = {
      name: input.name,
      url: checked.url,
      auth: checked.auth,
      scope: checked.scope,
      secret: this.#sealSecret(input.name, checked),
      client: client ? this.#store.secrets.seal(JSON.stringify(client), ConnectionStore.clientContext(input.name)) : null,
      revision: 1,
      created_at: now,
      updated_at: now,
    };
    try {
      await this.#store.insert(row);
    } catch (error) {
      if (isUniqueViolation(error)) throw ConnectionErrors.exists(input.name);
      throw error;
    }
    this.#o.logger.info({ connection: input.name, auth: checked.auth }, 'connection created');
    return this.#view(row);
  }

  /**
   * Changes a connection. A new URL, auth kind or client credentials means a new
   * discovery (and registration): users' tokens belong to the old client and are deleted.
   */
  async update(name: string, patch: ConnectionPatch): Promise<ConnectionView> {
    const row = await this.#store.get(name);
    if (!row) throw ConnectionErrors.notFound(name);
    const previous = this.#decode(row);
    const auth = patch.auth ?? (row.auth as ConnectionAuth);
    const sameKind = auth === row.auth;
    const merged: ConnectionInput = {
      name,
      url: patch.url ?? row.url,
      auth,
      token: patch.token || (sameKind ? previous.bearer : undefined),
      clientId: patch.clientId ?? (sameKind && auth === 'oauth2.1-static' ? previous.client?.clientId : undefined),
      clientSecret: patch.clientSecret || (sameKind && auth === 'oauth2.1-static' ? previous.client?.clientSecret : undefined),
      scope: patch.scope === undefined ? row.scope : patch.scope,
    };
    const checked = this.#validate(merged);
    const rebuild =
      checked.url !== row.url ||
      auth !== row.auth ||
      (auth === 'oauth2.1-static' && (checked.clientId !== previous.client?.clientId || checked.clientSecret !== previous.client?.clientSecret));
    let client = previous.client;
    if (rebuild) client = (await this.#buildClient(name, checked)) ?? undefined;
    const values: Partial<ConnectionRow> = {
      url: checked.url,
      auth: checked.auth,
      scope: checked.scope,
      secret: this.#sealSecret(name, checked),
      client: client && (auth === 'oauth2.1' || auth === 'oauth2.1-static') ? this.#store.secrets.seal(JSON.stringify(client), ConnectionStore.clientContext(name)) : null,
      updated_at: this.#now(),
    };
    if (!(await this.#store.update(name, row.revision, values))) {
      throw ConnectionErrors.invalidInput(`Connection "${name}" was changed at the same time; reload and try again.`);
    }
    if (rebuild) await this.#store.deleteTokens(name);
    this.#changed(name);
    this.#o.logger.info({ connection: name, rebuilt: rebuild }, 'connection updated');
    return this.#view({ ...row, ...values, revision: row.revision + 1 } as ConnectionRow);
  }

  async remove(name: string): Promise<void> {
    if (!(await this.#store.remove(name))) throw ConnectionErrors.notFound(name);
    this.#changed(name);
    this.#o.logger.info({ connection: name }, 'connection removed');
  }

  #changed(name: string): void {
    this.#live.delete(name);
    this.vault.forget(name);
    void this.#publish({ name });
  }

  #validate(input: ConnectionInput): Checked {
    if (typeof input.url !== 'string') throw ConnectionErrors.invalidUrl('is missing');
    const url = parseConnectionUrl(input.url.trim());
    if (!(AUTH_KINDS as readonly string[]).includes(input.auth)) throw ConnectionErrors.invalidInput(`auth must be one of ${AUTH_KINDS.join(', ')}.`);
    const oauth = input.auth === 'oauth2.1' || input.auth === 'oauth2.1-static';
    const scope = input.scope === undefined || input.scope === null || input.scope.trim() === '' ? null : input.scope.trim();
    if (scope !== null && (!oauth || !SCOPE.test(scope) || scope.length > 1000)) {
      throw ConnectionErrors.invalidInput(oauth ? 'scope must be space-separated scope tokens (at most 1000 characters).' : 'scope applies to OAuth connections only.');
    }
    const out: Checked = { url: url.href.replace(/\/+$/, '') || url.href, auth: input.auth, scope };
    if (input.auth === 'bearer') {
      if (!input.token || !HEADER_SAFE.test(input.token)) throw ConnectionErrors.invalidInput('A bearer connection needs a token of visible ASCII characters (at most 4096).');
      out.token = input.token;
    } else if (input.token) {
      throw ConnectionErrors.invalidInput('token applies to bearer connections only.');
    }
    if (input.auth === 'oauth2.1-static') {
      if (!input.clientId || !HEADER_SAFE.test(input.clientId)) throw ConnectionErrors.invalidInput('An oauth2.1-static connection needs a clientId.');
      if (input.clientSecret !== undefined && input.clientSecret !== '' && !HEADER_SAFE.test(input.clientSecret)) throw ConnectionErrors.invalidInput('clientSecret must be visible ASCII characters.');
      out.clientId = input.clientId;
      if (input.clientSecret) out.clientSecret = input.clientSecret;
    } else if (input.clientId || input.clientSecret) {
      throw ConnectionErrors.invalidInput('clientId and clientSecret apply to oauth2.1-static connections only.');
    }
    return out;
  }

  #sealSecret(name: string, checked: { token?: string }): string | null {
    return checked.token ? this.#store.secrets.seal(checked.token, ConnectionStore.secretContext(name)) : null;
  }

  async #buildClient(name: string, checked: Checked): Promise<ClientInfo | null> {
    if (checked.auth !== 'oauth2.1' && checked.auth !== 'oauth2.1-static') return null;
    const discovery = await discover(checked.url, this.#o.outbound);
    return this.#clientFor(name, checked, discovery);
  }

  async #clientFor(name: string, checked: Checked, discovery: Discovery): Promise<ClientInfo> {
    const redirectUri = this.redirectUri(name);
    if (checked.auth === 'oauth2.1-static') return staticClient(discovery, { clientId: checked.clientId!, clientSecret: checked.clientSecret, redirectUri });
    const info = await registerClient(discovery, { redirectUri, scope: checked.scope, outbound: this.#o.outbound, trustedHost: new URL(checked.url).hostname });
    this.#o.logger.info({ connection: name, clientId: info.clientId, at: info.registrationEndpoint }, 'registered the gateway as an OAuth client');
    return info;
  }

  #decode(row: ConnectionRow): { bearer: string | undefined; client: ClientInfo | undefined } {
    const bearer = row.secret ? this.#store.secrets.open(row.secret, ConnectionStore.secretContext(row.name)) : undefined;
    const client = row.client ? (JSON.parse(this.#store.secrets.open(row.client, ConnectionStore.clientContext(row.name))) as ClientInfo) : undefined;
    return { bearer, client };
  }

  #view(row: ConnectionRow): ConnectionView {
    const { client } = row.client ? this.#decode(row) : { client: undefined };
    const oauth = row.auth === 'oauth2.1' || row.auth === 'oauth2.1-static';
    return {
      name: row.name,
      url: row.url,
      auth: row.auth as ConnectionAuth,
      scope: row.scope,
      clientId: client?.clientId ?? null,
      redirectUri: oauth ? this.redirectUri(row.name) : null,
      authorizationServer: client ? (client.metadata.issuer ?? new URL(client.metadataUrl).origin) : null,
      metadataUrl: client?.metadataUrl ?? null,
      tokenEndpointAuthMethod: client?.authMethod ?? null,
      pkce: client ? usesPkce(client) : null,
      registered: client?.dynamic ?? false,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  // ---- the proxy's view ----

  /** The connection, decrypted and cached; re-checked against the store every cacheTtl. */
  async live(name: string): Promise<LiveConnection> {
    const cached = await this.#cached(name);
    if (!cached) throw ConnectionErrors.notFound(name);
    return cached.live;
  }

  async #cached(name: string): Promise<CachedLive | undefined> {
    if (!NAME_PATTERN.test(name)) return undefined;
    const hit = this.#live.get(name);
    const now = this.#now();
    if (hit && now - hit.checkedAt < this.#o.cacheTtlMs) return hit;
    const running = this.#loading.get(name);
    if (running) return running;
    const load = (async () => {
      if (hit) {
        const current = await this.#store.revision(name);
        if (current && current.revision === hit.live.revision) {
          hit.checkedAt = now;
          return hit;
        }
      }
      const row = await this.#store.get(name);
      if (!row) {
        this.#live.delete(name);
        return undefined;
      }
      const fresh: CachedLive = { live: this.#toLive(row), checkedAt: now };
      this.#live.set(name, fresh);
      return fresh;
    })().finally(() => this.#loading.delete(name));
    this.#loading.set(name, load);
    return load;
  }

  #toLive(row: ConnectionRow): LiveConnection {
    const url = new URL(row.url);
    const { bearer, client } = this.#decode(row);
    return {
      name: row.name,
      revision: row.revision,
      url: row.url,
      origin: url.origin,
      basePath: url.pathname.replace(/\/+$/, ''),
      host: url.hostname,
      auth: row.auth as ConnectionAuth,
      scope: row.scope,
      bearer,
      client,
    };
  }

  #config(cached: CachedLive): client.Configuration {
    if (!cached.config) cached.config = configurationFor(cached.live.client!, this.#o.outbound, cached.live.host);
    return cached.config;
  }

  /** The token to inject for this user: null when they must authorize (OAuth) first. */
  async token(live: LiveConnection, user: string): Promise<string | null> {
    if (live.auth === 'none') return null;
    if (live.auth === 'bearer') return live.bearer ?? null;
    return this.vault.accessToken(live, user);
  }

  async userList(user: string): Promise<UserConnectionView[]> {
    const [rows, states] = await Promise.all([this.#store.list(), this.#store.tokenStates(user)]);
    const now = this.#now();
    const usable = new Set(states.filter((s) => s.has_refresh === 1 || s.expires_at > now).map((s) => s.connection_name));
    return rows.map((row) => ({
      name: row.name,
      url: row.url,
      auth: row.auth as ConnectionAuth,
      authorized: row.auth === 'oauth2.1' || row.auth === 'oauth2.1-static' ? usable.has(row.name) : true,
    }));
  }

  /** Forgets a user's tokens for a connection (they authorize again to use it). */
  async revoke(name: string, user: string): Promise<void> {
    if (!(await this.#store.get(name))) throw ConnectionErrors.notFound(name);
    await this.#store.deleteToken(name, user);
    this.vault.forget(name, user);
    void this.#publish({ name, user });
  }

  // ---- authorization ----

  /**
   * Starts a user's authorization: a fresh state bound to the user, a PKCE verifier,
   * and the server's authorization URL. A dynamically registered client the server has
   * forgotten (or whose redirect URI no longer matches this gateway's URL) is registered
   * again first.
   */
  async startAuthorization(name: string, user: string, returnTo: string): Promise<string> {
    let cached = await this.#oauthConnection(name);
    const redirectUri = this.redirectUri(name);
    const info = cached.live.client!;
    const expired = info.secretExpiresAt !== undefined && info.secretExpiresAt > 0 && info.secretExpiresAt * 1000 <= this.#now();
    if (info.dynamic && (info.redirectUri !== redirectUri || expired)) cached = await this.#reRegister(cached, expired ? 'its client secret expired' : 'the gateway URL changed');
    let request = await this.#authorizationRequest(cached, redirectUri);
    if (await clientRejected(request.url, this.#o.outbound, cached.live.host)) {
      if (!cached.live.client!.dynamic) throw ConnectionErrors.clientRejected(name);
      cached = await this.#reRegister(cached, 'the authorization server no longer knows the client');
      request = await this.#authorizationRequest(cached, redirectUri);
    }
    const id = stateId(request.state);
    const pending: PendingSecret = { verifier: request.codeVerifier, state: request.state, clientId: cached.live.client!.clientId, redirectUri };
    const now = this.#now();
    await this.#store.putAuthorization(
      {
        id,
        connection_name: name,
        user_name: user,
        secret: this.#store.secrets.seal(JSON.stringify(pending), ConnectionStore.authorizationContext(id)),
        return_to: returnTo,
        expires_at: now + this.#o.authorizeTtlMs,
      },
      now,
    );
    return request.url.href;
  }

  async #authorizationRequest(cached: CachedLive, redirectUri: string) {
    const info = { ...cached.live.client!, redirectUri };
    return authorizationRequest(this.#config(cached), info, cached.live.scope);
  }

  async #oauthConnection(name: string): Promise<CachedLive> {
    const cached = await this.#cached(name);
    if (!cached) throw ConnectionErrors.notFound(name);
    if (!cached.live.client) throw ConnectionErrors.notOAuth(name);
    return cached;
  }

  /**
   * Registers again (RFC 7591), once per connection however many users ask at the same
   * time; tokens issued to the old client are deleted, they cannot be refreshed.
   */
  #reRegister(cached: CachedLive, why: string): Promise<CachedLive> {
    const name = cached.live.name;
    const running = this.#registering.get(name);
    if (running) return running;
    const work = (async () => {
      this.#o.logger.info({ connection: name, why }, 'registering the gateway again');
      const live = cached.live;
      const discovery = await discover(live.url, this.#o.outbound);
      const info = await this.#clientFor(name, { url: live.url, auth: live.auth, scope: live.scope }, discovery);
      const sealed = this.#store.secrets.seal(JSON.stringify(info), ConnectionStore.clientContext(name));
      const won = await this.#store.update(name, live.revision, { client: sealed, updated_at: this.#now() });
      if (won) await this.#store.deleteTokens(name);
      this.#changed(name);
      // Whoever won (this node or another), the store now holds the current client.
      const fresh = await this.#cached(name);
      if (!fresh?.live.client) throw ConnectionErrors.notFound(name);
      return fresh;
    })().finally(() => this.#registering.delete(name));
    this.#registering.set(name, work);
    return work;
  }

  /**
   * Completes an authorization at the callback: the state must be one this gateway issued
   * to this same user, unexpired and unused; the code is exchanged with the PKCE verifier,
   * and the tokens replace the user's earlier ones. Returns where to send the browser.
   * Failures after the state is known come back as `{returnTo, error}`: the browser goes
   * back with the message.
   */
  async finishAuthorization(name: string, user: string, query: URLSearchParams): Promise<{ returnTo: string; error?: string }> {
    const state = query.get('state');
    if (!state || state.length > 512) throw ConnectionErrors.invalidState('the callback carries no state');
    const id = stateId(state);
    const row = await this.#store.authorization(id);
    if (!row || row.connection_name !== name) throw ConnectionErrors.invalidState('the state is unknown or already used');
    if (row.user_name !== user) throw ConnectionErrors.invalidState('it was started by another user');
    if (!(await this.#store.takeAuthorization(id))) throw ConnectionErrors.invalidState('the state is unknown or already used');
    if (row.expires_at <= this.#now()) throw ConnectionErrors.invalidState('it took too long');
    const pending = JSON.parse(this.#store.secrets.open(row.secret, ConnectionStore.authorizationContext(id))) as PendingSecret;
    if (pending.state !== state) throw ConnectionErrors.invalidState('the state does not match');
    const returnTo = row.return_to;
    try {
      const cached = await this.#oauthConnection(name);
      const info = cached.live.client!;
      if (info.clientId !== pending.clientId) throw ConnectionErrors.invalidState('the gateway registered again meanwhile');
      const tokens = await exchangeCode(this.#config(cached), { ...info, redirectUri: pending.redirectUri }, query.toString(), { state, codeVerifier: pending.verifier }, this.#now());
      await this.vault.put(cached.live, user, tokens);
      this.#o.logger.info({ connection: name, user }, 'connection authorized');
      return { returnTo };
    } catch (error) {
      const message = (error as { message?: string }).message ?? 'authorization failed';
      if (isInvalidClient(error)) {
        const cached = await this.#cached(name).catch(() => undefined);
        // The server forgot this client: the next authorize starts with a new registration.
        if (cached?.live.client?.dynamic) await this.#reRegister(cached, 'the token endpoint no longer knows the client').catch(() => undefined);
      }
      // Name and code only: the error's cause can carry the server's response and the callback parameters.
      this.#o.logger.info({ connection: name, user, err: { name: (error as Error).name, code: (error as { code?: string }).code } }, 'connection authorization failed');
      return { returnTo, error: clip(`Authorizing ${name} failed: ${message}`, 300) };
    }
  }
}
