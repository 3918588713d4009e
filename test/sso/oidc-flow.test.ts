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
});
