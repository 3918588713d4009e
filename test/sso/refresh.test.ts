import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_URL, dropPgSchema, freshPgSchema, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { withSsoTables } from '../../src/sso/tables.ts';
import { Browser, signIn } from './helpers/browser.ts';
import { startOp, type TestOp } from './helpers/op.ts';
import { gatewayWithOp, json, secretOf } from './helpers/setup.ts';

/**
 * Provider tokens: sealed at rest, refreshed within the margin (one refresh for
 * concurrent callers), deleted when the provider refuses the refresh. The gateway's
 * clock is injected, so "ten minutes later" needs no sleeping.
 */
describe('provider tokens', () => {
  let op: TestOp;
  let gw: TestGateway;
  let offset = 0;
  const now = () => Date.now() + offset;

  beforeAll(async () => {
    op = await startOp({ accessTokenTtl: 600 });
    for (const id of ['alice', 'bob', 'carol']) op.accounts.set(id, { email: `${id}@example.com`, email_verified: true, preferred_username: id });
    gw = await gatewayWithOp(op, [{ id: 'op' }, { id: 'op-strict', endSessionOnRefreshFailure: true }, { id: 'op-few', maxSessionsPerUser: 2 }], { now });
  });
  afterAll(async () => {
    await gw?.close();
    await op?.close();
  });

  const sso = async (b: Browser) => json(await b.fetch(`${gw.url}/api/me/sso`));
  const rows = (user: string) => withSsoTables(gw.gateway.store.db).selectFrom('sso_sessions').selectAll().where('user_name', '=', user).execute();

  it('keeps the tokens sealed, with expires_at from expires_in', async () => {
    const alice = new Browser();
    expect((await signIn(alice, gw.url, 'op', 'alice')).status).toBe(302);
    const [row] = await rows('alice');
    expect(row!.tokens).toMatch(/^v1\./);
    expect(Number(row!.expires_at) - now()).toBeGreaterThan(590_000);
    expect(Number(row!.expires_at) - now()).toBeLessThanOrEqual(600_000);
    const view = await sso(alice);
    expect(view.token).toMatchObject({ refreshable: true });
  });

  it('refreshes once for two concurrent requests when less than five minutes remain', async () => {
    const alice = new Browser();
    expect((await signIn(alice, gw.url, 'op', 'alice')).status).toBe(302);
    const before = (await sso(alice)).token.expiresAt;
    const sealedBefore = (await rows('alice')).map((r) => r.tokens);
    expect(op.refreshCount()).toBe(0);

    offset += 400_000; // 200 s left: inside the 300 s margin
    const [a, b] = await Promise.all([sso(alice), sso(alice)]);
    expect(op.refreshCount()).toBe(1);
    expect(a.token.expiresAt).toBe(b.token.expiresAt);
    expect(Date.parse(a.token.expiresAt)).toBeGreaterThan(Date.parse(before));
    expect(Date.parse(a.token.expiresAt) - now()).toBeGreaterThan(590_000);
    // Fresh enough now: no further refresh.
    await sso(alice);
    expect(op.refreshCount()).toBe(1);
    expect((await rows('alice')).some((r) => !sealedBefore.includes(r.tokens))).toBe(true);
  });

  it('deletes the provider session when the provider refuses the refresh token', async () => {
    const bob = new Browser();
    expect((await signIn(bob, gw.url, 'op', 'bob')).status).toBe(302);
    expect(await rows('bob')).toHaveLength(1);
    await op.revokeRefreshTokens('bob');
    offset += 400_000;
    expect((await sso(bob)).token).toBeNull();
    expect(await rows('bob')).toHaveLength(0);
    // The gateway session itself stays (endSessionOnRefreshFailure is off for this provider).
    expect((await bob.fetch(`${gw.url}/api/me`)).status).toBe(200);
  });

  it('also ends the gateway session when the provider says so', async () => {
    const carol = new Browser();
    expect((await signIn(carol, gw.url, 'op-strict', 'carol')).status).toBe(302);
    await op.revokeRefreshTokens('carol');
    offset += 400_000;
    expect((await sso(carol)).token).toBeNull();
    expect((await carol.fetch(`${gw.url}/api/me`)).status).toBe(401);
  });

  it('keeps at most N provider sessions per user and provider, pruning the oldest', async () => {
    const browsers = [new Browser(), new Browser(), new Browser()];
    op.accounts.set('dan', { email: 'dan@example.com', email_verified: true, preferred_username: 'dan' });
    for (const b of browsers) {
      expect((await signIn(b, gw.url, 'op-few', 'dan')).status).toBe(302);
      offset += 1000;
    }
    expect(await rows('dan')).toHaveLength(2);
    expect((await sso(browsers[0]!)).token).toBeNull();
    expect((await sso(browsers[2]!)).token).not.toBeNull();
  });

  it('drops the provider tokens with the gateway session', async () => {
    const alice = new Browser();
    expect((await signIn(alice, gw.url, 'op', 'alice')).status).toBe(302);
    const count = (await rows('alice')).length;
    const logout = await alice.fetch(`${gw.url}/api/auth/logout`, { method: 'POST', headers: { origin: gw.url } });
    expect(logout.status).toBe(204);
    expect(await rows('alice')).toHaveLength(count - 1);
  });

  it('keeps the tokens for a later try when the provider cannot be reached (runs last: stops the provider)', async () => {
    op.accounts.set('fay', { email: 'fay@example.com', email_verified: true, preferred_username: 'fay' });
    const fay = new Browser();
    expect((await signIn(fay, gw.url, 'op', 'fay')).status).toBe(302);
    await op.close();
    offset += 400_000;
    expect((await sso(fay)).token).toBeNull();
    const [row] = await rows('fay');
    expect(row).toBeDefined();
    expect(row!.refreshing_until).toBeNull();
  });
});

