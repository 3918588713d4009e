// Integration tier: the admin API and CLI for connections, and the none/bearer kinds
// through the proxy, against a real gateway and a header-echoing upstream.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { AuthServer } from './fixtures/auth-server.ts';
import { addUser, api, authorize } from './fixtures/harness.ts';
import { ResourceServer } from './fixtures/mcp-server.ts';

let gw: TestGateway;
let alice: string;
let echo: Server;
let echoUrl: string;

beforeAll(async () => {
  echo = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url: req.url, method: req.method, headers: req.headers }));
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`;
  gw = await startTestGateway();
  alice = await addUser(gw, 'alice');
});
afterAll(async () => {
  await gw?.close();
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

const seen = async (path: string, init: RequestInit = {}) => {
  const response = await fetch(gw.url + path, { ...init, headers: { authorization: alice, ...(init.headers as Record<string, string>) } });
  return { status: response.status, body: (await response.json()) as { url: string; method: string; headers: IncomingHttpHeaders } };
};

describe('none and bearer connections', () => {
  it('proxies `none` without any Authorization, mapping paths and queries exactly', async () => {
    expect((await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name: 'open', url: `${echoUrl}/base/`, auth: 'none' })).status).toBe(201);
    expect((await seen('/connections/open')).body.url).toBe('/base');
    expect((await seen('/connections/open/')).body.url).toBe('/base/');
    expect((await seen('/connections/open?q=1')).body.url).toBe('/base?q=1');
    const deep = await seen('/connections/open/a/b%20c?x=1&y=2', { method: 'PUT', body: 'payload', headers: { 'content-type': 'text/plain' } });
    expect(deep.body).toMatchObject({ url: '/base/a/b%20c?x=1&y=2', method: 'PUT' });
    expect(deep.body.headers.authorization).toBeUndefined();
    expect((await api(gw, alice, 'GET', '/api/connections')).body).toContainEqual({ name: 'open', url: `${echoUrl}/base`, auth: 'none', authorized: true });
  });

  it('injects a bearer connection’s token, keeps it out of every view, and changes it at once', async () => {
    const created = await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name: 'shared', url: echoUrl, auth: 'bearer', token: 'tok-one' });
    expect(created.status).toBe(201);
    expect(JSON.stringify(created.body)).not.toContain('tok-one');
    expect((await seen('/connections/shared/x')).body.headers.authorization).toBe('Bearer tok-one');
    // An empty token in a PATCH keeps the current one (the web form leaves it blank).
    expect((await api(gw, gw.adminAuth, 'PATCH', '/api/admin/connections/shared', { url: echoUrl, auth: 'bearer', token: '' })).status).toBe(200);
    expect((await seen('/connections/shared/x')).body.headers.authorization).toBe('Bearer tok-one');
    expect((await api(gw, gw.adminAuth, 'PATCH', '/api/admin/connections/shared', { token: 'tok-two' })).status).toBe(200);
    expect((await seen('/connections/shared/x')).body.headers.authorization).toBe('Bearer tok-two');
    const db = new DatabaseSync(path.join(gw.dataDir, 'portcullis.db'), { readOnly: true });
    try {
      expect(JSON.stringify(db.prepare('SELECT * FROM connections').all())).not.toMatch(/tok-one|tok-two/);
    } finally {
      db.close();
    }
  });

  it('lists, shows, and deletes connections; a deleted one is gone from the proxy at once', async () => {
    const list = await api(gw, gw.adminAuth, 'GET', '/api/admin/connections');
    expect(list.body.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['open', 'shared']));
    const one = await api(gw, gw.adminAuth, 'GET', '/api/admin/connections/open');
    expect(one.body).toMatchObject({ name: 'open', auth: 'none', clientId: null, redirectUri: null });
    expect((await api(gw, gw.adminAuth, 'DELETE', '/api/admin/connections/open')).status).toBe(204);
    expect((await api(gw, gw.adminAuth, 'DELETE', '/api/admin/connections/open')).status).toBe(404);
    expect((await api(gw, gw.adminAuth, 'GET', '/api/admin/connections/open')).status).toBe(404);
    expect((await api(gw, alice, 'GET', '/connections/open/x')).body.error).toBe('connection_not_found');
    expect((await api(gw, gw.adminAuth, 'PATCH', '/api/admin/connections/open', { scope: 'x' })).status).toBe(404);
  });
});

describe('changing an OAuth connection', () => {
  let as: AuthServer;
  let resource: ResourceServer;
  beforeAll(async () => {
    as = new AuthServer();
    await as.listen();
    resource = new ResourceServer(as);
    await resource.listen();
  });
  afterAll(async () => {
    await resource.close();
    await as.close();
  });

  it('keeps the client and the users’ tokens for a new scope, and starts over for a new URL', async () => {
    const created = await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name: 'oauth', url: resource.url, auth: 'oauth2.1' });
    expect(created.status).toBe(201);
    await authorize(gw, 'oauth', alice, as.origin, 'alice');
    const scoped = await api(gw, gw.adminAuth, 'PATCH', '/api/admin/connections/oauth', { scope: 'tools:read tools:call' });
    expect(scoped.body).toMatchObject({ scope: 'tools:read tools:call', clientId: created.body.clientId });
    expect((await api(gw, alice, 'GET', '/api/connections')).body.find((c: { name: string }) => c.name === 'oauth').authorized).toBe(true);
    // The configured scope is what the next authorization requests.
    const start = await api(gw, alice, 'GET', '/api/connections/oauth/authorize');
    expect(new URL(start.headers.get('location')!).searchParams.get('scope')).toBe('tools:read tools:call');

    const moved = await api(gw, gw.adminAuth, 'PATCH', '/api/admin/connections/oauth', { url: resource.url.replace('127.0.0.1', 'localhost') });
    expect(moved.status).toBe(200);
    expect(moved.body.clientId).not.toBe(created.body.clientId);
    expect(as.counts.registrations).toBe(2);
    expect((await api(gw, alice, 'GET', '/api/connections')).body.find((c: { name: string }) => c.name === 'oauth').authorized).toBe(false);
  });

  it('changes nothing when the new URL cannot be discovered', async () => {
    const before = await api(gw, gw.adminAuth, 'GET', '/api/admin/connections/oauth');
    const failed = await api(gw, gw.adminAuth, 'PATCH', '/api/admin/connections/oauth', { url: `${echoUrl}/nothing` });
    expect(failed.status).toBe(502);
    expect(await api(gw, gw.adminAuth, 'GET', '/api/admin/connections/oauth')).toMatchObject({ body: before.body });
  });
});

describe('portcullis connections (CLI)', () => {
  const BIN = path.resolve('bin/portcullis.js');
  let dir: string;
  let configFile: string;
  let as: AuthServer;
  let resource: ResourceServer;

  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'connections', ...args, '--config', configFile], { env: { ...process.env, PORTCULLIS_ADMIN_PASSWORD: 'x' } }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-conn-cli-'));
    configFile = path.join(dir, 'portcullis.yaml');
    writeFileSync(configFile, `dataDir: ${dir}\nurl: http://127.0.0.1:18080\noutbound:\n  allowPrivateAddresses: true\nlog:\n  level: warn\n`);
    as = new AuthServer();
    await as.listen();
    resource = new ResourceServer(as);
    await resource.listen();
  });
  afterAll(async () => {
    await resource.close();
    await as.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('adds, lists and removes connections in the store, registering OAuth ones', async () => {
    const bearer = await cli(['add', 'ci', '--url', echoUrl, '--auth', 'bearer', '--token', 'cli-token']);
    expect(bearer.code, bearer.stderr).toBe(0);
    const oauth = await cli(['add', 'mcp', '--url', resource.url, '--auth', 'oauth2.1']);
    expect(oauth.code, oauth.stderr).toBe(0);
    expect(oauth.stdout).toMatch(/created connection mcp \(oauth2\.1\), client id client-/);
    expect(as.clients.size).toBe(1);
    expect([...as.clients.values()][0]!.redirectUris).toEqual(['http://127.0.0.1:18080/api/connections/mcp/callback']);
    const list = await cli(['list']);
    expect(list.stdout).toMatch(/^ci\thttp:\/\/127\.0\.0\.1:\d+\tbearer$/m);
    expect(list.stdout).toMatch(/^mcp\t.*\toauth2\.1\tclient=client-/m);
    expect(list.stdout).not.toContain('cli-token');
    const failed = await cli(['add', 'down', '--url', 'http://127.0.0.1:9/mcp', '--auth', 'oauth2.1']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/could not be reached .*\(connection_unreachable\)/);
    expect((await cli(['add', 'bad', '--url', echoUrl])).code).toBe(2);
    expect((await cli(['remove', 'ci'])).code).toBe(0);
    expect((await cli(['list'])).stdout).not.toMatch(/^ci\t/m);
    expect((await cli(['remove', 'ci'])).code).toBe(1);
  });
});
