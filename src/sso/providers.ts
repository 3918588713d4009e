import type { JWTVerifyOptions } from 'jose';
import * as oidc from 'openid-client';
import type { z } from 'zod';
import type { ssoProviderSchema } from '../config/schema.ts';
import type { Claims } from './claims.ts';
import { SsoErrors } from './errors.ts';
import { ProviderKeys } from './jwks.ts';

export type ProviderConfig = z.output<typeof ssoProviderSchema>;

/** Token endpoint response fields the gateway keeps. */
export interface TokenSet {
  access_token: string;
  token_type?: string | undefined;
  refresh_token?: string | undefined;
  id_token?: string | undefined;
  scope?: string | undefined;
  expires_in?: number | undefined;
  /** Non-standard, sent by some providers: epoch seconds. */
  expires_at?: number | undefined;
}

export interface LoginChecks {
  state: string;
  nonce: string | undefined;
  codeVerifier: string;
}

export interface SignInResult {
  tokens: TokenSet;
  /** ID token claims merged with userinfo (userinfo wins, the ID token fills gaps). */
  claims: Claims;
  /** The provider's session id (`sid` of the ID token), for back-channel logout. */
  sid: string | undefined;
}

/** Largest userinfo / GitHub API response read, bytes. */
const MAX_JSON_BYTES = 1024 * 1024;
const GITHUB_AUTHORIZE = 'https://github.com/login/oauth/authorize';
const GITHUB_TOKEN = 'https://github.com/login/oauth/access_token';
const GITHUB_API = 'https://api.github.com';

/** Defaults that depend on the provider type. */
export function claimDefaults(p: ProviderConfig): { subject: string; userName: string; picture: string } {
  return p.type === 'github'
    ? { subject: p.claims.subject ?? 'id', userName: p.claims.userName ?? 'login', picture: p.claims.picture ?? 'avatar_url' }
    : { subject: p.claims.subject ?? 'sub', userName: p.claims.userName ?? 'preferred_username', picture: p.claims.picture ?? 'picture' };
}

function defaultScopes(p: ProviderConfig): string[] {
  if (p.scopes) return p.scopes;
  if (p.type === 'oidc') return ['openid', 'email', 'profile'];
  if (p.type === 'github') return ['read:user', 'user:email'];
  return [];
}

function clientAuth(p: ProviderConfig): oidc.ClientAuth {
  const method = p.tokenEndpointAuthMethod ?? (p.clientSecret === undefined ? 'none' : p.type === 'github' ? 'client_secret_post' : 'client_secret_basic');
  if (method === 'none') return oidc.None();
  return method === 'client_secret_post' ? oidc.ClientSecretPost(p.clientSecret) : oidc.ClientSecretBasic(p.clientSecret);
}

const isHttp = (u: string | undefined) => u !== undefined && u.startsWith('http:');

/**
 * One configured provider, built on openid-client: the authorization URL, the code
 * exchange (PKCE, state, nonce), the ID token's signature, the user's claims, and
 * token refresh. OIDC providers are discovered lazily (a provider that is down at
 * start does not stop the gateway) and discovery is retried after a failure.
 */
export class ProviderClient {
  readonly config: ProviderConfig;
  readonly id: string;
  readonly name: string;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #setup: Promise<{ configuration: oidc.Configuration; keys: ProviderKeys | undefined }> | undefined;

  constructor(config: ProviderConfig, options: { timeoutMs: number; now?: () => number }) {
    this.config = config;
    this.id = config.id;
    this.name = config.name ?? (config.type === 'github' ? 'GitHub' : config.id);
    this.#timeoutMs = options.timeoutMs;
    this.#now = options.now ?? Date.now;
  }

  get usesNonce(): boolean {
    return this.config.type === 'oidc' || (this.config.type === 'oauth2' && defaultScopes(this.config).includes('openid'));
  }

  /** The issuer that back-channel logout tokens of this provider carry (OIDC only). */
  get issuer(): string | undefined {
    return this.config.type === 'oidc' ? this.config.issuer : undefined;
  }

