/** Thin client for the gateway's JSON API (same origin, session cookie). */

export interface Principal { name: string; roles: string[] }
export interface Provider { id: string; name: string }
export interface Session { id: string; current: boolean; createdAt: string; lastSeenAt: string; userAgent?: string | null; ip?: string | null }
export interface User { name: string; roles: string[]; groups?: string[]; disabled: boolean; email?: string | null; createdAt: string }
export interface Group { name: string; roles: string[]; members: string[] }
export interface Device {
  id: string; name: string; online: boolean; lastSeenAt: string | null;
  hostname: string | null; agentVersion: string | null; allowedRoles: string[];
}
/** What admins see of a device. */
export interface AdminDevice extends Device {
  disabled: boolean;
  enrolled?: boolean;
  hostKeyFingerprint?: string | null;
  /** The latest enrollment token's state (the token itself is shown only once). */
  enrollment?: { expiresAt: string; used: boolean } | null;
  /** Terminals open on the device. */
  sessions?: number;
}
export interface Enrollment { token: string; expiresAt: string; command: string }
export type ConnectionAuth = 'none' | 'bearer' | 'oauth2.1' | 'oauth2.1-static';
export interface Connection { name: string; url: string; auth: ConnectionAuth; authorized: boolean }
export interface AdminConnection {
  name: string; url: string; auth: ConnectionAuth;
  clientId?: string | null; scope?: string | null;
  /** The callback to register at the authorization server (for `oauth2.1-static`). */
  redirectUri?: string | null;
  authorizationServer?: string | null;
  registered?: boolean;
}

/** An error answered by the API: `{"error": code, "message": text}` with its HTTP status. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();
const pendingListeners = new Set<(n: number) => void>();
let pending = 0;

function setPending(delta: number) {
  pending += delta;
  for (const l of pendingListeners) l(pending);
}

/** Follows how many foreground API calls are in flight (for the progress bar). */
export function onPending(listener: (n: number) => void): () => void {
  pendingListeners.add(listener);
  return () => pendingListeners.delete(listener);
}

/** Called whenever an API call answers 401 (the session ended or was revoked). */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

async function errorFrom(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || `Request failed (${res.status})`;
  try {
    const body: unknown = await res.json();
    if (body && typeof body === 'object') {
      const b = body as Record<string, unknown>;
      if (typeof b.error === 'string') code = b.error;
      if (typeof b.message === 'string' && b.message) message = b.message;
      else if (typeof b.error_description === 'string') message = b.error_description;
    }
  } catch {
    // Not JSON (a proxy or the SPA fallback answered): keep the status line.
  }
  return new ApiError(res.status, code, message);
}

export interface CallOptions {
  /** Do not tell the app that the session ended (used by the sign-in check). */
  quiet401?: boolean;
  /** A background poll: no progress bar. */
  background?: boolean;
}

/** Calls the API and returns the parsed JSON body (undefined for 204). */
export async function api<T>(method: string, path: string, body?: unknown, opts: CallOptions = {}): Promise<T> {
  if (opts.background) return call<T>(method, path, body, opts);
  setPending(1);
  try {
    return await call<T>(method, path, body, opts);
  } finally {
    setPending(-1);
  }
}

async function call<T>(method: string, path: string, body: unknown, opts: CallOptions): Promise<T> {
  const init: RequestInit = {
    method,
    credentials: 'same-origin',
    headers: { accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers = { accept: 'application/json', 'content-type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The gateway cannot be reached. Check your connection and try again.');
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && !opts.quiet401) for (const l of unauthorizedListeners) l();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  if (!type.includes('json')) {
    // The SPA fallback answers HTML for an API path the gateway does not have.
    throw new ApiError(404, 'not_found', 'This feature is not available on this gateway.');
  }
  return (await res.json()) as T;
}

export const get = <T>(path: string, opts?: CallOptions) => api<T>('GET', path, undefined, opts);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const put = <T>(path: string, body: unknown) => api<T>('PUT', path, body);
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const del = (path: string) => api<void>('DELETE', path);

/** Encodes one path segment (names may hold any character). */
export const seg = (s: string) => encodeURIComponent(s);

/** True when the error means "this endpoint does not exist here" (feature not built or not configured). */
export const isMissing = (e: unknown) => e instanceof ApiError && (e.status === 404 || e.status === 501);

export const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));
