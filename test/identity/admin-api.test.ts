import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

describe('admin API: users and groups', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(() => gw.close());

  const call = (method: string, path: string, body?: unknown, auth?: string) =>
    fetch(`${gw.url}${path}`, {
      method,
      headers: { authorization: auth ?? gw.adminAuth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('creates, reads, updates and deletes users; never returns passwords', async () => {
    const created = await call('POST', '/api/admin/users', { name: 'dave', password: 'pw-dave', roles: ['ROLE_OPS'] });
    expect(created.status).toBe(201);
    const user = await created.json();
    expect(user).toMatchObject({ name: 'dave', roles: ['ROLE_OPS', 'ROLE_USER'], groups: [], disabled: false });
    expect(JSON.stringify(user)).not.toMatch(/password|scrypt/);
    expect((await call('POST', '/api/admin/users', { name: 'dave' })).status).toBe(409);
    const list = await (await call('GET', '/api/admin/users')).json();
    expect(list.map((u: { name: string }) => u.name)).toEqual(['admin', 'dave']);
    expect(JSON.stringify(list)).not.toMatch(/scrypt/);
    const patched = await (await call('PATCH', '/api/admin/users/dave', { roles: [] })).json();
    expect(patched.roles).toEqual(['ROLE_USER']);
    expect((await call('GET', '/api/admin/users/nobody')).status).toBe(404);
    expect((await call('DELETE', '/api/admin/users/dave')).status).toBe(204);
    expect((await call('DELETE', '/api/admin/users/dave')).status).toBe(404);
  });

  it('gives group members the group roles', async () => {
    await call('POST', '/api/admin/users', { name: 'erin', password: 'pw-erin' });
    const group = await call('POST', '/api/admin/groups', { name: 'ops', roles: ['ROLE_OPS'], members: ['erin'] });
    expect(group.status).toBe(201);
    expect(await group.json()).toMatchObject({ name: 'ops', roles: ['ROLE_OPS'], members: ['erin'] });
    const me = await (await fetch(`${gw.url}/api/me`, { headers: { authorization: basic('erin', 'pw-erin') } })).json();
    expect(me.roles).toEqual(['ROLE_OPS', 'ROLE_USER']);
    await call('PATCH', '/api/admin/groups/ops', { members: [] });
    const after = await (await fetch(`${gw.url}/api/me`, { headers: { authorization: basic('erin', 'pw-erin') } })).json();
    expect(after.roles).toEqual(['ROLE_USER']);
    expect((await call('POST', '/api/admin/groups', { name: 'ops' })).status).toBe(409);
    expect((await call('POST', '/api/admin/groups', { name: 'ghosts', members: ['nobody'] })).status).toBe(404);
    expect((await call('GET', '/api/admin/groups/ghosts')).status).toBe(404);
    expect((await call('DELETE', '/api/admin/groups/ops')).status).toBe(204);
  });

  it.each([
    ['not JSON', '{"name":', 400, 'invalid_json'],
    ['missing name', { password: 'x' }, 400, 'invalid_request'],
    ['unknown field', { name: 'zed', admin: true }, 400, 'invalid_request'],
    ['bad role', { name: 'zed', roles: ['ROLE WITH SPACE'] }, 400, 'invalid_role'],
    ['bad name', { name: '../etc' }, 400, 'invalid_user_name'],
    ['roles not a list', { name: 'zed', roles: 'ROLE_X' }, 400, 'invalid_request'],
  ])('rejects %s with a clear error', async (_case, body, status, code) => {
    const response = await call('POST', '/api/admin/users', body);
    expect(response.status).toBe(status);
    const json = await response.json();
    expect(json.error).toBe(code);
    expect(typeof json.message).toBe('string');
  });

  it('refuses oversized bodies with 413', async () => {
    const response = await call('POST', '/api/admin/users', JSON.stringify({ name: 'big', password: 'x'.repeat(2 * 1024 * 1024) }));
    expect(response.status).toBe(413);
    expect((await response.json()).error).toBe('body_too_large');
  });

  it('keeps non-admins out with 403, and anonymous with 401', async () => {
    await call('POST', '/api/admin/users', { name: 'frank', password: 'pw-frank' });
    expect((await call('GET', '/api/admin/users', undefined, basic('frank', 'pw-frank'))).status).toBe(403);
    expect((await fetch(`${gw.url}/api/admin/users`)).status).toBe(401);
    expect((await fetch(`${gw.url}/api/admin/proxy`, { headers: { authorization: basic('frank', 'pw-frank') } })).status).toBe(403);
  });

  it('answers unknown API routes with a JSON 404', async () => {
    const response = await fetch(`${gw.url}/api/nothing-here`);
    expect(response.status).toBe(404);
    expect((await response.json()).error).toBe('not_found');
  });

  it('disabling a user refuses their credentials', async () => {
    await call('POST', '/api/admin/users', { name: 'gina', password: 'pw-gina' });
    expect((await fetch(`${gw.url}/api/me`, { headers: { authorization: basic('gina', 'pw-gina') } })).status).toBe(200);
    await call('PATCH', '/api/admin/users/gina', { disabled: true });
    expect((await fetch(`${gw.url}/api/me`, { headers: { authorization: basic('gina', 'pw-gina') } })).status).toBe(401);
  });
});
