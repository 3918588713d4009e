import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/sso/index.ts';
import { PG_URL, dropPgSchema, freshPgSchema, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { Browser, signIn } from './helpers/browser.ts';
import { startOp, type TestOp } from './helpers/op.ts';
import { gatewayWithOp, json, secretOf } from './helpers/setup.ts';

/**
 * OIDC Back-Channel Logout 1.0 against a real provider: its own logout reaches the
 * gateway and ends the session; crafted tokens check each validation rule of §2.6
 * (one conformance case per rule, each asserting the reason).
 */
describe('back-channel logout', () => {
  let op: TestOp;
  let gw: TestGateway;

  beforeAll(async () => {
    op = await startOp();
    for (const id of ['alice', 'bob', 'carol', 'dora']) op.accounts.set(id, { email: `${id}@example.com`, email_verified: true, preferred_username: id });
    gw = await gatewayWithOp(op, [{ id: 'op' }, { id: 'op-quiet', backchannelLogout: false }], { backchannel: ['op'] });
  });
  afterAll(async () => {
    await gw?.close();
    await op?.close();
  });

  const post = (body: string, url = gw.url) =>
    fetch(`${url}/auth/sso/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
  const token = (claims: Record<string, unknown> = {}, options: Parameters<TestOp['sign']>[1] = {}) => {
    const base: Record<string, unknown> = {
      iss: op.issuer,
      aud: 'client-op',
      iat: Math.floor(Date.now() / 1000),
      exp: Math.floor(Date.now() / 1000) + 120,
      jti: randomBytes(8).toString('hex'),
      sub: 'nobody',
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    };
    for (const [k, v] of Object.entries(claims)) {
      if (v === undefined) delete base[k];
      else base[k] = v;
    }
    return op.sign(base, options);
  };
  const expectRefused = async (logoutToken: string | undefined, description: RegExp) => {
    const response = await post(logoutToken === undefined ? '' : `logout_token=${encodeURIComponent(logoutToken)}`);
    expect(response.status).toBe(400);
    const body = await json(response);
    expect(Object.keys(body).sort()).toEqual(['error', 'error_description']);
    expect(body.error).toBe('invalid_request');
    expect(body.error_description).toMatch(description);
  };

  it('ends the session when the user signs out at the provider (the same cookie then gets 401)', async () => {
    const alice = new Browser();
    expect((await signIn(alice, gw.url, 'op', 'alice')).status).toBe(302);
    expect((await alice.fetch(`${gw.url}/api/me`)).status).toBe(200);
    expect((await alice.fetch(`${gw.url}/api/me/sso`)).status).toBe(200);

    // RP-initiated logout at the provider, in the same browser: confirm the prompt.
    const prompt = await alice.fetch(`${op.issuer}/session/end?client_id=client-op`);
    const html = await prompt.text();
    const action = /action="([^"]+)"/.exec(html)![1]!;
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)![1]!;
    const confirmed = await alice.fetch(new URL(action, op.issuer).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
    });
    expect(confirmed.status).toBeLessThan(400);

    const after = await alice.fetch(`${gw.url}/api/me`);
    expect(after.status).toBe(401);
    expect((await json(after)).error).toBe('session_invalid');
    const rows = await gw.gateway.store.db.selectFrom('sessions').select('id').where('user_name', '=', 'alice').execute();
    expect(rows).toHaveLength(0);
  });

  it('ends every session of the subject from that provider for a sub-only token, and only those', async () => {
    const [b1, b2, local] = [new Browser(), new Browser(), new Browser()];
    expect((await signIn(b1, gw.url, 'op', 'bob')).status).toBe(302);
    expect((await signIn(b2, gw.url, 'op', 'bob')).status).toBe(302);
    // bob also has a password: that session is not the provider's to end.
    await fetch(`${gw.url}/api/admin/users/bob`, { method: 'PATCH', headers: { authorization: gw.adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ password: 'pw-bob' }) });
    const login = await local.fetch(`${gw.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: gw.url }, body: JSON.stringify({ name: 'bob', password: 'pw-bob' }) });
    expect(login.status).toBe(200);

    const response = await post(`logout_token=${await token({ sub: 'bob' })}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({});
    expect((await b1.fetch(`${gw.url}/api/me`)).status).toBe(401);
    expect((await b2.fetch(`${gw.url}/api/me`)).status).toBe(401);
    expect((await local.fetch(`${gw.url}/api/me`)).status).toBe(200);
    const tokens = await gw.gateway.store.db.selectFrom('sso_sessions' as never).selectAll().where('user_name' as never, '=', 'bob' as never).execute();
    expect(tokens).toHaveLength(0);
  });

  it('ends only the session of the provider session id for a sid token', async () => {
    const [c1, c2] = [new Browser(), new Browser()];
    expect((await signIn(c1, gw.url, 'op', 'carol')).status).toBe(302);
    expect((await signIn(c2, gw.url, 'op', 'carol')).status).toBe(302);
    const sessions = await gw.gateway.store.db.selectFrom('sessions').select(['sso_sid', 'created_at']).where('user_name', '=', 'carol').orderBy('created_at').execute();
    expect(sessions).toHaveLength(2);
    expect(sessions[0]!.sso_sid).toBeTruthy();
    expect(sessions[0]!.sso_sid).not.toBe(sessions[1]!.sso_sid);
    const response = await post(`logout_token=${await token({ sub: undefined, sid: sessions[0]!.sso_sid })}`);
    expect(response.status).toBe(200);
    expect((await c1.fetch(`${gw.url}/api/me`)).status).toBe(401);
    expect((await c2.fetch(`${gw.url}/api/me`)).status).toBe(200);
  });

  describe('refuses, with 400 invalid_request and nothing revoked,', () => {
    let dora: Browser;
    beforeAll(async () => {
      dora = new Browser();
      expect((await signIn(dora, gw.url, 'op', 'dora')).status).toBe(302);
    });
    afterAll(async () => {
      // None of the refused tokens (all naming dora) ended her session.
      expect((await dora.fetch(`${gw.url}/api/me`)).status).toBe(200);
    });

    it('no logout_token', () => expectRefused(undefined, /Missing logout_token/));
    it('two logout_tokens', async () => {
      const response = await post(`logout_token=${await token({ sub: 'dora' })}&logout_token=${await token({ sub: 'dora' })}`);
      expect(response.status).toBe(400);
      expect((await json(response)).error_description).toMatch(/Missing logout_token/);
    });
    it('a JSON body instead of a form', async () => {
      const response = await fetch(`${gw.url}/auth/sso/backchannel-logout`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ logout_token: await token({ sub: 'dora' }) }),
      });
      expect(response.status).toBe(400);
      expect(await json(response)).toEqual({ error: 'invalid_request', error_description: 'Missing logout_token parameter' });
    });
    it('a malformed token', () => expectRefused('not.a.jwt', /Malformed/));
    it('a wrong issuer', async () => expectRefused(await token({ sub: 'dora', iss: 'http://127.0.0.1:9/other' }), /issuer/));
    it('a wrong audience', async () => expectRefused(await token({ sub: 'dora', aud: 'client-someone-else' }), /audience/));
    it('a provider that does not use back-channel logout here', async () => expectRefused(await token({ sub: 'dora', aud: 'client-op-quiet' }), /audience/));
    it('a bad signature', async () => expectRefused(await token({ sub: 'dora' }, { withForeignKey: true }), /signature/));
    it('a nonce', async () => expectRefused(await token({ sub: 'dora', nonce: 'n' }), /nonce/));
    it('no events', async () => expectRefused(await token({ sub: 'dora', events: undefined }), /event/));
    it('events without the back-channel logout event', async () => expectRefused(await token({ sub: 'dora', events: { 'http://example.com/other': {} } }), /event/));
    it('an event that is not an object', async () => expectRefused(await token({ sub: 'dora', events: { [BACKCHANNEL_LOGOUT_EVENT]: 'yes' } }), /event/));
    it('neither sub nor sid', async () => expectRefused(await token({ sub: undefined }), /sub or sid/));
    it('no iat', async () => expectRefused(await token({ sub: 'dora', iat: undefined }), /iat/));
    it('an iat too old', async () => expectRefused(await token({ sub: 'dora', iat: Math.floor(Date.now() / 1000) - 3600, exp: undefined }), /iat|expired/));
    it('an expired token', async () => expectRefused(await token({ sub: 'dora', exp: Math.floor(Date.now() / 1000) - 300 }), /expired/));
    it('no jti', async () => expectRefused(await token({ sub: 'dora', jti: undefined }), /jti/));
    it('alg none', async () => {
      const payload = (await token({ sub: 'dora' })).split('.')[1];
      await expectRefused(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`, /signed/);
    });
    it('a replayed token', async () => {
      const once = await token({ sub: 'nobody-known' });
      expect((await post(`logout_token=${once}`)).status).toBe(200);
      await expectRefused(once, /already used/);
    });
    it('an ID token (it has a nonce and no events)', async () => expectRefused(await token({ sub: 'dora', nonce: 'n', events: undefined }), /event|nonce/));
  });
});

