import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { UserDirectory } from './directory.ts';
import { IdentityErrors } from './errors.ts';
import { isSameOrigin, roleGuard } from './http.ts';
import { ROLE_ADMIN, ROLE_USER, type Principal } from './principal.ts';
import type { SessionManager, SessionRecord } from './sessions.ts';
import type { Authenticator } from './authenticator.ts';

export interface IdentityRouteDeps {
  users: UserDirectory;
  sessions: SessionManager;
  authenticator: Authenticator;
  cookie: { name: string; secure: boolean; maxAgeSeconds: number };
  publicOrigin: string;
}

const roleList = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 100 }, maxItems: 100 } as const;
const nameParam = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
} as const;

const userBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    password: { type: 'string', minLength: 1, maxLength: 1024 },
    roles: roleList,
    email: { type: ['string', 'null'], maxLength: 320 },
    disabled: { type: 'boolean' },
  },
} as const;

const userPatch = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    password: { type: ['string', 'null'], minLength: 1, maxLength: 1024 },
    roles: roleList,
    email: { type: ['string', 'null'], maxLength: 320 },
    disabled: { type: 'boolean' },
  },
} as const;

const groupBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    roles: roleList,
    members: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, maxItems: 10_000 },
  },
} as const;

const groupPatch = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { roles: roleList, members: groupBody.properties.members },
} as const;

export function sessionCookie(deps: IdentityRouteDeps['cookie'], token: string): string {
  return `${deps.name}=${token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${deps.maxAgeSeconds}${deps.secure ? '; Secure' : ''}`;
}

function clearedCookie(deps: IdentityRouteDeps['cookie']): string {
  return `${deps.name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${deps.secure ? '; Secure' : ''}`;
}

const principalView = (p: Principal) => ({ name: p.name, roles: [...p.roles] });

function sessionView(record: SessionRecord, currentId: string | undefined) {
  return {
    id: record.id,
    current: record.id === currentId,
    createdAt: new Date(record.createdAt).toISOString(),
    lastSeenAt: new Date(record.lastSeenAt).toISOString(),
    expiresAt: new Date(record.expiresAt).toISOString(),
    userAgent: record.userAgent,
    ip: record.ip,
    provider: record.ssoProvider,
  };
}

/** Login, which must work with no (or a stale) credential: registered in a context without the auth hook. */
export function registerPublicIdentityRoutes(app: FastifyInstance, deps: IdentityRouteDeps): void {
  app.post<{ Body: { name: string; password: string } }>(
    '/api/auth/login',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'password'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 200 }, password: { type: 'string', maxLength: 1024 } },
        },
      },
    },
    async (request, reply) => {
      // Login CSRF: a foreign page must not sign the browser into another account.
      if (request.headers.origin !== undefined && !isSameOrigin(request.headers, deps.publicOrigin)) throw IdentityErrors.csrf();
      const { name, password } = request.body;
      const principal = await deps.authenticator.verifyPasswordLimited(name, password, request.ip);
      const { token } = await deps.sessions.create(principal.name, { userAgent: request.headers['user-agent'], ip: request.ip });
      reply.header('set-cookie', sessionCookie(deps.cookie, token));
      return principalView(principal);
    },
  );
}

/** Routes that need the auth hook (registered in the authenticated context). */
export function registerIdentityRoutes(app: FastifyInstance, deps: IdentityRouteDeps): void {
  const { users, sessions } = deps;
  const admin = { preHandler: roleGuard(ROLE_ADMIN) };

  app.post('/api/auth/logout', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.auth.sessionId) await sessions.end(request.auth.sessionId, 'you signed out');
    reply.header('set-cookie', clearedCookie(deps.cookie));
    reply.code(204).send();
  });

  app.get('/api/me', { preHandler: roleGuard(ROLE_USER) }, async (request) => principalView(request.auth.principal));

  app.get('/api/me/sessions', { preHandler: roleGuard(ROLE_USER) }, async (request) => {
    const list = await sessions.listForUser(request.auth.principal.name);
    return list.map((s) => sessionView(s, request.auth.sessionId));
  });

  app.delete('/api/me/sessions', { preHandler: roleGuard(ROLE_USER) }, async (request, reply) => {
    await sessions.endAllForUser(request.auth.principal.name, 'you signed out everywhere');
    reply.header('set-cookie', clearedCookie(deps.cookie));
    reply.code(204).send();
  });

  app.delete<{ Params: { id: string } }>(
    '/api/me/sessions/:id',
    { preHandler: roleGuard(ROLE_USER), schema: { params: { type: 'object', properties: { id: { type: 'string', maxLength: 100 } } } } },
    async (request, reply) => {
      const ended = await sessions.end(request.params.id, 'you ended this session', request.auth.principal.name);
      if (!ended) throw IdentityErrors.sessionNotFound();
      if (request.params.id === request.auth.sessionId) reply.header('set-cookie', clearedCookie(deps.cookie));
      reply.code(204).send();
    },
  );

  // Users ------------------------------------------------------------------------
  app.get('/api/admin/users', admin, async () => users.list());

  app.post<{ Body: { name: string; password?: string; roles?: string[]; email?: string | null; disabled?: boolean } }>(
    '/api/admin/users',
    { ...admin, schema: { body: userBody } },
    async (request, reply) => {
      reply.code(201);
      return users.create(request.body);
    },
  );

  app.get<{ Params: { name: string } }>('/api/admin/users/:name', { ...admin, schema: { params: nameParam } }, async (request) =>
    users.get(request.params.name),
  );

  app.patch<{ Params: { name: string }; Body: { password?: string | null; roles?: string[]; email?: string | null; disabled?: boolean } }>(
    '/api/admin/users/:name',
    { ...admin, schema: { params: nameParam, body: userPatch } },
    async (request) => users.update(request.params.name, request.body),
  );

  app.delete<{ Params: { name: string } }>('/api/admin/users/:name', { ...admin, schema: { params: nameParam } }, async (request, reply) => {
    await users.remove(request.params.name);
    reply.code(204).send();
  });

  // Groups -----------------------------------------------------------------------
  app.get('/api/admin/groups', admin, async () => users.listGroups());

  app.post<{ Body: { name: string; roles?: string[]; members?: string[] } }>(
    '/api/admin/groups',
    { ...admin, schema: { body: groupBody } },
    async (request, reply) => {
      reply.code(201);
      return users.createGroup(request.body);
    },
  );

  app.get<{ Params: { name: string } }>('/api/admin/groups/:name', { ...admin, schema: { params: nameParam } }, async (request) =>
    users.getGroup(request.params.name),
  );

  app.patch<{ Params: { name: string }; Body: { roles?: string[]; members?: string[] } }>(
    '/api/admin/groups/:name',
    { ...admin, schema: { params: nameParam, body: groupPatch } },
    async (request) => users.updateGroup(request.params.name, request.body),
  );

  app.delete<{ Params: { name: string } }>('/api/admin/groups/:name', { ...admin, schema: { params: nameParam } }, async (request, reply) => {
    await users.removeGroup(request.params.name);
    reply.code(204).send();
  });

}
