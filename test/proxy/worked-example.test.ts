// The proxy's reference worked example, end to end through Portcullis's own API: a real target
// server verifies the JWT with the JWKS public key (node:crypto, not the signing library)
// or calls the gateway back on /api/me with it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { verifyWithJwks } from '../helpers/jwt-check.ts';

let gatewayUrl = '';

function startTarget(): Promise<Server> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://target');
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      res.writeHead(200, { 'X-Custom-Header': 'lorem ipsum', 'content-length': body.length });
      res.end(body);
      return;
    }
    if (url.pathname !== '/whoami') {
      res.writeHead(404).end();
      return;
    }
    const [tokenType, jwt] = (req.headers.authorization ?? '').split(' ');
    const mode = url.searchParams.get('mode');
    if (mode === 'jwt') {
      const { claims } = await verifyWithJwks(jwt!, `${gatewayUrl}/.well-known/jwks.json`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: claims.sub, roles: claims.authorities }));
      return;
    }
    if (mode === 'session') {
      // The target needs no knowledge of the gateway's URL: it is rebuilt from the forwarded headers.
      const base = `${req.headers['x-forwarded-proto']}://${req.headers['x-forwarded-host']}`;
      const me = await fetch(`${base}/api/me`, { headers: { authorization: `${tokenType} ${jwt}` } });
      if (me.status !== 200) {
        res.writeHead(403).end();
        return;
      }
      const user = (await me.json()) as { name: string; roles: string[] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: user.name, roles: [...user.roles].sort() }));
      return;
    }
    res.writeHead(400).end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('proxy worked example (secured)', () => {
  let gw: TestGateway;
  let target: Server;
  let targetUrl: string;

  beforeAll(async () => {
    target = await startTarget();
    targetUrl = `http://localhost:${(target.address() as AddressInfo).port}`;
    gw = await startTestGateway();
    gatewayUrl = gw.url;
  });
  afterAll(async () => {
    await gw.close();
    target.close();
  });

  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`${gw.url}${path}`, {
      method,
      headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('is disabled by default: 501 with the exact text', async () => {
    expect(await (await admin('GET', '/api/admin/proxy')).json()).toEqual({ url: null });
    const response = await fetch(`${gw.url}/proxy`);
    expect(response.status).toBe(501);
    expect(await response.text()).toBe('The proxy is disabled.');
  });

  it('forwards anonymous calls with an anonymous JWT', async () => {
    const put = await admin('PUT', '/api/admin/proxy', { url: targetUrl });
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ url: targetUrl });
    const response = await fetch(`${gw.url}/proxy/whoami?mode=jwt`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ name: 'anonymousUser', roles: ['ROLE_ANONYMOUS'] });
  });

  it('refuses the anonymous JWT on /api/me (403 through the target)', async () => {
    expect((await fetch(`${gw.url}/proxy/whoami?mode=session`)).status).toBe(403);
  });

  it('identifies Alice, created through the admin API, in both modes', async () => {
    const created = await admin('POST', '/api/admin/users', { name: 'Alice', password: 'abcdef123456', roles: ['ROLE_USER', 'ROLE_WONDERLAND'] });
    expect(created.status).toBe(201);
    const auth = { authorization: basic('Alice', 'abcdef123456') };
    for (const mode of ['jwt', 'session']) {
      const response = await fetch(`${gw.url}/proxy/whoami?mode=${mode}`, { headers: auth });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ name: 'Alice', roles: ['ROLE_USER', 'ROLE_WONDERLAND'] });
    }
  });

  it('passes the target 400 and 404 through', async () => {
    expect((await fetch(`${gw.url}/proxy/whoami?mode=invalid`)).status).toBe(400);
    expect((await fetch(`${gw.url}/proxy`)).status).toBe(404);
  });

  it('echoes a binary POST with Content-Length and the custom header', async () => {
    const bytes = randomBytes(32);
    const response = await fetch(`${gw.url}/proxy`, { method: 'POST', body: bytes });
    expect(response.status).toBe(200);
    expect(Number(response.headers.get('content-length'))).toBe(bytes.length);
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
    expect(response.headers.get('x-custom-header')).toBe('lorem ipsum');
  });

  it('returns 501 again once disabled', async () => {
    expect((await admin('PUT', '/api/admin/proxy', { url: null })).status).toBe(200);
    expect((await fetch(`${gw.url}/proxy`)).status).toBe(501);
  });
});

describe('proxy worked example (unsecured mode)', () => {
  let gw: TestGateway;
  let target: Server;

  beforeAll(async () => {
    target = await startTarget();
    gw = await startTestGateway({ config: { security: { enabled: false } } });
    gatewayUrl = gw.url;
  });
  afterAll(async () => {
    await gw.close();
    target.close();
  });

  it('gives anonymous callers every role, and /api/me accepts them', async () => {
    const put = await fetch(`${gw.url}/api/admin/proxy`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `http://127.0.0.1:${(target.address() as AddressInfo).port}` }),
    });
    expect(put.status).toBe(200);
    const response = await fetch(`${gw.url}/proxy/whoami?mode=session`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ name: 'anonymousUser', roles: ['ROLE_ADMIN', 'ROLE_ANONYMOUS', 'ROLE_USER'] });
  });
});
