import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_URL, dropPgSchema, freshPgSchema, type TestGateway } from '../helpers/gateway.ts';
import { Browser, atProvider, outcomeOf, startLogin } from './helpers/browser.ts';
import { startOp, type TestOp } from './helpers/op.ts';
import { gatewayWithOp, json } from './helpers/setup.ts';

/**
 * "The first user becomes admin, decided race-free after the insert": both logins are
 * brought to the gateway's callback, then the two callbacks run at the same moment.
 * Same test on SQLite and PostgreSQL.
 */
for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`first SSO user on ${dialect}`, () => {
    let op: TestOp;
    let gw: TestGateway;
    const schema = freshPgSchema();

    beforeAll(async () => {
      op = await startOp();
      for (const id of ['u1', 'u2', 'u3']) op.accounts.set(id, { email: `${id}@example.com`, email_verified: true, preferred_username: id });
      gw = await gatewayWithOp(op, [{ id: 'op' }], dialect === 'postgres' ? { config: { database: `${PG_URL}?schema=${schema}` } } : {});
    });
    afterAll(async () => {
      await gw?.close();
      await op?.close();
      if (dialect === 'postgres') await dropPgSchema(schema);
    });

    const ready = async (login: string) => {
      const b = new Browser();
      const callback = await atProvider(b, await startLogin(b, gw.url, 'op'), login, new URL(gw.url).origin);
      return { b, callback };
    };

    it('two concurrent first logins give exactly one admin', async () => {
      const [one, two] = await Promise.all([ready('u1'), ready('u2')]);
      const results = await Promise.all([one.b.fetch(one.callback), two.b.fetch(two.callback)]);
      expect(results.map((r) => r.status)).toEqual([302, 302]);
      const roles = await Promise.all([one.b, two.b].map(async (b) => (await json(await b.fetch(`${gw.url}/api/me`))).roles as string[]));
      expect(roles.filter((r) => r.includes('ROLE_ADMIN'))).toHaveLength(1);
      // The local bootstrap admin does not count: "first" means the first user SSO created.
      const later = await ready('u3');
      await later.b.fetch(later.callback);
      expect((await json(await later.b.fetch(`${gw.url}/api/me`))).roles).toEqual(['ROLE_USER']);
    });

    it('two concurrent first logins of the same account give one user and two sessions', async () => {
      op.accounts.set('twin', { email: 'twin@example.com', email_verified: true, preferred_username: 'twin' });
      const [one, two] = await Promise.all([ready('twin'), ready('twin')]);
      const results = await Promise.all([one.b.fetch(one.callback), two.b.fetch(two.callback)]);
      const outcomes = await Promise.all(results.map(outcomeOf));
      expect(outcomes.map((o) => [o.status, o.error])).toEqual([
        [302, undefined],
        [302, undefined],
      ]);
      const names = await Promise.all([one.b, two.b].map(async (b) => (await json(await b.fetch(`${gw.url}/api/me`))).name));
      expect(names).toEqual(['twin', 'twin']);
      const users = (await json(await fetch(`${gw.url}/api/admin/users`, { headers: { authorization: gw.adminAuth } }))).map((u: { name: string }) => u.name);
      expect(users.filter((n: string) => n.startsWith('twin'))).toEqual(['twin']);
    });
  });
}

describe('first SSO user who is already an admin by roles claim', () => {
  let op: TestOp;
  let gw: TestGateway;
  beforeAll(async () => {
    op = await startOp();
    op.accounts.set('boss', { email: 'boss@example.com', email_verified: true, preferred_username: 'boss', roles: ['gw-admin'] });
    op.accounts.set('staff', { email: 'staff@example.com', email_verified: true, preferred_username: 'staff', roles: ['gw-user'] });
    gw = await gatewayWithOp(op, [{ id: 'op', roles: { enabled: true, allowed: ['gw-user'], admin: ['gw-admin'] } }]);
  });
  afterAll(async () => {
    await gw?.close();
    await op?.close();
  });

  // Regression: the first-admin marker was claimed only by users who were not admins yet,
  // so the next plain user became "first" and admin.
  it('still uses up "first": the next user is not made admin', async () => {
    const boss = new Browser();
    await boss.fetch(await atProvider(boss, await startLogin(boss, gw.url, 'op'), 'boss', new URL(gw.url).origin));
    expect((await json(await boss.fetch(`${gw.url}/api/me`))).roles).toEqual(['ROLE_ADMIN', 'ROLE_USER']);
    const staff = new Browser();
    await staff.fetch(await atProvider(staff, await startLogin(staff, gw.url, 'op'), 'staff', new URL(gw.url).origin));
    expect((await json(await staff.fetch(`${gw.url}/api/me`))).roles).toEqual(['ROLE_USER']);
  });
});
