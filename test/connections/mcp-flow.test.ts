// Integration tier, everything real: an MCP server from the SDK behind its own OAuth
// authorization server, a gateway on SQLite, users signed in with Basic, a browser
// following redirects. Through /connections/{name}/ the SDK's MCP client initializes,
// lists and calls tools with the user's token, refreshed as it expires.
import { DatabaseSync } from 'node:sqlite';
import path from 'node:path';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { AuthServer } from './fixtures/auth-server.ts';
import { addUser, api, authorize, mcpClient, toolText } from './fixtures/harness.ts';
import { ResourceServer } from './fixtures/mcp-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an MCP server behind OAuth, through /connections', () => {
  let as: AuthServer;
  let resource: ResourceServer;
  let gw: TestGateway;
  let alice: string;
  let bob: string;

  const tokenOf = (user: string) => [...as.accessTokens.entries()].filter(([, g]) => g.user === user).map(([t]) => t);

  beforeAll(async () => {
    // Access tokens live 2 s: the gateway refreshes them after half their life.
    as = new AuthServer({ accessTokenTtl: 2 });
    await as.listen();
    resource = new ResourceServer(as);
    await resource.listen();
    gw = await startTestGateway();
    alice = await addUser(gw, 'alice');
    bob = await addUser(gw, 'bob');
  });
  afterAll(async () => {
    await gw?.close();
    await resource?.close();
    await as?.close();
  });

  it('discovers the authorization server and registers itself when the admin adds the connection', async () => {
    const created = await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name: 'tools', url: resource.url, auth: 'oauth2.1' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'tools',
      url: resource.url,
      auth: 'oauth2.1',
      registered: true,
      pkce: true,
      authorizationServer: as.issuer,
      tokenEndpointAuthMethod: 'client_secret_post',
      redirectUri: `${gw.url}/api/connections/tools/callback`,
    });
    expect(as.counts.registrations).toBe(1);
    expect(as.clients.get(created.body.clientId)?.redirectUris).toEqual([`${gw.url}/api/connections/tools/callback`]);
    // The resource named its metadata in the 401: no well-known guessing was needed.
    expect(resource.requests).toContain('/.well-known/oauth-protected-resource/mcp');
    expect(JSON.stringify(created.body)).not.toContain(as.clients.get(created.body.clientId)!.secret!);
  });

  it('answers 401 with the authorize link until the user authorizes', async () => {
    const list = await api(gw, alice, 'GET', '/api/connections');
    expect(list.body).toEqual([{ name: 'tools', url: resource.url, auth: 'oauth2.1', authorized: false }]);
    const denied = await api(gw, alice, 'POST', '/connections/tools/', { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(denied.status).toBe(401);
    expect(denied.body).toMatchObject({ error: 'connection_authorization_required', connection: 'tools', authorize: `${gw.url}/api/connections/tools/authorize` });
    expect(resource.seen).toHaveLength(0);
  });

  it('runs the authorization with PKCE and brings the browser back where it came from', async () => {
    const result = await authorize(gw, 'tools', alice, as.origin, 'alice', '/account/connections?tab=1');
    expect(result.status).toBe(302);
    expect(result.location).toBe('/account/connections?tab=1');
    const consent = new URL(result.visited[1]!);
    expect(consent.origin + consent.pathname).toBe(`${as.issuer}/authorize`);
    expect(consent.searchParams.get('code_challenge_method')).toBe('S256');
    expect(consent.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(consent.searchParams.get('scope')).toBeNull();
    expect(consent.searchParams.get('resource')).toBe(resource.url);
    expect(as.counts.codeGrants).toBe(1);
    const list = await api(gw, alice, 'GET', '/api/connections');
    expect(list.body[0].authorized).toBe(true);
    // Still unauthorized for bob.
    expect((await api(gw, bob, 'GET', '/api/connections')).body[0].authorized).toBe(false);
  });

  it('initializes, lists and calls tools with the user’s token, never the client’s own Authorization', async () => {
    const client = await mcpClient(`${gw.url}/connections/tools/`, alice);
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name).sort()).toEqual(['countdown', 'echo', 'whoami']);
      expect(toolText(await client.callTool({ name: 'echo', arguments: { text: 'hello' } }))).toBe('hello');
      const who = toolText(await client.callTool({ name: 'whoami', arguments: {} }));
      expect(who.user).toBe('alice');
      expect(tokenOf('alice')).toContain(who.token);
      expect(resource.seen.every((r) => r.headers.authorization?.startsWith('Bearer '))).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('keeps two users’ tokens apart', async () => {
    const result = await authorize(gw, 'tools', bob, as.origin, 'bob');
    expect(result.location).toBe('/account/connections');
    const [a, b] = [await mcpClient(`${gw.url}/connections/tools`, alice), await mcpClient(`${gw.url}/connections/tools`, bob)];
    try {
      const whoA = toolText(await a.callTool({ name: 'whoami', arguments: {} }));
      const whoB = toolText(await b.callTool({ name: 'whoami', arguments: {} }));
      expect(whoA.user).toBe('alice');
      expect(whoB.user).toBe('bob');
      expect(whoA.token).not.toBe(whoB.token);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('refreshes an expiring token transparently, once for many concurrent calls', async () => {
    const client = await mcpClient(`${gw.url}/connections/tools/`, alice);
    try {
      const before = toolText(await client.callTool({ name: 'whoami', arguments: {} })).token;
      const refreshes = as.counts.refreshes;
      as.refreshDelayMs = 150;
      await sleep(1_100);
      const calls = await Promise.all(Array.from({ length: 8 }, () => client.callTool({ name: 'whoami', arguments: {} })));
      const tokens = new Set(calls.map((c) => toolText(c).token));
      expect(tokens.size).toBe(1);
      expect(tokens.has(before)).toBe(false);
      expect(as.counts.refreshes).toBe(refreshes + 1);
      // And once more after the new token ages: still transparent.
      await sleep(1_100);
      expect(toolText(await client.callTool({ name: 'whoami', arguments: {} })).user).toBe('alice');
      expect(as.counts.refreshes).toBe(refreshes + 2);
    } finally {
      as.refreshDelayMs = 0;
      await client.close();
    }
  });

  it('refreshes and replays once when the resource refuses a token the gateway thought valid', async () => {
    const client = await mcpClient(`${gw.url}/connections/tools/`, alice);
    try {
      const refreshes = as.counts.refreshes;
      for (const [token, grant] of as.accessTokens) if (grant.user === 'alice') as.accessTokens.delete(token);
      expect(toolText(await client.callTool({ name: 'whoami', arguments: {} })).user).toBe('alice');
      expect(as.counts.refreshes).toBe(refreshes + 1);
    } finally {
      await client.close();
    }
  });

  it('asks for a retry when a refused request’s body was too large to keep for a replay', async () => {
    const refreshes = as.counts.refreshes;
    for (const [token, grant] of as.accessTokens) if (grant.user === 'alice') as.accessTokens.delete(token);
    const big = 'x'.repeat(100 * 1024);
    const refused = await api(gw, alice, 'POST', '/connections/tools/echo-headers', { big });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('0');
    expect(refused.body.error).toBe('connection_token_renewed');
    expect(as.counts.refreshes).toBe(refreshes + 1);
    const retried = await api(gw, alice, 'POST', '/connections/tools/echo-headers', { big });
    expect(retried.status).toBe(200);
    expect(retried.body.bytes).toBe(JSON.stringify({ big }).length);
  });

  it('streams server-sent events as they happen', async () => {
    const client = await mcpClient(`${gw.url}/connections/tools/`, alice);
    try {
      const started = Date.now();
      const arrivals: number[] = [];
      client.setNotificationHandler(LoggingMessageNotificationSchema, () => void arrivals.push(Date.now() - started));
      const result = await client.callTool({ name: 'countdown', arguments: { n: 3, delayMs: 250 } });
      const finished = Date.now() - started;
      expect(toolText(result)).toBe('liftoff');
      expect(arrivals).toHaveLength(3);
      // The first message crossed the gateway long before the call ended.
      expect(finished - arrivals[0]!).toBeGreaterThan(500);
    } finally {
      await client.close();
    }

    const started = Date.now();
    const response = await fetch(`${gw.url}/connections/tools/events`, { headers: { authorization: alice } });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    const first = await reader.read();
    const firstAt = Date.now() - started;
    expect(new TextDecoder().decode(first.value)).toBe('data: 0\n\n');
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).toBe('data: 1\n\ndata: 2\n\n');
    expect(Date.now() - started - firstAt).toBeGreaterThan(450);
  });

  it('ends the resource’s stream when the client goes away', async () => {
    const abort = new AbortController();
    const response = await fetch(`${gw.url}/connections/tools/events?n=100`, { headers: { authorization: alice }, signal: abort.signal });
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: 0\n\n');
    abort.abort();
    for (let i = 0; i < 100 && resource.abandoned === 0; i++) await sleep(20);
    expect(resource.abandoned).toBe(1);
  });

  it('forwards neither the client’s credentials nor cookies, and lets no cookie back', async () => {
    const response = await fetch(`${gw.url}/connections/tools/echo-headers?x=1`, {
      headers: { authorization: alice, cookie: 'portcullis_session=nope; theme=dark', 'x-custom': 'kept' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('set-cookie')).toBeNull();
    const seen = (await response.json()) as { headers: Record<string, string>; url: string; user: string };
    expect(seen.url).toBe('/mcp/echo-headers?x=1');
    expect(seen.user).toBe('alice');
    expect(seen.headers.authorization).toMatch(/^Bearer /);
    expect(tokenOf('alice')).toContain(seen.headers.authorization!.slice(7));
    expect(seen.headers.cookie).toBeUndefined();
    expect(seen.headers['x-custom']).toBe('kept');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('keeps tokens and client secrets encrypted at rest', () => {
    const db = new DatabaseSync(path.join(gw.dataDir, 'portcullis.db'), { readOnly: true });
    try {
      const dump = JSON.stringify([db.prepare('SELECT * FROM connections').all(), db.prepare('SELECT * FROM connection_tokens').all()]);
      for (const [token] of as.accessTokens) expect(dump).not.toContain(token);
      for (const [token] of as.refreshTokens) expect(dump).not.toContain(token);
      for (const [id, client] of as.clients) {
        expect(dump).not.toContain(client.secret!);
        expect(dump).not.toContain(id);
      }
    } finally {
      db.close();
    }
  });

  it('forgets a user’s authorization on request', async () => {
    expect((await api(gw, bob, 'DELETE', '/api/connections/tools/authorization')).status).toBe(204);
    expect((await api(gw, bob, 'GET', '/api/connections')).body[0].authorized).toBe(false);
    expect((await api(gw, bob, 'GET', '/connections/tools/echo-headers')).status).toBe(401);
    expect((await api(gw, alice, 'GET', '/connections/tools/echo-headers')).status).toBe(200);
  });
});
