import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ROLE_ADMIN, ROLE_USER, requireRole, roleGuard } from '../identity/index.ts';
import { ConnectionErrors } from './errors.ts';
import type { ConnectionForwarder } from './forward.ts';
import { AUTH_KINDS, safeReturnTo, type ConnectionInput, type ConnectionPatch, type ConnectionService, type LiveConnection } from './service.ts';

export interface ConnectionRouteDeps {
  service: ConnectionService;
  forwarder: ConnectionForwarder;
  trustedProxies: ReadonlySet<string>;
}

const nameParam = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;

const secretText = { type: 'string', maxLength: 4096 } as const;

/** Fields an admin may set at creation and change later. */
const editable = {
  url: { type: 'string', minLength: 1, maxLength: 2048 },
  auth: { type: 'string', enum: [...AUTH_KINDS] },
  token: secretText,
  clientId: { type: 'string', maxLength: 1024 },
  clientSecret: secretText,
  scope: { type: ['string', 'null'], maxLength: 1000 },
} as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'url', 'auth'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 64 }, ...editable },
} as const;

const patchBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: editable,
} as const;

/** The admin API and the user API (JSON, in the authenticated context). */
export function registerConnectionApi(app: FastifyInstance, deps: ConnectionRouteDeps): void {
  const { service } = deps;
  const admin = { preHandler: roleGuard(ROLE_ADMIN) };
  const user = { preHandler: roleGuard(ROLE_USER) };

  app.get('/api/admin/connections', admin, async () => service.list());
  app.post<{ Body: ConnectionInput }>('/api/admin/connections', { ...admin, schema: { body: createBody } }, async (request, reply) => {
    reply.code(201);
    return service.create(request.body);
  });
  app.get<{ Params: { name: string } }>('/api/admin/connections/:name', { ...admin, schema: { params: nameParam } }, async (request) =>
    service.get(request.params.name),
  );
  app.patch<{ Params: { name: string }; Body: ConnectionPatch }>(
    '/api/admin/connections/:name',
    { ...admin, schema: { params: nameParam, body: patchBody } },
    async (request) => service.update(request.params.name, request.body),
  );
  app.delete<{ Params: { name: string } }>('/api/admin/connections/:name', { ...admin, schema: { params: nameParam } }, async (request, reply) => {
    await service.remove(request.params.name);
    reply.code(204).send();
  });

  app.get('/api/connections', user, async (request) => service.userList(request.auth.principal.name));

  app.get<{ Params: { name: string }; Querystring: { return_to?: string } }>(
    '/api/connections/:name/authorize',
    { ...user, schema: { params: nameParam, querystring: { type: 'object', properties: { return_to: { type: 'string', maxLength: 2048 } } } } },
    async (request, reply) => {
      const returnTo = safeReturnTo(request.query.return_to);
      if (returnTo === undefined) throw ConnectionErrors.invalidInput('return_to must be a path on this gateway, such as /account/connections.');
      const url = await service.startAuthorization(request.params.name, request.auth.principal.name, returnTo);
      reply.header('cache-control', 'no-store').redirect(url, 302);
    },
  );

  app.get<{ Params: { name: string } }>('/api/connections/:name/callback', { ...user, schema: { params: nameParam } }, async (request, reply) => {
    const query = new URLSearchParams((request.raw.url ?? '').split('?')[1] ?? '');
    const result = await service.finishAuthorization(request.params.name, request.auth.principal.name, query);
    let location = result.returnTo;
    if (result.error !== undefined) {
      const hashAt = location.indexOf('#');
      const [path, hash] = hashAt === -1 ? [location, ''] : [location.slice(0, hashAt), location.slice(hashAt)];
      const params = new URLSearchParams({ connection: request.params.name, connection_error: result.error });
      location = `${path}${path.includes('?') ? '&' : '?'}${params.toString()}${hash}`;
    }
    reply.header('cache-control', 'no-store').redirect(location, 302);
  });

  app.delete<{ Params: { name: string } }>('/api/connections/:name/authorization', { ...user, schema: { params: nameParam } }, async (request, reply) => {
    await service.revoke(request.params.name, request.auth.principal.name);
    reply.code(204).send();
  });
}

/** Any `.` or `..` path segment, plain or percent-encoded. */
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$)/i;

/**
 * `/connections/{name}` and everything below it, any method, proxied to the resource with
 * the user's token. Registered in its own child of the authenticated context so bodies are
 * streamed instead of parsed.
 */
export async function registerConnectionProxy(app: FastifyInstance, deps: ConnectionRouteDeps): Promise<void> {
  await app.register(async (proxy) => {
    proxy.removeAllContentTypeParsers();
    proxy.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    const handler = async (request: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply) => {
      requireRole(request.auth, ROLE_USER);
      const name = request.params.name;
      const live = await deps.service.live(name);
      const raw = request.raw.url ?? '';
      // Everything after /connections/{name}, as the client sent it (query included).
      const prefix = '/connections/'.length + raw.slice('/connections/'.length).search(/[/?]|$/);
      const rest = raw.slice(prefix);
      const queryAt = rest.indexOf('?');
      if (DOT_SEGMENT.test(queryAt === -1 ? rest : rest.slice(0, queryAt))) throw ConnectionErrors.badPath();
      const path = live.basePath + rest;
      const user = request.auth.principal.name;
      const token = await deps.service.token(live, user);
      if (token === null && live.auth !== 'none') throw authorizationRequired(deps, live, 'You have not authorized this connection yet, or its authorization ended.');
      const clientIp = request.raw.socket.remoteAddress ?? '';
      reply.hijack();
      const oauth = live.client !== undefined;
      await deps.forwarder.forward(
        request.raw,
        reply.raw,
        { origin: live.origin, path: path === '' || path[0] === '?' ? '/' + path : path },
        {
          token,
          ...(oauth
            ? {
                onRejected: (rejected: string) => deps.service.vault.replaceRejected(live, user, rejected).catch(() => null),
                rejectedError: (renewed: boolean) =>
                  renewed ? ConnectionErrors.retryWithRenewedToken(live.name) : authorizationRequired(deps, live, 'The resource refused your access token.'),
              }
            : {}),
        },
        clientIp,
        deps.trustedProxies.has(clientIp),
      );
    };
    proxy.all('/connections/:name', handler);
    proxy.all('/connections/:name/*', handler);
  });
}

function authorizationRequired(deps: ConnectionRouteDeps, live: LiveConnection, why: string) {
  return ConnectionErrors.authorizationRequired(live.name, deps.service.authorizeUrl(live.name), why);
}
