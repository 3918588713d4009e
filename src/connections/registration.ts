import type { Discovery, ServerMetadata } from './discovery.ts';
import { ConnectionErrors, clip } from './errors.ts';
import { jsonObject, type Outbound } from './outbound.ts';

/** Token endpoint auth methods the gateway can use, in order of preference. */
export const AUTH_METHODS = ['client_secret_post', 'client_secret_basic', 'none'] as const;
export type TokenEndpointAuthMethod = (typeof AUTH_METHODS)[number];

/**
 * Everything needed to act as the connection's OAuth client: kept sealed in the store
 * (the client secret and the server's metadata together).
 */
export interface ClientInfo {
  readonly clientId: string;
  readonly clientSecret?: string | undefined;
  readonly authMethod: TokenEndpointAuthMethod;
  readonly redirectUri: string;
  /** Registered by the gateway (RFC 7591), so it can register again when forgotten. */
  readonly dynamic: boolean;
  /** RFC 7591 `client_secret_expires_at`, epoch seconds (0 or absent: never). */
  readonly secretExpiresAt?: number | undefined;
  readonly registrationEndpoint?: string | undefined;
  readonly metadataUrl: string;
  readonly metadata: ServerMetadata;
  /** RFC 8707 resource indicator sent with authorization and token requests. */
  readonly resource?: string | undefined;
}

/**
 * Picks how to authenticate at the token endpoint from what the server lists:
 * `client_secret_post` when offered (as the reference implementation does), else the first listed method
 * the gateway supports. A server that lists nothing supports `client_secret_basic`
 * (RFC 8414 §2). Without a secret only `none` is possible.
 */
export function negotiateAuthMethod(supported: readonly string[] | undefined, hasSecret: boolean): TokenEndpointAuthMethod {
  const offered = supported && supported.length > 0 ? supported : ['client_secret_basic'];
  const usable = AUTH_METHODS.filter((m) => (hasSecret ? m !== 'none' : m === 'none'));
  if (usable.includes('client_secret_post') && offered.includes('client_secret_post')) return 'client_secret_post';
  const pick = offered.find((m): m is TokenEndpointAuthMethod => (usable as readonly string[]).includes(m));
  if (pick) return pick;
  // A server that lists nothing cannot refuse a public client outright; with a list, respect it.
  if (!hasSecret && !(supported && supported.length > 0)) return 'none';
  throw ConnectionErrors.unsupportedAuthMethod(offered);
}

/** The registration endpoint: the server's, else `/register` on its origin (as the reference implementation does). */
export function registrationEndpoint(discovery: Discovery): string {
  if (discovery.metadata.registration_endpoint) return discovery.metadata.registration_endpoint;
  const base = discovery.metadata.issuer ?? discovery.authorizationServers[0] ?? discovery.metadataUrl;
  return new URL('/register', base).href;
}

/**
 * RFC 7591 dynamic client registration with our redirect URI, the authorization_code and
 * refresh_token grants, and a negotiated token endpoint auth method. No scope is
 * registered unless the connection configures one.
 */
export async function registerClient(
  discovery: Discovery,
  options: { redirectUri: string; scope: string | null; outbound: Outbound; trustedHost: string; clientName?: string },
): Promise<ClientInfo> {
  // For registration the gateway wants a secret; `none` is the fallback when only public clients are allowed.
  const supported = discovery.metadata.token_endpoint_auth_methods_supported;
  let method: TokenEndpointAuthMethod;
  try {
    method = negotiateAuthMethod(supported, true);
  } catch (error) {
    if (supported?.includes('none')) method = 'none';
    else throw error;
  }
  const endpoint = registrationEndpoint(discovery);
  const body: Record<string, unknown> = {
    client_name: options.clientName ?? 'Portcullis',
    redirect_uris: [options.redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: method,
  };
  if (options.scope) body.scope = options.scope;
  const response = await options.outbound.fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
    trustedHost: options.trustedHost,
    followRedirects: false,
  });
  const parsed = await jsonObject(response);
  if (response.status !== 201 && response.status !== 200) {
    const detail = parsed.ok ? [parsed.value.error, parsed.value.error_description].filter((v) => typeof v === 'string').join(': ') : '';
    throw ConnectionErrors.registrationFailed(endpoint, `HTTP ${response.status}${detail ? ` ${detail}` : ''}`);
  }
  if (!parsed.ok) throw ConnectionErrors.registrationFailed(endpoint, `the response is ${parsed.why}`);
  const reply = parsed.value;
  if (typeof reply.client_id !== 'string' || reply.client_id === '') throw ConnectionErrors.registrationFailed(endpoint, 'the response has no client_id');
  const secret = typeof reply.client_secret === 'string' && reply.client_secret !== '' ? reply.client_secret : undefined;
  // The server decides in the end (RFC 7591 §3.2.1); without a secret only `none` can work.
  const granted = typeof reply.token_endpoint_auth_method === 'string' ? reply.token_endpoint_auth_method : method;
  let authMethod: TokenEndpointAuthMethod;
  if (!secret || granted === 'none') authMethod = 'none';
  else if ((AUTH_METHODS as readonly string[]).includes(granted)) authMethod = granted as TokenEndpointAuthMethod;
  else throw ConnectionErrors.registrationFailed(endpoint, `the server assigned the unsupported auth method "${clip(granted, 40)}"`);
  const expires = typeof reply.client_secret_expires_at === 'number' ? reply.client_secret_expires_at : undefined;
  return {
    clientId: reply.client_id,
    clientSecret: secret,
    authMethod,
    redirectUri: options.redirectUri,
    dynamic: true,
    secretExpiresAt: expires,
    registrationEndpoint: endpoint,
    metadataUrl: discovery.metadataUrl,
    metadata: discovery.metadata,
    resource: discovery.resource,
  };
}

/** Client information for `oauth2.1-static`: the admin's client id and secret, the discovered server. */
export function staticClient(discovery: Discovery, options: { clientId: string; clientSecret: string | undefined; redirectUri: string }): ClientInfo {
  return {
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    authMethod: negotiateAuthMethod(discovery.metadata.token_endpoint_auth_methods_supported, options.clientSecret !== undefined),
    redirectUri: options.redirectUri,
    dynamic: false,
    metadataUrl: discovery.metadataUrl,
    metadata: discovery.metadata,
    resource: discovery.resource,
  };
}
