import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import { PortcullisError } from '../errors.ts';
import { ROLE_USER, readCookie, roleGuard, sessionCookie, type SessionManager } from '../identity/index.ts';
import type { SecretBox } from '../store/index.ts';
import type { BackchannelLogout } from './backchannel.ts';
import { safeReturnPath } from './claims.ts';
import { SsoErrors, loginMessage } from './errors.ts';
import { clearedLoginCookie, loginCookie, openLogin, sealLogin, type LoginCookie } from './login-state.ts';
import type { ProviderClient } from './providers.ts';
import type { Provisioner } from './provisioning.ts';
import type { SsoDb } from './tables.ts';
import type { ProviderSessions } from './tokens.ts';

export interface SsoRouteDeps {
  clients: ReadonlyMap<string, ProviderClient>;
  provisioner: Provisioner;
  tokens: ProviderSessions;
  backchannel: BackchannelLogout;
  sessions: SessionManager;
  secrets: SecretBox;
  db: SsoDb;
  logger: Logger;
  publicUrl: () => string;
  now: () => number;
  sessionCookie: { name: string; maxAgeSeconds: number };
  loginTimeoutSeconds: number;
}

/** Largest back-channel logout request body, bytes. */
const MAX_FORM_BYTES = 64 * 1024;

const idParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 100 } },
} as const;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The routes that need no principal: the provider list for the login page, login,
 * callback, and back-channel logout (its own context, for its form body parser).
 */
export async function registerPublicSsoRoutes(app: FastifyInstance, deps: SsoRouteDeps): Promise<void> {
  const secure = () => deps.publicUrl().startsWith('https:');
  const redirectUri = (id: string) => `${deps.publicUrl()}/auth/sso/${encodeURIComponent(id)}/callback`;
  const pendingCookie = (id: string): LoginCookie => ({ name: `${deps.sessionCookie.name}_sso_${id}`, path: `/auth/sso/${id}`, secure: secure() });
  const clientFor = (id: string) => {
    const client = deps.clients.get(id);
    if (!client) throw SsoErrors.providerNotFound(id);
    return client;
  };

  app.get('/api/auth/providers', async (_request, reply) => {
    reply.header('cache-control', 'no-cache');
    return [...deps.clients.values()].map((c) => ({ id: c.id, name: c.name }));
  });

  await app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: MAX_FORM_BYTES }, (_request, body, done) => {
      done(null, new URLSearchParams(body as string));
    });
    // Any other body is not a logout request: answered in the spec's error format, not 415.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('*', (_request, payload, done) => {
      payload.resume();
      done(null, undefined);
    });

    scope.get<{ Params: { id: string }; Querystring: { next?: string } }>('/auth/sso/:id/login', { schema: { params: idParam } }, async (request, reply) => {
      const client = clientFor(request.params.id);
      reply.header('cache-control', 'no-store');
      const checks = {
        state: oidc.randomState(),
        nonce: client.usesNonce ? oidc.randomNonce() : undefined,
        codeVerifier: oidc.randomPKCECodeVerifier(),
      };
      let target: URL;
      try {
        target = await client.authorizationUrl(redirectUri(client.id), checks);
      } catch (error) {
        return failLogin(reply, deps.logger, client.id, error);
      }
      const sealed = sealLogin(deps.secrets, client.id, {
        ...checks,
        returnTo: safeReturnPath(request.query.next),
        expiresAt: deps.now() + deps.loginTimeoutSeconds * 1000,
      });
      reply.header('set-cookie', loginCookie(pendingCookie(client.id), sealed, deps.loginTimeoutSeconds));
      return reply.redirect(target.href, 302);
    });

    scope.get<{ Params: { id: string } }>('/auth/sso/:id/callback', { schema: { params: idParam } }, async (request, reply) => {
      const client = clientFor(request.params.id);
      const cookie = pendingCookie(client.id);
      reply.header('cache-control', 'no-store');
      reply.header('set-cookie', clearedLoginCookie(cookie));
      try {
        const userName = await finishLogin(request, reply, client, cookie, deps);
        deps.logger.info({ provider: client.id, user: userName }, 'signed in through single sign-on');
        return reply;
      } catch (error) {
        return failLogin(reply, deps.logger, client.id, error);
      }
    });

    scope.post<{ Body: URLSearchParams | undefined }>('/auth/sso/backchannel-logout', async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const body = request.body instanceof URLSearchParams ? request.body : undefined;
      const tokens = body?.getAll('logout_token') ?? [];
      const result = await deps.backchannel.handle(tokens.length === 1 ? tokens[0] : tokens.length > 1 ? '' : undefined);
      return reply.code(result.status).send(result.body);
    });
  });
}

