import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestGateway } from '../helpers/gateway.ts';
import { Browser, atProvider, outcomeOf, signIn, startLogin } from './helpers/browser.ts';
import { startOp, type TestOp } from './helpers/op.ts';
import { PNG, gatewayWithOp, json, startServer } from './helpers/setup.ts';

/**
 * Integration tier: a real OpenID Provider (oidc-provider) and a real gateway, both on
 * loopback; the browser is fetch with a cookie jar. One gateway hosts several provider
 * entries (one client each at the same provider) to exercise each policy.
 */
describe('single sign-on with an OpenID provider', () => {
  let op: TestOp;
  let gw: TestGateway;
  let assets: Awaited<ReturnType<typeof startServer>>;
  const webhooks: unknown[] = [];

  beforeAll(async () => {
    op = await startOp();
    assets = await startServer((req, res) => {
      if (req.method === 'POST' && req.url === '/hook') {
        let body = '';
        req.on('data', (c: Buffer) => (body += c));
        req.on('end', () => {
          webhooks.push(JSON.parse(body));
          res.end('ok');
        });
        return;
      }
      if (req.url === '/alice.png') return void res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
      if (req.url === '/not-an-image') return void res.writeHead(200, { 'content-type': 'image/png' }).end('<svg onload=alert(1)>');
      res.writeHead(404).end();
    });
    const accounts: Record<string, Record<string, unknown>> = {
      alice: {
        email: 'Alice@Example.com',
        email_verified: true,
        name: 'Alice Liddell',
        preferred_username: 'alice',
        picture: `${assets.url}/alice.png`,
        groups: ['eng', 'ops', 'wonderland-admins', 'team-red'],
      },
      bob: { email: 'bob@example.com', email_verified: true, name: 'Bob', preferred_username: 'bob', groups: 'eng,qa' },
      carol: { name: 'Carol', preferred_username: 'carol' },
      dave: { email: 'dave@elsewhere.test', email_verified: true, preferred_username: 'dave' },
      eve: { email: 'eve@example.com', email_verified: true, preferred_username: 'eve', realm_access: { roles: ['offline_access', 'guest'] } },
      frank: { email: 'frank@example.com', email_verified: true, preferred_username: 'frank', realm_access: { roles: ['portcullis-user'] } },
      grace: { email: 'grace@example.com', email_verified: true, preferred_username: 'grace', realm_access: { roles: ['portcullis-admin', 'portcullis-user'] } },
      mallory: { email: 'mallory@example.com', email_verified: true, preferred_username: 'mallory-at-op' },
      trudy: { email: 'trudy@example.com', email_verified: false, preferred_username: 'trudy-at-op' },
      henry: { email: 'henry@EXAMPLE.com', email_verified: true, preferred_username: 'henry' },
      admin: { email: 'root@example.com', email_verified: true, preferred_username: 'admin' },
    };
    for (const [id, claims] of Object.entries(accounts)) op.accounts.set(id, claims);
    gw = await gatewayWithOp(
      op,
      [
        { id: 'op', name: 'Example OP', groups: { enabled: true, create: true, blocked: ['wonderland-*', '^team-(red|blue)$', 'local-admins'] } },
        { id: 'op-roles', roles: { enabled: true, allowed: ['portcullis-user'], admin: ['portcullis-admin'] }, claims: { roles: 'realm_access.roles' } },
        { id: 'op-closed', signUp: false },
        { id: 'op-merge', mergeByEmail: true },
        { id: 'op-domains', allowedDomains: ['example.com'] },
        { id: 'op-fallback', emailFallback: true, authorizeParams: { prompt: 'login' } },
      ],
      { sso: { webhookUrl: `${assets.url}/hook` } },
    );
  });
  afterAll(async () => {
    await gw?.close();
    await op?.close();
    await assets?.close();
  });

  const me = (browser: Browser) => browser.fetch(`${gw.url}/api/me`);
  const admin = (path: string, init: RequestInit = {}) => fetch(`${gw.url}${path}`, { ...init, headers: { authorization: gw.adminAuth, 'content-type': 'application/json', ...init.headers } });

  it('lists the providers for the login page, without authentication', async () => {
    const response = await fetch(`${gw.url}/api/auth/providers`);
    expect(response.status).toBe(200);
    const list = await json(response);
    expect(list[0]).toEqual({ id: 'op', name: 'Example OP' });
    expect(list.map((p: { id: string }) => p.id)).toContain('op-roles');
  });

  it('answers 404 for an unknown provider', async () => {
    expect((await fetch(`${gw.url}/auth/sso/nope/login`, { redirect: 'manual' })).status).toBe(404);
    expect((await fetch(`${gw.url}/auth/sso/nope/callback?code=x&state=y`, { redirect: 'manual' })).status).toBe(404);
  });

  it('sends the browser to the provider with PKCE S256, state, nonce and the extra parameters', async () => {
    const browser = new Browser();
    const url = new URL(await startLogin(browser, gw.url, 'op-fallback'));
    expect(url.origin).toBe(op.issuer);
    const q = url.searchParams;
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('state')!.length).toBeGreaterThan(20);
    expect(q.get('nonce')!.length).toBeGreaterThan(20);
    expect(q.get('prompt')).toBe('login');
    expect(q.get('redirect_uri')).toBe(`${gw.url}/auth/sso/op-fallback/callback`);
    expect(q.get('scope')).toBe('openid email profile');
    // The verifier and nonce stay with the gateway: the browser holds only a sealed cookie.
    const sealed = browser.cookie(new URL(gw.url).origin, 'portcullis_session_sso_op-fallback')!;
    expect(sealed).toMatch(/^v1\./);
    expect(sealed).not.toContain(q.get('state'));
  });

  it('makes the first SSO user an administrator, with picture, and the second a plain user', async () => {
    const alice = new Browser();
    const first = await signIn(alice, gw.url, 'op', 'alice', '/devices?x=1');
    expect(first.status).toBe(302);
    expect(first.next).toBe('/devices?x=1');
    const cookie = first.response.headers.getSetCookie().find((c) => c.startsWith('portcullis_session='))!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(await json(await me(alice))).toEqual({ name: 'alice', roles: ['ROLE_ADMIN', 'ROLE_USER'] });

    const bob = new Browser();
    expect((await signIn(bob, gw.url, 'op', 'bob')).next).toBe('/');
    expect(await json(await me(bob))).toEqual({ name: 'bob', roles: ['ROLE_USER'] });

    const aliceView = await json(await admin('/api/admin/users/alice'));
    expect(aliceView.email).toBe('alice@example.com');
    expect(aliceView.picture).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
    expect(webhooks).toContainEqual(expect.objectContaining({ action: 'signup', user: expect.objectContaining({ name: 'alice', provider: 'op' }) }));
  });

  it('refuses (403) a user whose roles match neither the allowed nor the admin roles', async () => {
    const eve = new Browser();
    const outcome = await signIn(eve, gw.url, 'op-roles', 'eve');
    expect(outcome.status).toBe(403);
    expect(outcome.response.headers.get('x-portcullis-error')).toBe('sso_role_refused');
    expect(outcome.next).toMatch(/^\/login\?error=/);
    expect(outcome.error).toMatch(/roles/);
    expect(outcome.response.headers.getSetCookie().some((c) => c.startsWith('portcullis_session='))).toBe(false);
    expect((await admin('/api/admin/users/eve')).status).toBe(404);
  });

  it('maps an allowed role to ROLE_USER and an admin role (nested realm_access.roles) to ROLE_ADMIN', async () => {
    const frank = new Browser();
    expect((await signIn(frank, gw.url, 'op-roles', 'frank')).status).toBe(302);
    expect(await json(await me(frank))).toEqual({ name: 'frank', roles: ['ROLE_USER'] });
    const grace = new Browser();
    expect((await signIn(grace, gw.url, 'op-roles', 'grace')).status).toBe(302);
    expect(await json(await me(grace))).toEqual({ name: 'grace', roles: ['ROLE_ADMIN', 'ROLE_USER'] });
    // The claim decides at every login: grace loses the admin role at the provider, then here.
    op.accounts.set('grace', { ...op.accounts.get('grace'), realm_access: { roles: ['portcullis-user'] } });
    const again = new Browser();
    expect((await signIn(again, gw.url, 'op-roles', 'grace')).status).toBe(302);
    expect(await json(await me(again))).toEqual({ name: 'grace', roles: ['ROLE_USER'] });
  });

  it('syncs groups from the claim (list or separated string), creating missing ones, never touching blocked ones', async () => {
    // Gateway-side groups: one the claim does not name, one blocked by exact name, one by wildcard.
    for (const name of ['legacy', 'local-admins', 'wonderland-staff']) {
      expect((await admin('/api/admin/groups', { method: 'POST', body: JSON.stringify({ name, roles: ['ROLE_X'] }) })).status).toBe(201);
    }
    const groupsOf = async (user: string) => (await json(await admin(`/api/admin/users/${user}`))).groups;
    // bob (groups "eng,qa") was created before: add him to all three gateway-side groups.
    for (const name of ['legacy', 'local-admins', 'wonderland-staff']) {
      await admin(`/api/admin/groups/${name}`, { method: 'PATCH', body: JSON.stringify({ members: ['bob'] }) });
    }
    const bob = new Browser();
    expect((await signIn(bob, gw.url, 'op', 'bob')).status).toBe(302);
    expect(await groupsOf('bob')).toEqual(['eng', 'local-admins', 'qa', 'wonderland-staff']);

    // alice's claim names eng, ops, wonderland-admins (wildcard-blocked) and team-red (regex-blocked).
    const alice = new Browser();
    expect((await signIn(alice, gw.url, 'op', 'alice')).status).toBe(302);
    expect(await groupsOf('alice')).toEqual(['eng', 'ops']);
    const all = (await json(await admin('/api/admin/groups'))).map((g: { name: string }) => g.name);
    expect(all).not.toContain('wonderland-admins');
    expect(all).not.toContain('team-red');

    // Leaving a group at the provider leaves it here.
    op.accounts.set('alice', { ...op.accounts.get('alice'), groups: ['ops'] });
    expect((await signIn(new Browser(), gw.url, 'op', 'alice')).status).toBe(302);
    expect(await groupsOf('alice')).toEqual(['ops']);
  });

  it('updates email, display name and picture at login; a picture that is not an image gives the default', async () => {
    op.accounts.set('bob', { ...op.accounts.get('bob'), email: 'Robert@Example.com', name: 'Robert', picture: `${assets.url}/not-an-image` });
    const bob = new Browser();
    expect((await signIn(bob, gw.url, 'op', 'bob')).status).toBe(302);
    const view = await json(await admin('/api/admin/users/bob'));
    expect(view.email).toBe('robert@example.com');
    expect(view.picture).toMatch(/^data:image\/svg\+xml;base64,/);
    const sso = await json(await bob.fetch(`${gw.url}/api/me/sso`));
    expect(sso).toMatchObject({ provider: { id: 'op', name: 'Example OP' }, subject: 'bob', email: 'robert@example.com', displayName: 'Robert' });
    expect(JSON.stringify(sso)).not.toMatch(/access_?token|refresh_?token|eyJ/i);
  });

  it('does not take an email another user has', async () => {
    op.accounts.set('bob', { ...op.accounts.get('bob'), email: 'alice@example.com' });
    expect((await signIn(new Browser(), gw.url, 'op', 'bob')).status).toBe(302);
    expect((await json(await admin('/api/admin/users/bob'))).email).toBe('robert@example.com');
  });

  it('merges a first login with an existing user of the same verified email, only when enabled', async () => {
    expect((await admin('/api/admin/users', { method: 'POST', body: JSON.stringify({ name: 'mallory', password: 'pw', email: 'Mallory@example.com' }) })).status).toBe(201);
    // Without merging, the address is taken: refused rather than a second account.
    const refused = await signIn(new Browser(), gw.url, 'op', 'mallory');
    expect(refused.status).toBe(409);
    const merged = new Browser();
    expect((await signIn(merged, gw.url, 'op-merge', 'mallory')).status).toBe(302);
    expect(await json(await me(merged))).toEqual({ name: 'mallory', roles: ['ROLE_USER'] });

    // An address the provider has not verified never merges.
    expect((await admin('/api/admin/users', { method: 'POST', body: JSON.stringify({ name: 'trudy', password: 'pw', email: 'trudy@example.com' }) })).status).toBe(201);
    expect((await signIn(new Browser(), gw.url, 'op-merge', 'trudy')).status).toBe(409);
  });

  it('does not let a provider user named "admin" become the local admin', async () => {
    const b = new Browser();
    expect((await signIn(b, gw.url, 'op', 'admin')).status).toBe(302);
    expect(await json(await me(b))).toEqual({ name: 'admin-2', roles: ['ROLE_USER'] });
  });

  it('refuses (403) unknown users when sign-up is off, and lets known ones in', async () => {
    const outcome = await signIn(new Browser(), gw.url, 'op-closed', 'frank');
    expect(outcome.status).toBe(403);
    expect(outcome.response.headers.get('x-portcullis-error')).toBe('sso_signup_disabled');
    // Another provider entry is another identity: frank is known only through op-roles.
    expect((await signIn(new Browser(), gw.url, 'op-roles', 'frank')).status).toBe(302);
  });

  it('refuses an email domain outside the allowed list', async () => {
    const outcome = await signIn(new Browser(), gw.url, 'op-domains', 'dave');
    expect(outcome.status).toBe(403);
    expect(outcome.error).toMatch(/domain/);
    expect((await signIn(new Browser(), gw.url, 'op-domains', 'henry')).status).toBe(302);
  });

  it('refuses a user without email, or uses the fallback address when enabled', async () => {
    const refused = await signIn(new Browser(), gw.url, 'op', 'carol');
    expect(refused.status).toBe(400);
    expect(refused.response.headers.get('x-portcullis-error')).toBe('sso_no_email');
    const carol = new Browser();
    expect((await signIn(carol, gw.url, 'op-fallback', 'carol')).status).toBe(302);
    expect((await json(await admin('/api/admin/users/carol'))).email).toBe('op-fallback@carol.local');
  });

  it('sends provider errors, forged states and stale logins to the login page with a short message', async () => {
    const b = new Browser();
    const authorize = new URL(await startLogin(b, gw.url, 'op'));
    const state = authorize.searchParams.get('state')!;
    const denied = await outcomeOf(
      await b.fetch(`${gw.url}/auth/sso/op/callback?error=access_denied&error_description=${encodeURIComponent('no\r\nLocation: evil ' + 'x'.repeat(500))}&state=${state}`),
    );
    expect(denied.status).toBe(403);
    expect(denied.error).toMatch(/^The provider refused the sign-in: access_denied - no Location: evil x+/);
    expect(denied.error!.length).toBeLessThanOrEqual(200);
    expect(denied.error).not.toMatch(/[\r\n]/);

    // A crafted link cannot put words on the login page: no login was started by this browser.
    const crafted = await outcomeOf(await new Browser().fetch(`${gw.url}/auth/sso/op/callback?error=x&error_description=Call+555-0100+now`));
    expect(crafted.status).toBe(400);
    expect(crafted.error).not.toMatch(/555/);

    // The login cookie is single-use: the failed callback cleared it.
    const stale = await outcomeOf(await b.fetch(`${gw.url}/auth/sso/op/callback?code=abc&state=${state}`));
    expect(stale.status).toBe(400);
    expect(stale.response.headers.get('x-portcullis-error')).toBe('sso_login_expired');

    const again = new URL(await startLogin(b, gw.url, 'op'));
    const callback = await atProvider(b, again.href, 'bob', new URL(gw.url).origin);
    const forged = new URL(callback);
    forged.searchParams.set('state', 'forged');
    const mismatch = await outcomeOf(await b.fetch(forged.href));
    expect(mismatch.status).toBe(400);
    expect(mismatch.response.headers.get('x-portcullis-error')).toBe('sso_state_mismatch');

    // A login started in another browser cannot be finished in this one.
    const other = new Browser();
    const theirs = await atProvider(other, await startLogin(other, gw.url, 'op'), 'bob', new URL(gw.url).origin);
    expect((await outcomeOf(await new Browser().fetch(theirs))).response.headers.get('x-portcullis-error')).toBe('sso_login_expired');
  });

  it('ignores a return path to another site', async () => {
    const b = new Browser();
    expect((await signIn(b, gw.url, 'op', 'bob', '//evil.example/x')).next).toBe('/');
    expect((await signIn(b, gw.url, 'op', 'bob', 'https://evil.example/')).next).toBe('/');
    expect((await signIn(b, gw.url, 'op', 'bob', '/\\evil.example')).next).toBe('/');
  });
});
