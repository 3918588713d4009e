import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, importPKCS8 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, basic, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

describe('credentials', () => {
  let gw: TestGateway;
  let now = Date.now();

  beforeAll(async () => {
    gw = await startTestGateway({ now: () => now, config: { login: { maxFailuresPerUser: 3 } } });
    const created = await fetch(`${gw.url}/api/admin/users`, {
      method: 'POST',
      headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bob', password: 'bob-password', roles: ['ROLE_X'] }),
    });
    expect(created.status).toBe(201);
  });
  afterAll(() => gw.close());

  const me = (headers: Record<string, string> = {}) => fetch(`${gw.url}/api/me`, { headers });

  it('answers 401 to no credentials on /api/me, 200 to Basic', async () => {
    const anon = await me();
    expect(anon.status).toBe(401);
    expect(await anon.json()).toEqual({ error: 'authentication_required', message: expect.any(String) });
    const ok = await me({ authorization: basic('bob', 'bob-password') });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ name: 'bob', roles: ['ROLE_USER', 'ROLE_X'] });
  });

  it.each([
    ['wrong password', basic('bob', 'nope')],
    ['unknown user', basic('nobody', 'x')],
    ['garbage base64', 'Basic !!!not-base64!!!'],
    ['no colon', 'Basic ' + Buffer.from('bob').toString('base64')],
    ['empty bearer', 'Bearer '],
    ['unknown scheme', 'Digest abc'],
    ['not a JWT', 'Bearer abc.def'],
    ['oversized', 'Bearer ' + 'a'.repeat(9000)],
  ])('answers 401 to %s, never anonymous', async (_name, header) => {
    const response = await me({ authorization: header });
    expect(response.status).toBe(401);
    const body = await response.json();
    expect(body.error).toMatch(/^invalid_/);
  });

  it('notices a password change at once despite the Basic cache', async () => {
    expect((await me({ authorization: basic('bob', 'bob-password') })).status).toBe(200);
    const patched = await fetch(`${gw.url}/api/admin/users/bob`, {
      method: 'PATCH',
      headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'new-bob-password' }),
    });
    expect(patched.status).toBe(200);
    expect((await me({ authorization: basic('bob', 'bob-password') })).status).toBe(401);
    expect((await me({ authorization: basic('bob', 'new-bob-password') })).status).toBe(200);
  });

  it('notices a role change at once', async () => {
    await fetch(`${gw.url}/api/admin/users/bob`, {
      method: 'PATCH',
      headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ roles: ['ROLE_Y'] }),
    });
    const body = await (await me({ authorization: basic('bob', 'new-bob-password') })).json();
    expect(body.roles).toEqual(['ROLE_USER', 'ROLE_Y']);
  });

  describe('gateway JWTs as Bearer', () => {
    async function jwtFor(headers: Record<string, string>): Promise<string> {
      // A JWT exactly as a proxied app receives it: take it from the target's view via a probe.
      let captured = '';
      const { createServer } = await import('node:http');
      const server = createServer((req, res) => {
        captured = req.headers.authorization!.slice(7);
        res.end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as import('node:net').AddressInfo).port;
      await fetch(`${gw.url}/api/admin/proxy`, {
        method: 'PUT',
        headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ url: `http://127.0.0.1:${port}` }),
      });
      await fetch(`${gw.url}/proxy/`, { headers });
      server.close();
      return captured;
    }

    it('accepts its own JWT until it expires, then 401', async () => {
      const jwt = await jwtFor({ authorization: basic('bob', 'new-bob-password') });
      const ok = await me({ authorization: `Bearer ${jwt}` });
      expect(ok.status).toBe(200);
      expect((await ok.json()).name).toBe('bob');
      const anonymousJwt = await jwtFor({});
      expect((await me({ authorization: `Bearer ${anonymousJwt}` })).status).toBe(403);
      now += 6 * 60_000;
      const expired = await me({ authorization: `Bearer ${jwt}` });
      expect(expired.status).toBe(401);
      expect((await expired.json()).message).toMatch(/expired/);
      now = Date.now();
    });

    it('refuses a tampered payload, alg none, and a foreign key', async () => {
      const jwt = await jwtFor({ authorization: basic('bob', 'new-bob-password') });
      const [h, p, s] = jwt.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
      const forged = Buffer.from(JSON.stringify({ ...claims, authorities: ['ROLE_ADMIN', 'ROLE_USER'] })).toString('base64url');
      expect((await me({ authorization: `Bearer ${h}.${forged}.${s}` })).status).toBe(401);

      const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
      expect((await me({ authorization: `Bearer ${none}.${p}.` })).status).toBe(401);

      const header = JSON.parse(Buffer.from(h, 'base64url').toString());
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const key = await importPKCS8(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS512');
      const foreign = await new SignJWT(claims).setProtectedHeader({ alg: 'RS512', kid: header.kid }).sign(key);
      const response = await me({ authorization: `Bearer ${foreign}` });
      expect(response.status).toBe(401);
      expect((await response.json()).message).toMatch(/signature/);
    });
  });

  describe('sessions', () => {
    const login = (name: string, password: string, headers: Record<string, string> = {}) =>
      fetch(`${gw.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ name, password }),
      });

    it('sets an HttpOnly SameSite=Lax cookie, and logout revokes it at once', async () => {
      const response = await login('admin', ADMIN_PASSWORD);
      expect(response.status).toBe(200);
      const setCookie = response.headers.get('set-cookie')!;
      expect(setCookie).toMatch(/^portcullis_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Lax/);
      const cookie = setCookie.split(';')[0]!;
      expect((await me({ cookie })).status).toBe(200);
      const out = await fetch(`${gw.url}/api/auth/logout`, { method: 'POST', headers: { cookie, origin: gw.url } });
      expect(out.status).toBe(204);
      expect((await me({ cookie })).status).toBe(401);
    });

    it('refuses cookie-authenticated writes from another origin (CSRF)', async () => {
      const cookie = (await login('admin', ADMIN_PASSWORD)).headers.get('set-cookie')!.split(';')[0]!;
      const body = JSON.stringify({ name: 'mallory', password: 'x' });
      const foreign = await fetch(`${gw.url}/api/admin/users`, {
        method: 'POST',
        headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/json' },
        body,
      });
      expect(foreign.status).toBe(403);
      expect((await foreign.json()).error).toBe('csrf_rejected');
      const noOrigin = await fetch(`${gw.url}/api/admin/users`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body });
      expect(noOrigin.status).toBe(403);
      const same = await fetch(`${gw.url}/api/admin/users`, { method: 'POST', headers: { cookie, origin: gw.url, 'content-type': 'application/json' }, body });
      expect(same.status).toBe(201);
    });

    it('lists my sessions and signs out everywhere', async () => {
      const a = (await login('bob', 'new-bob-password')).headers.get('set-cookie')!.split(';')[0]!;
      const b = (await login('bob', 'new-bob-password')).headers.get('set-cookie')!.split(';')[0]!;
      const list = await (await me({ cookie: a })).json();
      expect(list.name).toBe('bob');
      const sessions = await (await fetch(`${gw.url}/api/me/sessions`, { headers: { cookie: a } })).json();
      expect(sessions.length).toBeGreaterThanOrEqual(2);
      expect(sessions.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
      expect((await fetch(`${gw.url}/api/me/sessions`, { method: 'DELETE', headers: { cookie: a, origin: gw.url } })).status).toBe(204);
      expect((await me({ cookie: a })).status).toBe(401);
      expect((await me({ cookie: b })).status).toBe(401);
    });

    it('ends a deleted user’s sessions at once', async () => {
      await fetch(`${gw.url}/api/admin/users`, {
        method: 'POST',
        headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'carol', password: 'carol-pw' }),
      });
      const cookie = (await login('carol', 'carol-pw')).headers.get('set-cookie')!.split(';')[0]!;
      expect((await me({ cookie })).status).toBe(200);
      expect((await fetch(`${gw.url}/api/admin/users/carol`, { method: 'DELETE', headers: { authorization: gw.adminAuth } })).status).toBe(204);
      expect((await me({ cookie })).status).toBe(401);
    });

    it('treats a forged or stale cookie as a wrong credential (401)', async () => {
      expect((await me({ cookie: 'portcullis_session=' + 'A'.repeat(43) })).status).toBe(401);
      expect((await me({ cookie: 'portcullis_session=short' })).status).toBe(401);
      expect((await me({ cookie: 'other=1' })).status).toBe(401);
    });

    it('rate-limits failed logins per user name, with Retry-After', async () => {
      for (let i = 0; i < 3; i++) expect((await login('bob', 'wrong')).status).toBe(401);
      const limited = await login('bob', 'new-bob-password');
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await limited.json()).error).toBe('rate_limited');
      now += 301_000;
      expect((await login('bob', 'new-bob-password')).status).toBe(200);
      now = Date.now();
    });

    it('limits password guessing through Basic credentials too, on any route', async () => {
      await fetch(`${gw.url}/api/admin/users`, {
        method: 'POST',
        headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'basher', password: 'basher-pw' }),
      });
      for (let i = 0; i < 3; i++) expect((await me({ authorization: basic('basher', `guess-${i}`) })).status).toBe(401);
      const limited = await fetch(`${gw.url}/proxy`, { headers: { authorization: basic('basher', 'guess-4') } });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      // Even the right password waits out the window: the guesser cannot learn it is right.
      expect((await me({ authorization: basic('basher', 'basher-pw') })).status).toBe(429);
      now += 301_000;
      expect((await me({ authorization: basic('basher', 'basher-pw') })).status).toBe(200);
      now = Date.now();
    });

    it('refuses a cookie-authenticated write through /proxy from a foreign origin', async () => {
      const { createServer } = await import('node:http');
      let hits = 0;
      const target = createServer((req, res) => {
        hits++;
        req.resume();
        res.end('ok');
      });
      await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
      try {
        await fetch(`${gw.url}/api/admin/proxy`, {
          method: 'PUT',
          headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
          body: JSON.stringify({ url: `http://127.0.0.1:${(target.address() as import('node:net').AddressInfo).port}` }),
        });
        const cookie = (await login('admin', ADMIN_PASSWORD)).headers.get('set-cookie')!.split(';')[0]!;
        const foreign = await fetch(`${gw.url}/proxy/transfer`, { method: 'POST', headers: { cookie, origin: 'https://evil.example' }, body: 'x' });
        expect(foreign.status).toBe(403);
        expect((await foreign.json()).error).toBe('csrf_rejected');
        expect(hits).toBe(0);
        expect((await fetch(`${gw.url}/proxy/transfer`, { method: 'POST', headers: { cookie, origin: gw.url }, body: 'x' })).status).toBe(200);
        expect((await fetch(`${gw.url}/proxy/page`, { headers: { cookie } })).status).toBe(200);
        expect(hits).toBe(2);
      } finally {
        target.close();
      }
    });

    it('refuses a login posted from a foreign origin', async () => {
      expect((await login('admin', ADMIN_PASSWORD, { origin: 'https://evil.example' })).status).toBe(403);
    });
  });
});
