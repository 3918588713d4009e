import type { FastifyInstance } from 'fastify';
import { ROLE_ADMIN, ROLE_USER, hasAnyRole, roleGuard } from '../identity/index.ts';
import { AGENT_ENROLL_PATH, type EnrollRequest } from '../protocol/index.ts';
import { parseRoles, type DeviceService } from './service.ts';

const idParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' } },
} as const;

const roleList = { type: 'array', items: { type: 'string', maxLength: 100 }, maxItems: 100 } as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, allowedRoles: roleList },
} as const;

const patchBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, allowedRoles: roleList, disabled: { type: 'boolean' } },
} as const;

/** An enrollment request is a few hundred bytes; the route takes no more than this. */
const ENROLL_BODY_LIMIT = 16 * 1024;

const enrollBody = {
  type: 'object',
  required: ['token', 'identityKey', 'hostKey', 'hostname', 'version'],
  properties: {
    token: { type: 'string', minLength: 1, maxLength: 1024 },
    identityKey: {
      type: 'object',
      required: ['kty', 'crv', 'x'],
      properties: { kty: { type: 'string', maxLength: 10 }, crv: { type: 'string', maxLength: 20 }, x: { type: 'string', maxLength: 100 } },
    },
    hostKey: { type: 'string', minLength: 1, maxLength: 8192 },
    hostname: { type: 'string', minLength: 1, maxLength: 1024 },
    version: { type: 'string', minLength: 1, maxLength: 256 },
  },
} as const;

/** `POST /api/agent/enroll`: the agent proves nothing yet but the one-time token. */
export function registerEnrollRoute(app: FastifyInstance, service: DeviceService): void {
  app.post<{ Body: EnrollRequest }>(AGENT_ENROLL_PATH, { bodyLimit: ENROLL_BODY_LIMIT, schema: { body: enrollBody } }, async (request, reply) => {
    reply.code(201);
    return service.enroll(request.body);
  });
}

/** The admin API and the user's device list (authenticated context). */
export function registerDeviceApi(app: FastifyInstance, service: DeviceService): void {
  const admin = { preHandler: roleGuard(ROLE_ADMIN) };

  app.get('/api/devices', { preHandler: roleGuard(ROLE_USER) }, async (request) => {
    const rows = await service.list();
    const principal = request.auth.principal;
    return rows.filter((r) => r.disabled === 0 && hasAnyRole(principal, parseRoles(r.allowed_roles))).map((r) => service.userView(r));
  });

  app.get('/api/admin/devices', admin, async () => (await service.list()).map((r) => service.adminView(r)));

  app.post<{ Body: { name: string; allowedRoles?: string[] } }>('/api/admin/devices', { ...admin, schema: { body: createBody } }, async (request, reply) => {
    const { row, enrollment } = await service.create(request.body);
    reply.code(201);
    return { device: service.adminView(row), enrollment };
  });

  app.get<{ Params: { id: string } }>('/api/admin/devices/:id', { ...admin, schema: { params: idParam } }, async (request) =>
    service.adminView(await service.get(request.params.id)),
  );

  app.patch<{ Params: { id: string }; Body: { name?: string; allowedRoles?: string[]; disabled?: boolean } }>(
    '/api/admin/devices/:id',
    { ...admin, schema: { params: idParam, body: patchBody } },
    async (request) => service.adminView(await service.update(request.params.id, request.body)),
  );

  app.delete<{ Params: { id: string } }>('/api/admin/devices/:id', { ...admin, schema: { params: idParam } }, async (request, reply) => {
    await service.remove(request.params.id);
    reply.code(204).send();
  });

  app.post<{ Params: { id: string } }>('/api/admin/devices/:id/enrollment', { ...admin, schema: { params: idParam } }, async (request, reply) => {
    const { row, enrollment } = await service.newEnrollment(request.params.id);
    reply.code(201);
    return { device: service.adminView(row), enrollment };
  });
}
