import * as client from 'openid-client';
import { ConnectionErrors, clip } from './errors.ts';
import type { Outbound } from './outbound.ts';
import type { ClientInfo } from './registration.ts';

/** Token endpoint answer, normalized: `expiresAt` always set (ms). */
export interface TokenSet {
  readonly accessToken: string;
  readonly refreshToken: string | undefined;
  readonly tokenType: string;
  readonly scope: string | undefined;
  readonly expiresAt: number;
  readonly obtainedAt: number;
}

/** When the server gives no lifetime, assume one hour (as the reference implementation does). */
export const DEFAULT_TOKEN_LIFETIME_MS = 3_600_000;

/** Why a grant failed: the refresh token is dead, the client is unknown, or something transient. */
export type GrantFailure = 'invalid_grant' | 'invalid_client' | 'transient';

export class GrantError extends Error {
  readonly failure: GrantFailure;
  readonly detail: string;
  constructor(failure: GrantFailure, detail: string, cause: unknown) {
    super(detail, { cause });
    this.name = 'GrantError';
    this.failure = failure;
    this.detail = detail;
  }
}

/**
 * PKCE S256 is used unless the server's metadata lists code challenge methods and S256
 * is not among them (OAuth 2.1 makes PKCE mandatory; the reference implementation omits it only then).
 */
export function usesPkce(info: ClientInfo): boolean {
  const methods = info.metadata.code_challenge_methods_supported;
  return !(Array.isArray(methods) && methods.length > 0 && !methods.includes('S256'));
}

/** The openid-client configuration for a connection's client. */
export function configurationFor(info: ClientInfo, outbound: Outbound, trustedHost: string): client.Configuration {
  const auth =
    info.authMethod === 'client_secret_post'
      ? client.ClientSecretPost(info.clientSecret)
      : info.authMethod === 'client_secret_basic'
        ? client.ClientSecretBasic(info.clientSecret)
        : client.None();
  const metadata: Partial<client.ClientMetadata> = { token_endpoint_auth_method: info.authMethod };
  if (info.clientSecret) metadata.client_secret = info.clientSecret;
  const config = new client.Configuration(info.metadata as client.ServerMetadata, info.clientId, metadata, auth);
  config[client.customFetch] = outbound.fetchFor(trustedHost) as client.CustomFetch;
  config.timeout = Math.ceil(outbound.policy.timeoutMs / 1000);
  // http endpoints have already passed the outbound policy (trusted host, or tests).
  const endpoints = [info.metadata.token_endpoint, info.metadata.authorization_endpoint];
  if (endpoints.some((e) => e.startsWith('http:'))) client.allowInsecureRequests(config);
  return config;
}

export interface AuthorizationRequest {
  readonly url: URL;
  readonly state: string;
  readonly codeVerifier: string | undefined;
}

/** Builds the authorization URL: state, PKCE S256 unless excluded, scope only when configured. */
export async function authorizationRequest(config: client.Configuration, info: ClientInfo, scope: string | null): Promise<AuthorizationRequest> {
  const state = client.randomState();
  const params: Record<string, string> = { redirect_uri: info.redirectUri, response_type: 'code', state };
  let codeVerifier: string | undefined;
  if (usesPkce(info)) {
    codeVerifier = client.randomPKCECodeVerifier();
    params.code_challenge = await client.calculatePKCECodeChallenge(codeVerifier);
    params.code_challenge_method = 'S256';
  }
  if (scope) params.scope = scope;
  if (info.resource) params.resource = info.resource;
  return { url: client.buildAuthorizationUrl(config, params), state, codeVerifier };
}

/**
 * Whether the authorization endpoint rejects the client as unknown. RFC 6749 §4.1.2.1
 * forbids redirecting such an error, so the server shows it to the user instead: the
 * gateway asks first, without following redirects. There is no standard error code for
 * this page, so the check accepts the words servers use (as the reference implementation does).
 */
export async function clientRejected(url: URL, outbound: Outbound, trustedHost: string): Promise<boolean> {
  let response: Response;
  try {
    response = await outbound.fetch(url, { trustedHost, followRedirects: false, headers: { accept: 'application/json, text/html' } });
  } catch {
    return false;
  }
  if (response.status < 400) {
    await response.body?.cancel();
    return false;
  }
  const text = (await response.text()).slice(0, 4096);
  let error = '';
  let description = text;
  if ((response.headers.get('content-type') ?? '').includes('json')) {
    try {
      const body = JSON.parse(text) as { error?: unknown; error_description?: unknown };
      error = typeof body.error === 'string' ? body.error : '';
      description = typeof body.error_description === 'string' ? body.error_description : '';
    } catch {
      // Not JSON after all: judge the text.
    }
  }
  return error === 'invalid_client' || /invalid[ _]client|unknown client|client[ _]id/i.test(`${error} ${description}`);
}

