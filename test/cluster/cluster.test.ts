// Scale-out: two gateway nodes on one PostgreSQL schema and one Redis. What one node
// revokes or changes, the other applies at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, PG_URL, basic, dropPgSchema, freshPgSchema, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const REDIS = 'redis://127.0.0.1:6379';

describe('two nodes on PostgreSQL + Redis', () => {
  const schema = freshPgSchema();
  let a: TestGateway;
  let b: TestGateway;

  beforeAll(async () => {
    // Nodes behind one load balancer share its public URL (the JWT issuer) and the secret key.
    const config = { url: 'http://gateway.test', database: `${PG_URL}?schema=${schema}`, redis: REDIS, secretKey: Buffer.alloc(32, 7).toString('base64') };
    a = await startTestGateway({ config });
    b = await startTestGateway({ config });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await dropPgSchema(schema);
  });

  async function login(node: TestGateway, name: string, password: string): Promise<string> {
    const response = await fetch(`${node.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, password }),
    });
    expect(response.status).toBe(200);
    return response.headers.get('set-cookie')!.split(';')[0]!;
  }

  it('shares one first admin and one signing key', async () => {
    const jwksA = await (await fetch(`${a.url}/.well-known/jwks.json`)).json();
    const jwksB = await (await fetch(`${b.url}/.well-known/jwks.json`)).json();
    expect(jwksA).toEqual(jwksB);
    const users = await (await fetch(`${b.url}/api/admin/users`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).json();
    expect(users.map((u: { name: string }) => u.name)).toEqual(['admin']);
  });

  it('a session made on one node works on the other, and a logout on one is refused on both at once', async () => {
    const cookie = await login(a, 'admin', ADMIN_PASSWORD);
    expect((await fetch(`${b.url}/api/me`, { headers: { cookie } })).status).toBe(200);
    expect((await fetch(`${a.url}/api/auth/logout`, { method: 'POST', headers: { cookie, origin: a.url } })).status).toBe(204);
    // Redis pub/sub delivery is asynchronous but fast: allow it a moment, far below the cache TTL.
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${b.url}/api/me`, { headers: { cookie } })).status).toBe(401);
  });

  it('a role change on one node is seen by the other at once, cache notwithstanding', async () => {
    const admin = { authorization: basic('admin', ADMIN_PASSWORD), 'content-type': 'application/json' };
    expect((await fetch(`${a.url}/api/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'zoe', password: 'zoe-pw' }) })).status).toBe(201);
    const zoe = { authorization: basic('zoe', 'zoe-pw') };
    expect((await (await fetch(`${b.url}/api/me`, { headers: zoe })).json()).roles).toEqual(['ROLE_USER']);
    await fetch(`${a.url}/api/admin/users/zoe`, { method: 'PATCH', headers: admin, body: JSON.stringify({ roles: ['ROLE_OPS'] }) });
    await new Promise((r) => setTimeout(r, 100));
    expect((await (await fetch(`${b.url}/api/me`, { headers: zoe })).json()).roles).toEqual(['ROLE_OPS', 'ROLE_USER']);
  });

  it('a JWT issued by one node is accepted by the other, and a proxy URL set on one applies on both', async () => {
    const jwt = await a.gateway.jwt.issue({ name: 'admin', roles: ['ROLE_ADMIN', 'ROLE_USER'] });
    expect((await fetch(`${b.url}/api/me`, { headers: { authorization: `Bearer ${jwt}` } })).status).toBe(200);
    await fetch(`${a.url}/api/admin/proxy`, {
      method: 'PUT',
      headers: { authorization: basic('admin', ADMIN_PASSWORD), 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'http://127.0.0.1:9/x' }),
    });
    await new Promise((r) => setTimeout(r, 100));
    const seen = await (await fetch(`${b.url}/api/admin/proxy`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).json();
    expect(seen).toEqual({ url: 'http://127.0.0.1:9/x' });
  });
});