async function finishLogin(request: FastifyRequest, reply: FastifyReply, client: ProviderClient, cookie: LoginCookie, deps: SsoRouteDeps): Promise<string> {
  const query = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '');
  const pending = openLogin(deps.secrets, client.id, readCookie(request.headers.cookie ?? '', cookie.name), deps.now());
  if (!pending) throw SsoErrors.loginExpired();
  if (query.get('state') !== pending.state) throw SsoErrors.stateMismatch();
  // Only an answer to the login this browser started may put the provider's words on the
  // login page (else anyone could link to a callback carrying a message of their choice).
  const providerError = query.get('error');
  if (providerError !== null) throw SsoErrors.providerError(providerError.slice(0, 80), query.get('error_description')?.slice(0, 120) ?? undefined);

  const callbackUrl = new URL(`${deps.publicUrl()}/auth/sso/${encodeURIComponent(client.id)}/callback`);
  callbackUrl.search = query.toString();
  const result = await client.signIn(callbackUrl, pending);
  const user = await deps.provisioner.signIn(client, result.claims, result.tokens.access_token);

  const { token, record } = await deps.sessions.create(user.userName, {
    userAgent: request.headers['user-agent'],
    ip: request.ip,
    ssoProvider: client.id,
    ssoSid: result.sid,
  });
  await deps.tokens.store(
    { provider: client.id, subject: user.subject, userName: user.userName, sessionId: record.id, sid: result.sid, tokens: result.tokens },
    client.config.maxSessionsPerUser,
  );
  // Appended to the cleared login cookie the route already set.
  reply.header('set-cookie', sessionCookie({ name: deps.sessionCookie.name, maxAgeSeconds: deps.sessionCookie.maxAgeSeconds, secure: cookie.secure }, token));
  reply.redirect(pending.returnTo, 302);
  return user.userName;
}

/**
 * A failed login answers with the failure's status (403 for a refusal, 400 for a bad
 * response, 502 when the provider fails) and a page that sends the browser on to the
 * login page with a short, single-line message. Details stay in the log.
 */
function failLogin(reply: FastifyReply, logger: Logger, provider: string, error: unknown): FastifyReply {
  const known = error instanceof PortcullisError ? error : undefined;
  const status = known?.status ?? 500;
  const code = known?.code ?? 'sso_internal_error';
  const message = loginMessage(known?.message ?? 'Single sign-on failed because of an internal error.');
  const cause = (known?.cause ?? (known ? undefined : error)) as { code?: string; name?: string } | undefined;
  const fields = { provider, code, cause: cause ? { name: cause.name, code: cause.code } : undefined };
  if (status >= 500) logger.warn(fields, 'single sign-on failed');
  else logger.info(fields, 'single sign-on refused');
  const target = `/login?error=${encodeURIComponent(message)}`;
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', "default-src 'none'")
    .header('x-portcullis-error', code)
    .send(
      `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${escapeHtml(target)}"><title>Sign-in failed</title></head>` +
        `<body><p>${escapeHtml(message)}</p><p><a href="${escapeHtml(target)}">Back to sign-in</a></p></body></html>`,
    );
}

/** Routes behind the authentication hook. */
export function registerSsoRoutes(app: FastifyInstance, deps: SsoRouteDeps): void {
  // The caller's SSO sign-in: provider, identity and token status (never the tokens).
  // Reading it refreshes provider tokens that are near expiry.
  app.get('/api/me/sso', { preHandler: roleGuard(ROLE_USER) }, async (request) => {
    const sessionId = request.auth.sessionId;
    const row = sessionId ? await deps.tokens.rowForSession(sessionId) : undefined;
    const session = sessionId ? await sessionOf(deps, sessionId) : undefined;
    const provider = row?.provider ?? session?.provider;
    if (!sessionId || !provider) throw SsoErrors.notSsoSession();
    const client = deps.clients.get(provider);
    const subject = row?.subject;
    const identity = subject
      ? await deps.db.selectFrom('sso_identities').selectAll().where('provider', '=', provider).where('subject', '=', subject).executeTakeFirst()
      : undefined;
    const token = row ? await deps.tokens.token(row.id) : null;
    return {
      provider: { id: provider, name: client?.name ?? provider },
      subject: subject ?? null,
      email: identity?.email ?? null,
      displayName: identity?.display_name ?? null,
      token: token ? { expiresAt: new Date(token.expiresAt).toISOString(), scope: token.scope ?? null, refreshable: token.refreshable } : null,
    };
  });
}

async function sessionOf(deps: SsoRouteDeps, sessionId: string): Promise<{ provider: string | null } | undefined> {
  const row = await deps.db.selectFrom('sessions').select('sso_provider').where('id', '=', sessionId).executeTakeFirst();
  return row ? { provider: row.sso_provider } : undefined;
}
