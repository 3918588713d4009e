import { ConnectionErrors, clip } from './errors.ts';
import { jsonObject, type Outbound } from './outbound.ts';

/** RFC 8414 / OpenID Connect Discovery metadata: the fields the gateway uses. */
export interface ServerMetadata {
  issuer?: string;
  authorization_endpoint: string;
  token_endpoint: string;
  registration_endpoint?: string;
  scopes_supported?: string[];
  response_types_supported?: string[];
  grant_types_supported?: string[];
  code_challenge_methods_supported?: string[];
  token_endpoint_auth_methods_supported?: string[];
  authorization_response_iss_parameter_supported?: boolean;
  [key: string]: unknown;
}

/** What discovery found for a resource. */
export interface Discovery {
  /** The RFC 9728 resource identifier, when the resource published metadata (sent as RFC 8707 `resource`). */
  readonly resource: string | undefined;
  readonly resourceMetadataUrl: string | undefined;
  readonly authorizationServers: readonly string[];
  readonly metadataUrl: string;
  readonly metadata: ServerMetadata;
}

const PRM = '/.well-known/oauth-protected-resource';
const OAUTH_AS = '/.well-known/oauth-authorization-server';
const OIDC = '/.well-known/openid-configuration';

function pathOf(url: URL): string {
  return url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
}

/** RFC 9728 §3.1 well-known URLs for a resource: path-aware first, then the root. */
export function resourceMetadataUrls(resourceUrl: string): string[] {
  const url = new URL(resourceUrl);
  const path = pathOf(url);
  const urls = path ? [url.origin + PRM + path] : [];
  urls.push(url.origin + PRM);
  return urls;
}

/**
 * RFC 8414 §3.1 and OpenID Connect Discovery URLs for an issuer: for an issuer with a
 * path, the path-aware forms first (RFC 8414 inserted, OIDC inserted, OIDC appended),
 * then the root forms.
 */
export function authorizationServerMetadataUrls(issuer: string): string[] {
  const url = new URL(issuer.replace(/\/+$/, ''));
  const path = pathOf(url);
  const urls = path ? [url.origin + OAUTH_AS + path, url.origin + OIDC + path, url.origin + path + OIDC] : [];
  urls.push(url.origin + OAUTH_AS, url.origin + OIDC);
  return urls;
}

/** The `resource_metadata` parameter of a `WWW-Authenticate` challenge (RFC 9728 §5.1), quoted or not. */
export function resourceMetadataParam(header: string | null): string | undefined {
  if (!header) return undefined;
  const match = /(?:^|[\s,])resource_metadata\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/i.exec(header);
  if (!match) return undefined;
  return (match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : match[2]) || undefined;
}

/**
 * Every metadata URL to try, in order: each authorization server's (from the resource's
 * metadata), then the resource's own URL and origin as a fallback.
 */
export function metadataCandidates(authorizationServers: readonly string[], resourceUrl: string): string[] {
  const urls: string[] = [];
  for (const server of authorizationServers) urls.push(...authorizationServerMetadataUrls(server));
  urls.push(...authorizationServerMetadataUrls(resourceUrl));
  return [...new Set(urls)];
}

const stringList = (value: unknown) => Array.isArray(value) && value.every((v) => typeof v === 'string');

