import { PortcullisError } from '../errors.ts';

/** Keeps a remote server's words short, single-line and free of control characters. */
export function clip(text: string, max = 200): string {
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

/**
 * Catalogue of connection failures. 4xx: the caller's mistake; 502/504: the remote
 * resource or authorization server failed or said something we cannot use.
 */
export const ConnectionErrors = {
  invalidName: (name: string) =>
    new PortcullisError(400, 'invalid_connection_name', `"${clip(name, 60)}" is not a valid connection name (letters, digits, . _ -, at most 64, starting with a letter or digit).`),
  invalidUrl: (why: string) => new PortcullisError(400, 'invalid_connection_url', `The connection URL ${why}.`),
  invalidInput: (message: string) => new PortcullisError(400, 'invalid_connection', message),
  exists: (name: string) => new PortcullisError(409, 'connection_exists', `A connection named "${name}" already exists.`),
  notFound: (name: string) => new PortcullisError(404, 'connection_not_found', `No connection named "${clip(name, 64)}".`),
  notOAuth: (name: string) => new PortcullisError(400, 'connection_not_oauth', `Connection "${name}" does not use OAuth; there is nothing to authorize.`),
  /** No usable token for this user: the body links to the authorize endpoint. */
  authorizationRequired: (name: string, authorize: string, why: string) =>
    new PortcullisError(401, 'connection_authorization_required', `${why} Authorize the connection "${name}" at ${authorize}`, {
      details: { connection: name, authorize },
    }),
  /** The resource refused a token mid-stream; a new one is ready, the body could not be replayed. */
  retryWithRenewedToken: (name: string) =>
    new PortcullisError(503, 'connection_token_renewed', `The resource of "${name}" refused the access token it was sent; the gateway has renewed it. Send the request again.`),
  invalidState: (why: string) => new PortcullisError(400, 'invalid_state', `This authorization cannot be completed: ${why}. Start again from the authorize link.`),
  badPath: () => new PortcullisError(400, 'invalid_connection_path', 'The path must not contain "." or ".." segments.'),

  unreachable: (url: string, cause: unknown) =>
    new PortcullisError(502, 'connection_unreachable', `${url} could not be reached (${describeCause(cause)}).`, { cause }),
  forbiddenAddress: (url: string, why: string) => new PortcullisError(502, 'connection_url_refused', `Refusing to contact ${clip(url, 120)}: ${why}.`),
  tooLarge: (url: string, limit: number) => new PortcullisError(502, 'response_too_large', `${clip(url, 120)} answered with more than ${limit} bytes.`),
  metadataInvalid: (url: string, why: string) => new PortcullisError(502, 'metadata_invalid', `The metadata at ${clip(url, 120)} is malformed: ${why}.`),
  discoveryFailed: (tried: readonly string[], detail: string) =>
    new PortcullisError(502, 'discovery_failed', `No authorization server metadata found (${detail}); tried ${tried.map((u) => clip(u, 120)).join(', ')}.`),
  unsupportedAuthMethod: (offered: readonly string[]) =>
    new PortcullisError(502, 'unsupported_auth_method', `The authorization server offers no token endpoint auth method the gateway supports (it offers ${clip(offered.join(', '), 120)}).`),
  registrationFailed: (url: string, detail: string) =>
    new PortcullisError(502, 'registration_failed', `Client registration at ${clip(url, 120)} failed: ${clip(detail)}.`),
  clientRejected: (name: string) =>
    new PortcullisError(502, 'client_rejected', `The authorization server of "${name}" does not know the configured client id; check the connection's client id.`),
  authorizationRefused: (detail: string, cause?: unknown) =>
    new PortcullisError(502, 'authorization_refused', `The authorization server did not grant access: ${clip(detail)}.`, { cause }),
  tokenRequestFailed: (detail: string, cause?: unknown) =>
    new PortcullisError(502, 'token_request_failed', `The authorization server refused the token request: ${clip(detail)}.`, { cause }),
  refreshUnavailable: (name: string, detail: string, cause?: unknown) =>
    new PortcullisError(502, 'token_refresh_failed', `The access token for "${name}" expired and could not be refreshed (${clip(detail)}); try again shortly.`, { cause }),
};

/** A short, stable description of a network failure (codes, never stack text). */
export function describeCause(cause: unknown): string {
  let error = cause as { code?: string; name?: string; message?: string; cause?: unknown } | undefined;
  // fetch wraps the socket error: the interesting code is one level down.
  for (let depth = 0; depth < 3 && error; depth++) {
    if (typeof error.code === 'string' && error.code !== 'ERR_INVALID_ARG_TYPE') return error.code;
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timed out';
    error = error.cause as typeof error;
  }
  return clip(String((cause as Error)?.message ?? cause), 80);
}
