// Conformance tier: every bad input the connection flow must refuse, each asserting the
// error code, and that nothing was stored half-way.
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { AuthServer, type AuthServerOptions } from './fixtures/auth-server.ts';
import { addUser, api, authorize, browse } from './fixtures/harness.ts';
import { ResourceServer, type ResourceServerOptions } from './fixtures/mcp-server.ts';

let gw: TestGateway;
let alice: string;
let bob: string;
const servers: Array<{ close(): Promise<void> }> = [];

async function upstream(asOptions: AuthServerOptions = {}, resourceOptions: ResourceServerOptions = {}) {
  const as = new AuthServer(asOptions);
  await as.listen();
  const resource = new ResourceServer(as, resourceOptions);
  await resource.listen();
  servers.push(resource, as);
  return { as, resource };
}

async function names(): Promise<string[]> {
  return (await api(gw, gw.adminAuth, 'GET', '/api/admin/connections')).body.map((c: { name: string }) => c.name);
}

async function create(body: Record<string, unknown>) {
  return api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { auth: 'oauth2.1', ...body });
}

function rawGet(base: string, path: string, authorization: string): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, headers: { authorization } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  gw = await startTestGateway();
  alice = await addUser(gw, 'alice');
  bob = await addUser(gw, 'bob');
});
afterAll(async () => {
  await gw?.close();
  for (const server of servers) await server.close();
});

describe('adding a connection', () => {
  it('refuses an unreachable resource', async () => {
    const res = await create({ name: 'down', url: `http://127.0.0.1:${await closedPort()}/mcp` });
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('connection_unreachable');
    expect(res.body.message).toContain('ECONNREFUSED');
    expect(await names()).not.toContain('down');
  });

  it('refuses malformed authorization server metadata', async () => {
    const { resource } = await upstream({ malformedMetadata: true });
    const res = await create({ name: 'malformed', url: resource.url });
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('metadata_invalid');
    expect(res.body.message).toMatch(/authorization_endpoint/);
    expect(await names()).not.toContain('malformed');
  });

  it('refuses resource metadata that is not JSON', async () => {
    const { as, resource } = await upstream({}, { malformedResourceMetadata: true });
    const res = await create({ name: 'bad-prm', url: resource.url });
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('metadata_invalid');
    expect(res.body.message).toContain('oauth-protected-resource');
    expect(as.counts.registrations).toBe(0);
  });

  it('says what it tried when no metadata exists anywhere', async () => {
    const plain = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise<void>((resolve) => plain.close(() => resolve())) });
    const url = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/mcp`;
    const res = await create({ name: 'nothing', url });
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('discovery_failed');
    expect(res.body.message).toContain('/.well-known/oauth-authorization-server/mcp');
  });

  it('reads no metadata larger than connections.maxResponseBytes', async () => {
    const huge = createServer((req, res) => {
      if (req.method === 'POST') {
        req.resume();
        res.writeHead(401, { 'www-authenticate': 'Bearer resource_metadata="/big"' }).end();
        return;
      }
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ authorization_servers: ['http://127.0.0.1:9'], padding: 'x'.repeat(300 * 1024) }));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => huge.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise<void>((resolve) => huge.close(() => resolve())) });
    const res = await create({ name: 'huge', url: `http://127.0.0.1:${(huge.address() as AddressInfo).port}/mcp` });
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('discovery_failed');
    expect(res.body.message).toContain('answered with more than 262144 bytes');
  });

  it('refuses when registration is refused, and stores nothing', async () => {
    const { resource } = await upstream({ registration: 'refuse' });
    const res = await create({ name: 'refused', url: resource.url });
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('registration_failed');
    expect(res.body.message).toContain('registration is closed');
    expect(await names()).not.toContain('refused');
  });

  it('refuses a server that offers no token endpoint auth method the gateway can use', async () => {
    const { resource } = await upstream({ authMethods: ['private_key_jwt', 'tls_client_auth'] });
    const res = await create({ name: 'jwt-only', url: resource.url });
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('unsupported_auth_method');
  });

  it.each([
    [{ name: 'bad name!', url: 'http://127.0.0.1:1/', auth: 'none' }, 400, 'invalid_connection_name'],
    [{ name: 'x', url: 'ftp://example.com/', auth: 'none' }, 400, 'invalid_connection_url'],
    [{ name: 'x', url: 'http://user:pw@example.com/', auth: 'none' }, 400, 'invalid_connection_url'],
    [{ name: 'x', url: 'http://example.com/?q=1', auth: 'none' }, 400, 'invalid_connection_url'],
    [{ name: 'x', url: 'http://example.com/', auth: 'bearer' }, 400, 'invalid_connection'],
    [{ name: 'x', url: 'http://example.com/', auth: 'bearer', token: 'a\r\nx-injected: 1' }, 400, 'invalid_connection'],
    [{ name: 'x', url: 'http://example.com/', auth: 'none', token: 'stray' }, 400, 'invalid_connection'],
    [{ name: 'x', url: 'http://example.com/', auth: 'oauth2.1-static' }, 400, 'invalid_connection'],
    [{ name: 'x', url: 'http://example.com/', auth: 'none', scope: 'read' }, 400, 'invalid_connection'],
    [{ name: 'x', url: 'http://example.com/', auth: 'kerberos' }, 400, 'invalid_request'],
    [{ name: 'x', url: 'http://example.com/', auth: 'none', extra: 1 }, 400, 'invalid_request'],
  ])('refuses %j', async (body, status, code) => {
    const res = await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', body);
    expect(res.status).toBe(status);
    expect(res.body.error).toBe(code);
  });

  it('needs ROLE_ADMIN, and refuses a duplicate name', async () => {
    expect((await api(gw, alice, 'POST', '/api/admin/connections', { name: 'x', url: 'http://example.com/', auth: 'none' })).status).toBe(403);
    expect((await api(gw, alice, 'GET', '/api/admin/connections')).status).toBe(403);
    expect((await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name: 'dup', url: 'http://127.0.0.1:9/', auth: 'none' })).status).toBe(201);
    const again = await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name: 'dup', url: 'http://127.0.0.1:9/', auth: 'none' });
    expect(again.status).toBe(409);
    expect(again.body.error).toBe('connection_exists');
  });
});