describe('provider token refresh across two gateway nodes (PostgreSQL)', () => {
  let op: TestOp;
  let nodeA: TestGateway;
  let nodeB: TestGateway;
  let offset = 0;
  const now = () => Date.now() + offset;
  const schema = freshPgSchema();

  beforeAll(async () => {
    op = await startOp({ accessTokenTtl: 600 });
    op.accounts.set('erin', { email: 'erin@example.com', email_verified: true, preferred_username: 'erin' });
    const shared = { database: `${PG_URL}?schema=${schema}`, secretKey: randomBytes(32).toString('base64') };
    nodeA = await gatewayWithOp(op, [{ id: 'op' }], { config: shared, now });
    nodeB = await startTestGateway({
      config: { ...shared, sso: { providers: [{ id: 'op', type: 'oidc', issuer: op.issuer, clientId: 'client-op', clientSecret: secretOf('op') }] } },
      now,
    });
  });
  afterAll(async () => {
    await nodeA?.close();
    await nodeB?.close();
    await op?.close();
    await dropPgSchema(schema);
  });

  it('refreshes once when both nodes need the same token at the same moment (a lease, not two rotations)', async () => {
    const erin = new Browser();
    expect((await signIn(erin, nodeA.url, 'op', 'erin')).status).toBe(302);
    const cookie = `portcullis_session=${erin.cookie(new URL(nodeA.url).origin, 'portcullis_session')}`;
    const read = async (url: string) => json(await fetch(`${url}/api/me/sso`, { headers: { cookie } }));
    const before = (await read(nodeA.url)).token.expiresAt;
    offset += 400_000;
    const [a, b] = await Promise.all([read(nodeA.url), read(nodeB.url)]);
    expect(op.refreshCount()).toBe(1);
    expect(a.token.expiresAt).toBe(b.token.expiresAt);
    expect(Date.parse(a.token.expiresAt)).toBeGreaterThan(Date.parse(before));
  });
});