  #ready(): Promise<{ configuration: oidc.Configuration; keys: ProviderKeys | undefined }> {
    this.#setup ??= this.#build().catch((error: unknown) => {
      this.#setup = undefined;
      throw SsoErrors.providerUnavailable(error);
    });
    return this.#setup;
  }

  async #build(): Promise<{ configuration: oidc.Configuration; keys: ProviderKeys | undefined }> {
    const p = this.config;
    const metadata: Partial<oidc.ClientMetadata> = p.clientSecret === undefined ? {} : { client_secret: p.clientSecret };
    const timeout = Math.ceil(this.#timeoutMs / 1000);
    if (p.type === 'oidc') {
      const execute = isHttp(p.issuer) ? [oidc.allowInsecureRequests] : [];
      const configuration = await oidc.discovery(new URL(p.issuer!), p.clientId, metadata, clientAuth(p), { execute, timeout });
      const jwksUri = configuration.serverMetadata().jwks_uri;
      if (!jwksUri) throw new Error('the provider publishes no jwks_uri');
      return { configuration, keys: new ProviderKeys({ uri: jwksUri, timeoutMs: this.#timeoutMs, now: this.#now }) };
    }
    const authorization = p.authorizationEndpoint ?? GITHUB_AUTHORIZE;
    const token = p.tokenEndpoint ?? GITHUB_TOKEN;
    const server: oidc.ServerMetadata = {
      issuer: new URL(authorization).origin,
      authorization_endpoint: authorization,
      token_endpoint: token,
      ...(p.userinfoEndpoint ? { userinfo_endpoint: p.userinfoEndpoint } : {}),
    };
    const configuration = new oidc.Configuration(server, p.clientId, metadata, clientAuth(p));
    configuration.timeout = timeout;
    if ([authorization, token, p.userinfoEndpoint, p.apiUrl].some(isHttp)) oidc.allowInsecureRequests(configuration);
    return { configuration, keys: undefined };
  }

  /** The provider's authorization URL for a new login. */
  async authorizationUrl(redirectUri: string, checks: LoginChecks): Promise<URL> {
    const { configuration } = await this.#ready();
    const p = this.config;
    const params: Record<string, string> = {
      ...p.authorizeParams,
      redirect_uri: redirectUri,
      response_type: 'code',
      state: checks.state,
      code_challenge: await oidc.calculatePKCECodeChallenge(checks.codeVerifier),
      code_challenge_method: 'S256',
    };
    const scopes = defaultScopes(p);
    if (scopes.length > 0) params.scope = scopes.join(' ');
    if (checks.nonce !== undefined) params.nonce = checks.nonce;
    if (p.audience !== undefined) params.audience = p.audience;
    return oidc.buildAuthorizationUrl(configuration, params);
  }

  /** Finishes a login: exchanges the code, verifies the ID token, and reads the user's claims. */
  async signIn(callbackUrl: URL, checks: LoginChecks): Promise<SignInResult> {
    const { configuration, keys } = await this.#ready();
    let response: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      response = await oidc.authorizationCodeGrant(configuration, callbackUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        ...(checks.nonce !== undefined ? { expectedNonce: checks.nonce } : {}),
        idTokenExpected: this.config.type === 'oidc',
      });
    } catch (error) {
      throw describeExchangeError(error);
    }
    const tokens = pickTokens(response);
    if (this.config.type === 'github') return { tokens, claims: await this.#githubClaims(tokens.access_token), sid: undefined };

    let idClaims: Claims = {};
    if (response.id_token !== undefined) {
      // openid-client validated the claims (iss, aud, exp, nonce…); the signature is checked
      // here, against the provider's JWKS, refetched once if the provider rotated its keys.
      if (keys) await this.#verifySignature(keys, configuration, response.id_token);
      idClaims = (response.claims() ?? {}) as Claims;
    }
    let claims: Claims = idClaims;
    if (this.config.type === 'oauth2') {
      claims = { ...idClaims, ...(await this.#json(this.config.userinfoEndpoint!, tokens.access_token)) };
    } else if (configuration.serverMetadata().userinfo_endpoint && this.#needsUserinfo(idClaims)) {
      try {
        const info = await oidc.fetchUserInfo(configuration, tokens.access_token, String(idClaims.sub));
        claims = { ...idClaims, ...info };
      } catch (error) {
        throw describeExchangeError(error);
      }
    }
    const sid = typeof idClaims.sid === 'string' && idClaims.sid.length <= 500 ? idClaims.sid : undefined;
    return { tokens, claims, sid };
  }

  async #verifySignature(keys: ProviderKeys, configuration: oidc.Configuration, idToken: string): Promise<void> {
    try {
      await keys.verify(idToken, {
        issuer: configuration.serverMetadata().issuer,
        audience: this.config.clientId,
        algorithms: this.signingAlgorithms(configuration),
        // Time claims were checked by openid-client; here only the signature matters.
        clockTolerance: 300,
      });
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (code.startsWith('ERR_JW')) throw SsoErrors.idTokenInvalid('bad signature', error);
      throw SsoErrors.providerUnavailable(error);
    }
  }

  /** Asymmetric algorithms the provider signs ID tokens with (never `none`, never HMAC). */
  signingAlgorithms(configuration: oidc.Configuration): string[] {
    const advertised = configuration.serverMetadata().id_token_signing_alg_values_supported ?? ['RS256'];
    return advertised.filter((alg) => alg !== 'none' && !alg.startsWith('HS'));
  }

  /** Verifies a JWT signed by this provider (back-channel logout tokens). */
  async verifyProviderJwt(jwt: string, options: Omit<JWTVerifyOptions, 'algorithms'>): Promise<Record<string, unknown>> {
    const { configuration, keys } = await this.#ready();
    if (!keys) throw new Error('not an OpenID provider');
    return (await keys.verify(jwt, { ...options, algorithms: this.signingAlgorithms(configuration) })) as Record<string, unknown>;
  }

  #needsUserinfo(claims: Claims): boolean {
    const c = this.config.claims;
    const defaults = claimDefaults(this.config);
    const wanted = [c.email, defaults.userName, c.name, defaults.picture];
    if (this.config.roles.enabled) wanted.push(c.roles);
    if (this.config.groups.enabled) wanted.push(c.groups);
    return wanted.some((name) => !hasClaim(claims, name));
  }

  async #githubClaims(accessToken: string): Promise<Claims> {
    const api = this.config.apiUrl ?? GITHUB_API;
    const user = await this.#json(`${api}/user`, accessToken);
    const emailClaim = this.config.claims.email;
    if (typeof user[emailClaim] === 'string' && user[emailClaim] !== '') return { ...user, email_verified: true };
    // No public email: the primary address, if verified, from /user/emails (needs user:email).
    const emails = await this.#json(`${api}/user/emails`, accessToken);
    const list = Array.isArray(emails) ? (emails as Array<{ email?: unknown; primary?: unknown; verified?: unknown }>) : [];
    const primary = list.find((e) => e.primary === true && e.verified === true && typeof e.email === 'string');
    return primary ? { ...user, [emailClaim]: primary.email, email_verified: true } : user;
  }

  /** GET a JSON resource with the access token (GitHub API, generic userinfo). */
  async #json(url: string, accessToken: string): Promise<Record<string, unknown>> {
    let response: Response;
    try {
      response = await fetch(url, {
        headers: {
          authorization: `Bearer ${accessToken}`,
          accept: this.config.type === 'github' ? 'application/vnd.github+json' : 'application/json',
          'user-agent': 'portcullis',
          ...(this.config.type === 'github' ? { 'x-github-api-version': '2022-11-28' } : {}),
        },
        redirect: 'error',
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw SsoErrors.providerUnavailable(error);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw SsoErrors.exchangeFailed(`the user endpoint answered ${response.status}`);
    }
    const declared = Number(response.headers.get('content-length') ?? '0');
    const text = declared > MAX_JSON_BYTES ? '' : await response.text();
    if (text.length === 0 || text.length > MAX_JSON_BYTES) throw SsoErrors.exchangeFailed('the user endpoint sent an unusable answer');
    try {
      const value: unknown = JSON.parse(text);
      if (typeof value !== 'object' || value === null) throw new TypeError('not an object');
      return value as Record<string, unknown>;
    } catch (error) {
      throw SsoErrors.exchangeFailed('the user endpoint sent an unusable answer', error);
    }
  }

  /** A refresh token grant; throws on any failure. */
  async refresh(refreshToken: string): Promise<TokenSet> {
    const { configuration } = await this.#ready();
    const response = await oidc.refreshTokenGrant(configuration, refreshToken);
    return pickTokens(response);
  }

  /** Origins to which the provider's access token may be sent (its own endpoints). */
  async ownOrigins(): Promise<Set<string>> {
    const { configuration } = await this.#ready();
    const m = configuration.serverMetadata();
    const urls = [m.issuer, m.userinfo_endpoint, this.config.apiUrl ?? (this.config.type === 'github' ? GITHUB_API : undefined)];
    const origins = new Set<string>();
    for (const u of urls) {
      try {
        if (u) origins.add(new URL(u).origin);
      } catch {
        // not a URL: nothing to add
      }
    }
    return origins;
  }
}

function hasClaim(claims: Claims, name: string): boolean {
  if (Object.hasOwn(claims, name)) return true;
  let node: unknown = claims;
  for (const part of name.split('.')) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, part)) return false;
    node = (node as Record<string, unknown>)[part];
  }
  return true;
}