describe('authorizing', () => {
  let as: AuthServer;
  beforeAll(async () => {
    const up = await upstream();
    as = up.as;
    expect((await create({ name: 'flow', url: up.resource.url })).status).toBe(201);
  });

  const authorized = async (who: string) => (await api(gw, who, 'GET', '/api/connections')).body.find((c: { name: string }) => c.name === 'flow').authorized;

  it.each([
    ['a token endpoint error', { status: 500, body: { error: 'server_error', error_description: 'database on fire' } }, 'database on fire'],
    ['a refused code', { status: 400, body: { error: 'invalid_grant', error_description: 'code expired' } }, 'invalid_grant'],
  ])('sends the browser back with the reason after %s, storing no token', async (_what, failure, text) => {
    as.tokenFailure = failure;
    try {
      const flow = await authorize(gw, 'flow', alice, as.origin, 'alice', '/account/connections#flow');
      const location = new URL(flow.location!, gw.url);
      expect(location.pathname).toBe('/account/connections');
      expect(location.hash).toBe('#flow');
      expect(location.searchParams.get('connection')).toBe('flow');
      expect(location.searchParams.get('connection_error')).toContain(text);
      expect(await authorized(alice)).toBe(false);
      // The state was spent: replaying the callback is refused.
      const callback = flow.visited.find((u) => u.includes('/callback'))!;
      const replay = await api(gw, alice, 'GET', new URL(callback).pathname + new URL(callback).search);
      expect(replay.status).toBe(400);
      expect(replay.body.error).toBe('invalid_state');
    } finally {
      as.tokenFailure = undefined;
    }
  });

  it('sends the browser back with the reason when the user declines', async () => {
    const flow = await authorize(gw, 'flow', alice, as.origin, 'deny');
    expect(new URL(flow.location!, gw.url).searchParams.get('connection_error')).toContain('access_denied');
    expect(await authorized(alice)).toBe(false);
  });

  it('refuses a callback with an unknown state', async () => {
    const res = await api(gw, alice, 'GET', '/api/connections/flow/callback?code=abc&state=made-up');
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_state');
    const none = await api(gw, alice, 'GET', '/api/connections/flow/callback?code=abc');
    expect(none.body.error).toBe('invalid_state');
  });

  it('refuses a state started by another user, and leaves it to its owner', async () => {
    const start = await api(gw, alice, 'GET', '/api/connections/flow/authorize');
    expect(start.status).toBe(302);
    const consent = await fetch(start.headers.get('location')!, { headers: { cookie: 'as_user=alice' }, redirect: 'manual' });
    const callback = new URL(consent.headers.get('location')!);
    const stolen = await api(gw, bob, 'GET', callback.pathname + callback.search);
    expect(stolen.status).toBe(400);
    expect(stolen.body.error).toBe('invalid_state');
    expect(stolen.body.message).toContain('another user');
    expect(await authorized(bob)).toBe(false);
    const owner = await api(gw, alice, 'GET', callback.pathname + callback.search);
    expect(owner.status).toBe(302);
    expect(owner.headers.get('location')).toBe('/');
    expect(await authorized(alice)).toBe(true);
  });

  it('refuses a callback for another connection’s state', async () => {
    expect((await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name: 'other', url: 'http://127.0.0.1:9/', auth: 'none' })).status).toBe(201);
    const start = await api(gw, alice, 'GET', '/api/connections/flow/authorize');
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!;
    const res = await api(gw, alice, 'GET', `/api/connections/other/callback?code=x&state=${state}`);
    expect(res.body.error).toBe('invalid_state');
  });

  it.each(['https://evil.example/', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)', '/ok\r\nx'])('refuses return_to %j', async (returnTo) => {
    const res = await api(gw, alice, 'GET', `/api/connections/flow/authorize?return_to=${encodeURIComponent(returnTo)}`);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_connection');
  });

  it('needs a signed-in user and an OAuth connection', async () => {
    expect((await fetch(`${gw.url}/api/connections/flow/authorize`, { redirect: 'manual' })).status).toBe(401);
    expect((await api(gw, alice, 'GET', '/api/connections/other/authorize')).body.error).toBe('connection_not_oauth');
    expect((await api(gw, alice, 'GET', '/api/connections/missing/authorize')).status).toBe(404);
  });

  it('refuses an oauth2.1-static client the server does not know', async () => {
    const { as: other, resource } = await upstream();
    expect((await create({ name: 'unknown-static', url: resource.url, auth: 'oauth2.1-static', clientId: 'nobody', clientSecret: 'x' })).status).toBe(201);
    const res = await api(gw, alice, 'GET', '/api/connections/unknown-static/authorize');
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('client_rejected');
    expect(other.counts.registrations).toBe(0);
  });
});