describe('back-channel logout across two gateway nodes (PostgreSQL + Redis)', () => {
  let op: TestOp;
  let nodeA: TestGateway;
  let nodeB: TestGateway;
  const schema = freshPgSchema();

  beforeAll(async () => {
    op = await startOp();
    op.accounts.set('erin', { email: 'erin@example.com', email_verified: true, preferred_username: 'erin' });
    const shared = { database: `${PG_URL}?schema=${schema}`, redis: 'redis://127.0.0.1:6379', secretKey: randomBytes(32).toString('base64') };
    nodeA = await gatewayWithOp(op, [{ id: 'op' }], { config: shared });
    nodeB = await startTestGateway({
      config: { ...shared, sso: { providers: [{ id: 'op', type: 'oidc', issuer: op.issuer, clientId: 'client-op', clientSecret: secretOf('op') }] } },
    });
  });
  afterAll(async () => {
    await nodeA?.close();
    await nodeB?.close();
    await op?.close();
    await dropPgSchema(schema);
  });

  it('a logout token delivered to one node ends the session on the other at once', async () => {
    const erin = new Browser();
    expect((await signIn(erin, nodeA.url, 'op', 'erin')).status).toBe(302);
    expect((await erin.fetch(`${nodeA.url}/api/me`)).status).toBe(200); // now cached on node A
    const logoutToken = await op.sign({
      iss: op.issuer,
      aud: 'client-op',
      iat: Math.floor(Date.now() / 1000),
      jti: randomBytes(8).toString('hex'),
      sub: 'erin',
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    });
    const response = await fetch(`${nodeB.url}/auth/sso/backchannel-logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `logout_token=${logoutToken}`,
    });
    expect(response.status).toBe(200);
    // The bus message crosses Redis; allow it a moment, far below the session cache lifetime.
    let status = 200;
    for (let i = 0; i < 50 && status === 200; i++) {
      status = (await erin.fetch(`${nodeA.url}/api/me`)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(401);
  });
});