function httpUrl(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/** Validates authorization server metadata; returns why it is unusable, or undefined. */
export function metadataProblem(value: Record<string, unknown>): string | undefined {
  if (!httpUrl(value.authorization_endpoint)) return 'authorization_endpoint is missing or not an http(s) URL';
  if (!httpUrl(value.token_endpoint)) return 'token_endpoint is missing or not an http(s) URL';
  if (value.registration_endpoint !== undefined && !httpUrl(value.registration_endpoint)) return 'registration_endpoint is not an http(s) URL';
  if (value.issuer !== undefined && typeof value.issuer !== 'string') return 'issuer is not a string';
  for (const key of ['scopes_supported', 'response_types_supported', 'grant_types_supported', 'code_challenge_methods_supported', 'token_endpoint_auth_methods_supported']) {
    if (value[key] !== undefined && !stringList(value[key])) return `${key} is not a list of strings`;
  }
  if (stringList(value.response_types_supported) && !(value.response_types_supported as string[]).includes('code')) return 'response_types_supported lacks "code"';
  return undefined;
}

/**
 * Discovers a resource's authorization server (SPEC §6): probe the resource; on 401 use
 * `resource_metadata` from `WWW-Authenticate`, else the RFC 9728 well-known URLs;
 * take its `authorization_servers`; for each, try the RFC 8414 and OIDC discovery URLs;
 * fall back to the resource's own URL and origin. The first valid metadata wins.
 * Throws a coded error saying what was tried and what was wrong.
 */
export async function discover(resourceUrl: string, outbound: Outbound): Promise<Discovery> {
  const trustedHost = new URL(resourceUrl).hostname;
  const problems: Problem[] = [];

  // An MCP initialize is what a client would send first; any protected resource answers it with 401.
  const probe = await outbound.fetch(resourceUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'portcullis', version: '1' } },
    }),
    trustedHost,
    followRedirects: false,
  });
  const fromHeader = probe.status === 401 ? resourceMetadataParam(probe.headers.get('www-authenticate')) : undefined;
  let prmCandidates: string[];
  if (fromHeader !== undefined) {
    try {
      prmCandidates = [new URL(fromHeader, resourceUrl).href];
    } catch {
      problems.push({ url: resourceUrl, why: `resource_metadata "${clip(fromHeader, 80)}" is not a URL`, kind: 'malformed' });
      prmCandidates = [];
    }
  } else {
    prmCandidates = resourceMetadataUrls(resourceUrl);
  }

  let resource: string | undefined;
  let resourceMetadataUrl: string | undefined;
  let authorizationServers: string[] = [];
  for (const candidate of prmCandidates) {
    const document = await fetchJsonObject(outbound, candidate, trustedHost, problems);
    if (!document) continue;
    const servers = document.authorization_servers;
    if (!stringList(servers) || (servers as string[]).length === 0 || !(servers as string[]).every(httpUrl)) {
      problems.push({ url: candidate, why: 'authorization_servers is not a list of http(s) URLs', kind: 'malformed' });
      continue;
    }
    authorizationServers = servers as string[];
    resourceMetadataUrl = candidate;
    resource = typeof document.resource === 'string' ? document.resource : resourceUrl;
    break;
  }

  const candidates = metadataCandidates(authorizationServers, resourceUrl);
  for (const candidate of candidates) {
    const document = await fetchJsonObject(outbound, candidate, trustedHost, problems);
    if (!document) continue;
    const problem = metadataProblem(document);
    if (problem) {
      problems.push({ url: candidate, why: problem, kind: 'malformed' });
      continue;
    }
    return { resource, resourceMetadataUrl, authorizationServers, metadataUrl: candidate, metadata: document as ServerMetadata };
  }
  const malformed = problems.find((p) => p.kind === 'malformed');
  const summary = clip(problems.map((p) => `${p.url}: ${p.why}`).join('; '), 600);
  if (malformed) throw ConnectionErrors.metadataInvalid(malformed.url, `${malformed.why} (all candidates: ${summary})`);
  throw ConnectionErrors.discoveryFailed([...prmCandidates, ...candidates], summary);
}

interface Problem {
  readonly url: string;
  readonly why: string;
  /** `missing`: not there (404, refused, unreachable); `malformed`: there but unusable. */
  readonly kind: 'missing' | 'malformed';
}

/** GET a metadata candidate: a Response on 200, undefined (with the reason noted) otherwise. */
/** A candidate's JSON object, or undefined with the reason recorded in `problems`. */
async function fetchJsonObject(outbound: Outbound, url: string, trustedHost: string, problems: Problem[]): Promise<Record<string, unknown> | undefined> {
  const response = await tryFetch(outbound, url, trustedHost, problems);
  if (!response) return undefined;
  const parsed = await jsonObject(response);
  if (parsed.ok) return parsed.value;
  problems.push({ url, why: parsed.why, kind: 'malformed' });
  return undefined;
}

async function tryFetch(outbound: Outbound, url: string, trustedHost: string, problems: Problem[]): Promise<Response | undefined> {
  let response: Response;
  try {
    response = await outbound.fetch(url, { headers: { accept: 'application/json' }, trustedHost });
  } catch (error) {
    // A refused address is an answer about this candidate, not about the resource.
    problems.push({ url, why: (error as Error).message, kind: 'missing' });
    return undefined;
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    problems.push({ url, why: `HTTP ${response.status}`, kind: 'missing' });
    return undefined;
  }
  return response;
}
