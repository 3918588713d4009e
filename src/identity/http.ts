import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { IdentityErrors } from './errors.ts';
import { hasRole, type Authentication } from './principal.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the authentication hook of every context that needs a principal. */
    auth: Authentication;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Cookie-authenticated writes (and WebSocket upgrades) must come from our own pages:
 * the Origin (or, failing that, Referer) must be this gateway's public origin or the
 * origin the browser used to reach it.
 */
export function isSameOrigin(headers: IncomingHttpHeaders, publicOrigin: string): boolean {
  const origin = headers.origin ?? refererOrigin(headers.referer);
  if (!origin || origin === 'null') return false;
  if (origin === publicOrigin) return true;
  const host = headers.host;
  if (!host) return false;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

function refererOrigin(referer: string | undefined): string | undefined {
  if (!referer) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return undefined;
  }
}

export function checkCsrf(method: string, headers: IncomingHttpHeaders, auth: Authentication, publicOrigin: string): void {
  if (auth.method === 'session' && !SAFE_METHODS.has(method) && !isSameOrigin(headers, publicOrigin)) throw IdentityErrors.csrf();
}

/** 401 when the caller brought no credentials, 403 when their principal lacks the role. */
export function requireRole(auth: Authentication, role: string): void {
  if (hasRole(auth.principal, role)) return;
  if (auth.method === 'anonymous') throw IdentityErrors.authenticationRequired();
  throw IdentityErrors.forbidden(role);
}

/** A Fastify preHandler that enforces a role. */
export function roleGuard(role: string) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    requireRole(request.auth, role);
  };
}