function pickTokens(r: oidc.TokenEndpointResponse): TokenSet {
  const extra = r as Record<string, unknown>;
  return {
    access_token: r.access_token,
    token_type: r.token_type,
    refresh_token: r.refresh_token,
    id_token: r.id_token,
    scope: r.scope,
    expires_in: r.expires_in,
    expires_at: typeof extra.expires_at === 'number' ? extra.expires_at : undefined,
  };
}

/**
 * openid-client failures → catalogue errors, by class and code (never by message text).
 * Only the OAuth error code travels: descriptions can echo request data.
 */
export function describeExchangeError(error: unknown): Error {
  if (error instanceof oidc.ResponseBodyError) return SsoErrors.exchangeFailed(safeCode(error.error), error);
  if (error instanceof oidc.AuthorizationResponseError) return SsoErrors.providerError(safeCode(error.error));
  const code = (error as { code?: string }).code ?? '';
  if (code.startsWith('OAUTH_JWT') || code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') return SsoErrors.idTokenInvalid('a claim does not match', error);
  if (code === 'OAUTH_INVALID_RESPONSE' || code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_RESPONSE_IS_NOT_CONFORM')
    return SsoErrors.exchangeFailed('unexpected response', error);
  if (code.startsWith('OAUTH_')) return SsoErrors.exchangeFailed(code.slice('OAUTH_'.length).toLowerCase().replace(/_/g, ' '), error);
  return SsoErrors.providerUnavailable(error);
}

const safeCode = (value: unknown) => (typeof value === 'string' && /^[\x20-\x7e]{1,80}$/.test(value) ? value : 'error');
