import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ROLE_ADMIN, checkCsrf, roleGuard, type Authentication, type Authenticator } from '../identity/index.ts';
import type { JwtIssuer } from '../tokens/index.ts';
import type { Forwarder } from './forwarder.ts';
import type { ForwardContext } from './headers.ts';
import type { ProxyTarget } from './target.ts';
import { forwardUpgrade } from './upgrade.ts';

export interface ProxyDeps {
  target: ProxyTarget;
  forwarder: Forwarder;
  jwt: JwtIssuer;
  authenticator: Authenticator;
  cookieName: string;
  trustedProxies: ReadonlySet<string>;
  upgradeTimeoutMs: number;
  /** The gateway's public origin, for the CSRF check of cookie-authenticated writes. */
  publicOrigin: () => string;
}

const DISABLED = 'The proxy is disabled.';

/** `/proxy?x` → `/?x`, `/proxy/a/b?x` → `/a/b?x`. */
export function subPathOf(url: string): string {
  const rest = url.slice('/proxy'.length);
  if (rest === '' || rest[0] === '?') return '/' + rest;
  return rest;
}

function context(req: IncomingMessage, auth: Authentication, jwt: string, deps: ProxyDeps): ForwardContext {
  const clientIp = req.socket.remoteAddress ?? '';
  return { jwt, cookieName: deps.cookieName, trusted: deps.trustedProxies.has(clientIp), clientIp };
}

/**
 * `/proxy` needs no authentication (the target decides) but always identifies the caller:
 * the forwarded request carries the caller's JWT, anonymous included. Wrong credentials
 * are still a 401: they never silently become anonymous.
 */
export function registerProxyRoutes(app: FastifyInstance, deps: ProxyDeps): void {
  // Bodies are streamed to the target, never parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const handler = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    const target = deps.target.current;
    if (!target) {
      reply.code(501).type('text/plain; charset=utf-8').send(DISABLED);
      return reply;
    }
    const auth = await deps.authenticator.authenticate(request.headers, request.ip);
    // The forwarded JWT carries the user's roles: a cross-site page must not write with them.
    checkCsrf(request.method, request.headers, auth, deps.publicOrigin());
    const jwt = await deps.jwt.issue(auth.principal);
    reply.hijack();
    await deps.forwarder.forward(request.raw, reply.raw, target, subPathOf(request.raw.url ?? '/proxy'), context(request.raw, auth, jwt, deps));
    return reply;
  };
  app.all('/proxy', handler);
  app.all('/proxy/*', handler);
}

export function registerProxyAdminRoutes(app: FastifyInstance, deps: Pick<ProxyDeps, 'target'>): void {
  const admin = { preHandler: roleGuard(ROLE_ADMIN) };
  app.get('/api/admin/proxy', admin, async () => ({ url: deps.target.current?.href ?? null }));
  app.put<{ Body: { url: string | null } }>(
    '/api/admin/proxy',
    {
      ...admin,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: { url: { type: ['string', 'null'], maxLength: 2048 } },
        },
      },
    },
    async (request) => {
      const value = request.body.url === '' ? null : request.body.url;
      const target = await deps.target.set(value);
      return { url: target?.href ?? null };
    },
  );
}

/** Upgrade requests under /proxy (WebSockets to the proxied app). */
export async function handleProxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, auth: Authentication, deps: ProxyDeps): Promise<void> {
  const target = deps.target.current;
  if (!target) {
    socket.end(`HTTP/1.1 501 Not Implemented\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${DISABLED.length}\r\nconnection: close\r\n\r\n${DISABLED}`);
    return;
  }
  const jwt = await deps.jwt.issue(auth.principal);
  forwardUpgrade(req, socket, head, target, subPathOf(req.url ?? '/proxy'), context(req, auth, jwt, deps), deps.upgradeTimeoutMs);
}