describe('an authorization that takes too long (connections.authorizeTtl)', () => {
  it('is refused at the callback, on the gateway’s clock', async () => {
    let clock = Date.now();
    const timed = await startTestGateway({ now: () => clock });
    try {
      const { as, resource } = await upstream();
      expect((await api(timed, timed.adminAuth, 'POST', '/api/admin/connections', { name: 'slow', url: resource.url, auth: 'oauth2.1' })).status).toBe(201);
      const erin = await addUser(timed, 'erin');
      const start = await api(timed, erin, 'GET', '/api/connections/slow/authorize');
      const consent = await fetch(start.headers.get('location')!, { headers: { cookie: 'as_user=erin' }, redirect: 'manual' });
      const callback = new URL(consent.headers.get('location')!);
      clock += 601_000;
      const late = await api(timed, erin, 'GET', callback.pathname + callback.search);
      expect(late.status).toBe(400);
      expect(late.body.error).toBe('invalid_state');
      expect(late.body.message).toContain('took too long');
      expect(as.counts.codeGrants).toBe(0);
    } finally {
      await timed.close();
    }
  });
});

describe('the proxy', () => {
  it('answers JSON errors for unknown connections, dot segments and unreachable resources', async () => {
    expect((await api(gw, alice, 'GET', '/connections/nope/x')).body.error).toBe('connection_not_found');
    expect((await fetch(`${gw.url}/connections/dup/x`)).status).toBe(401);
    const port = await closedPort();
    expect((await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name: 'gone', url: `http://127.0.0.1:${port}/base`, auth: 'none' })).status).toBe(201);
    const down = await api(gw, alice, 'GET', '/connections/gone/x');
    expect(down.status).toBe(502);
    expect(down.body.error).toBe('connection_unreachable');
    // fetch would normalize the dots away: send the path as is.
    for (const path of ['/connections/gone/a/%2e%2e/b', '/connections/gone/../dup', '/connections/gone/./x?y=1']) {
      const dots = await rawGet(gw.url, path, alice);
      expect(dots.status).toBe(400);
      expect(JSON.parse(dots.body).error).toBe('invalid_connection_path');
    }
  });
});

describe('outbound address guard (production default)', () => {
  it('refuses to follow resource metadata to a loopback authorization server on another host', async () => {
    const strict = await startTestGateway({ config: { outbound: { allowPrivateAddresses: false } } });
    try {
      const { as, resource } = await upstream();
      // The metadata names the same server by another name: http and loopback, not the admin's host.
      as.mount(as.origin.replace('127.0.0.1', 'localhost'));
      const res = await api(strict, strict.adminAuth, 'POST', '/api/admin/connections', { name: 'ssrf', url: resource.url, auth: 'oauth2.1' });
      expect(res.status).toBe(502);
      expect(res.body.message).toMatch(/must use https|loopback/);
      expect(as.requests).toHaveLength(0);
    } finally {
      await strict.close();
    }
  });
});
