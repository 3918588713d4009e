// One suite, every database: users, roles, groups, the proxy URL and signing keys
// survive a restart on SQLite and on PostgreSQL.
import { afterAll, describe, expect, it } from 'vitest';
import { PG_URL, basic, dropPgSchema, freshPgSchema, startTestGateway } from '../helpers/gateway.ts';

const schemas: string[] = [];
afterAll(async () => {
  for (const schema of schemas) await dropPgSchema(schema);
});

const databases: Array<[string, () => string | undefined]> = [
  ['SQLite', () => undefined],
  [
    'PostgreSQL',
    () => {
      const schema = freshPgSchema();
      schemas.push(schema);
      return `${PG_URL}?schema=${schema}`;
    },
  ],
];

describe.each(databases)('restart persistence on %s', (_name, database) => {
  it('keeps users, groups, roles, the proxy URL and the signing key', async () => {
    const db = database();
    const config = db ? { database: db } : {};
    const first = await startTestGateway({ config });
    const admin = (method: string, path: string, body: unknown) =>
      fetch(`${first.url}${path}`, { method, headers: { authorization: first.adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await admin('POST', '/api/admin/users', { name: 'Alice', password: 'abcdef123456', roles: ['ROLE_WONDERLAND'] })).status).toBe(201);
    expect((await admin('POST', '/api/admin/groups', { name: 'readers', roles: ['ROLE_READ'], members: ['Alice'] })).status).toBe(201);
    expect((await admin('PUT', '/api/admin/proxy', { url: 'http://127.0.0.1:9/app' })).status).toBe(200);
    const jwksBefore = await (await fetch(`${first.url}/.well-known/jwks.json`)).json();
    await first.close({ keepData: true });

    const second = await startTestGateway({ config, dataDir: first.dataDir });
    try {
      const me = await (await fetch(`${second.url}/api/me`, { headers: { authorization: basic('Alice', 'abcdef123456') } })).json();
      expect(me).toEqual({ name: 'Alice', roles: ['ROLE_READ', 'ROLE_USER', 'ROLE_WONDERLAND'] });
      const proxy = await (await fetch(`${second.url}/api/admin/proxy`, { headers: { authorization: second.adminAuth } })).json();
      expect(proxy).toEqual({ url: 'http://127.0.0.1:9/app' });
      const jwksAfter = await (await fetch(`${second.url}/.well-known/jwks.json`)).json();
      expect(jwksAfter).toEqual(jwksBefore);
      expect(jwksAfter.keys).toHaveLength(1);
    } finally {
      await second.close();
    }
  });

  it('refuses a duplicate user name with 409 through the unique constraint', async () => {
    const db = database();
    const gw = await startTestGateway({ config: db ? { database: db } : {} });
    try {
      const body = JSON.stringify({ name: 'dup', password: 'x' });
      const headers = { authorization: gw.adminAuth, 'content-type': 'application/json' };
      const results = await Promise.all([1, 2, 3].map(() => fetch(`${gw.url}/api/admin/users`, { method: 'POST', headers, body })));
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    } finally {
      await gw.close();
    }
  });
});