function toTokenSet(response: client.TokenEndpointResponse, now: number, previousRefresh?: string): TokenSet {
  const lifetime = typeof response.expires_in === 'number' && response.expires_in > 0 ? response.expires_in * 1000 : DEFAULT_TOKEN_LIFETIME_MS;
  return {
    accessToken: response.access_token,
    // A server may keep the refresh token unchanged and not send it again (RFC 6749 §6).
    refreshToken: response.refresh_token ?? previousRefresh,
    tokenType: response.token_type ?? 'bearer',
    scope: response.scope,
    expiresAt: now + lifetime,
    obtainedAt: now,
  };
}

/** Classifies a failed grant; reads the server's error from the response when the library left it there. */
async function grantError(error: unknown): Promise<GrantError> {
  if (error instanceof client.ResponseBodyError) {
    const detail = clip([`HTTP ${error.status}`, error.error, error.error_description].filter(Boolean).join(' '));
    if (error.error === 'invalid_grant') return new GrantError('invalid_grant', detail, error);
    if (error.error === 'invalid_client' || error.error === 'unauthorized_client') return new GrantError('invalid_client', detail, error);
    return new GrantError('transient', detail, error);
  }
  // A 5xx (or another non-conforming answer) comes back with the Response as the cause.
  const response = (error as { cause?: unknown })?.cause;
  if (response instanceof Response) {
    let said = '';
    try {
      const body = (await response.clone().json()) as { error?: unknown; error_description?: unknown };
      said = [body.error, body.error_description].filter((v) => typeof v === 'string').join(' ');
    } catch {
      // Not JSON: the status says enough.
    }
    return new GrantError('transient', clip(`HTTP ${response.status}${said ? ` ${said}` : ''}`), error);
  }
  const code = (error as { code?: string })?.code;
  return new GrantError('transient', clip(code ? `${code}: ${(error as Error).message}` : String((error as Error)?.message ?? error)), error);
}

/** Whether a failed token request said the client is unknown (or its secret wrong). */
export function isInvalidClient(error: unknown): boolean {
  const cause = (error as { cause?: unknown })?.cause ?? error;
  return cause instanceof client.ResponseBodyError && cause.error === 'invalid_client';
}

/** Exchanges the authorization code (RFC 6749 §4.1.3) with the PKCE verifier and state check. */
export async function exchangeCode(
  config: client.Configuration,
  info: ClientInfo,
  callbackQuery: string,
  checks: { state: string; codeVerifier: string | undefined },
  now: number,
): Promise<TokenSet> {
  // The redirect URI sent to the token endpoint is derived from this URL: build it from
  // the registered one, not from the request (a reverse proxy may change the host).
  const current = new URL(info.redirectUri);
  current.search = callbackQuery;
  try {
    const extra: Record<string, string> = info.resource ? { resource: info.resource } : {};
    const response = await client.authorizationCodeGrant(
      config,
      current,
      { expectedState: checks.state, ...(checks.codeVerifier ? { pkceCodeVerifier: checks.codeVerifier } : {}) },
      extra,
    );
    return toTokenSet(response, now);
  } catch (error) {
    if (error instanceof client.AuthorizationResponseError) {
      // The authorization response itself carried an error (the user declined, …): no token request was made.
      throw ConnectionErrors.authorizationRefused(clip([error.error, error.error_description].filter(Boolean).join(': ')), error);
    }
    throw ConnectionErrors.tokenRequestFailed((await grantError(error)).detail, error);
  }
}

/** RFC 6749 §6 refresh; failures come back classified (see GrantFailure). */
export async function refresh(config: client.Configuration, info: ClientInfo, refreshToken: string, now: number): Promise<TokenSet> {
  try {
    const response = await client.refreshTokenGrant(config, refreshToken, info.resource ? { resource: info.resource } : undefined);
    return toTokenSet(response, now, refreshToken);
  } catch (error) {
    throw await grantError(error);
  }
}
