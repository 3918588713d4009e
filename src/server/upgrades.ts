import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { PortcullisError } from '../errors.ts';
import { isSameOrigin, type Authentication, type Authenticator } from '../identity/index.ts';

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, auth: Authentication, params: Record<string, string>) => void | Promise<void>;

interface Route {
  readonly pattern: RegExp;
  readonly keys: readonly string[];
  readonly handler: UpgradeHandler;
  /** Whether to authenticate the user (false for device agents, which prove themselves). */
  readonly authenticate: boolean;
}

/** Writes an HTTP error as the answer to an upgrade request and closes the socket. */
export function rejectUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: code, message });
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/**
 * Routes HTTP Upgrade requests (WebSockets) by path. Users are authenticated during the
 * upgrade, so a refusal is a real 401/403 status line, and cookie-authenticated upgrades
 * must come from our own origin (cross-site WebSocket hijacking).
 */
export class UpgradeRouter {
  readonly #routes: Route[] = [];
  readonly #authenticator: Authenticator;
  readonly #publicOrigin: () => string;
  readonly #onError: (error: unknown) => void;

  constructor(options: { authenticator: Authenticator; publicOrigin: () => string; onError: (error: unknown) => void }) {
    this.#authenticator = options.authenticator;
    this.#publicOrigin = options.publicOrigin;
    this.#onError = options.onError;
  }

  /** `path` uses `:name` segments, or ends in `*` to match a prefix. */
  add(path: string, handler: UpgradeHandler, options: { authenticate?: boolean } = {}): void {
    const keys: string[] = [];
    const source = path
      .split('/')
      .map((segment) => {
        if (segment.startsWith(':')) {
          keys.push(segment.slice(1));
          return '([^/?]+)';
        }
        if (segment === '*') return '.*';
        return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('/');
    this.#routes.push({ pattern: new RegExp(`^${source}(?:\\?.*)?$`), keys, handler, authenticate: options.authenticate ?? true });
  }

  async handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '/';
    for (const route of this.#routes) {
      const match = route.pattern.exec(url);
      if (!match) continue;
      const params: Record<string, string> = {};
      try {
        route.keys.forEach((key, i) => (params[key] = decodeURIComponent(match[i + 1]!)));
      } catch {
        rejectUpgrade(socket, 400, 'invalid_path', 'The request path is not valid.');
        return;
      }
      try {
        let auth: Authentication = { principal: { name: '', roles: [] }, method: 'anonymous' };
        if (route.authenticate) {
          auth = await this.#authenticator.authenticate(req.headers);
          if (auth.method === 'session' && !isSameOrigin(req.headers, this.#publicOrigin())) {
            rejectUpgrade(socket, 403, 'csrf_rejected', 'Cross-site WebSocket refused: the Origin does not match this gateway.');
            return;
          }
        }
        await route.handler(req, socket, head, auth, params);
      } catch (error) {
        if (error instanceof PortcullisError) {
          rejectUpgrade(socket, error.status, error.code, error.message);
        } else {
          this.#onError(error);
          rejectUpgrade(socket, 500, 'internal_error', 'Internal error.');
        }
      }
      return;
    }
    rejectUpgrade(socket, 404, 'not_found', 'Nothing accepts a WebSocket here.');
  }
}
