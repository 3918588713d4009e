// Integration tier: the discovery, registration and authorization variants a gateway meets
// in the wild, each against a real authorization server and MCP server in-process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_URL, dropPgSchema, freshPgSchema, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { AuthServer, type AuthServerOptions } from './fixtures/auth-server.ts';
import { addUser, api, authorize, mcpClient, toolText } from './fixtures/harness.ts';
import { ResourceServer, type ResourceServerOptions } from './fixtures/mcp-server.ts';

let gw: TestGateway;
let alice: string;
const servers: Array<{ close(): Promise<void> }> = [];

async function upstream(asOptions: AuthServerOptions = {}, resourceOptions: ResourceServerOptions = {}) {
  const as = new AuthServer(asOptions);
  if (!resourceOptions.embedAuthServer) await as.listen();
  const resource = new ResourceServer(as, resourceOptions);
  await resource.listen();
  servers.push(resource, as);
  return { as, resource };
}

/** Adds the connection, authorizes alice, and calls a tool through the gateway. */
async function connectAndCall(name: string, as: AuthServer, resource: ResourceServer, extra: Record<string, unknown> = {}) {
  const created = await api(gw, gw.adminAuth, 'POST', '/api/admin/connections', { name, url: resource.url, auth: 'oauth2.1', ...extra });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const flow = await authorize(gw, name, alice, as.origin, 'alice');
  expect(flow.location, flow.body).toBe('/account/connections');
  const client = await mcpClient(`${gw.url}/connections/${name}/`, alice);
  try {
    expect(toolText(await client.callTool({ name: 'whoami', arguments: {} })).user).toBe('alice');
  } finally {
    await client.close();
  }
  return { created: created.body, flow };
}

beforeAll(async () => {
  gw = await startTestGateway();
  alice = await addUser(gw, 'alice');
});
afterAll(async () => {
  await gw?.close();
  for (const server of servers) await server.close();
});

describe('discovery', () => {
  it('finds resource metadata at the path-aware well-known URL when the 401 names none', async () => {
    const { as, resource } = await upstream({}, { resourceMetadata: 'well-known-path' });
    await connectAndCall('wk-path', as, resource);
    expect(resource.requests.filter((p) => p.startsWith('/.well-known/'))).toEqual(['/.well-known/oauth-protected-resource/mcp']);
  });

  it('falls back to the root well-known URL after the path-aware one', async () => {
    const { as, resource } = await upstream({}, { resourceMetadata: 'well-known-root' });
    await connectAndCall('wk-root', as, resource);
    expect(resource.requests.filter((p) => p.startsWith('/.well-known/'))).toEqual([
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource',
    ]);
  });

  const issuerOrder = [
    '/.well-known/oauth-authorization-server/tenant',
    '/.well-known/openid-configuration/tenant',
    '/tenant/.well-known/openid-configuration',
    '/.well-known/oauth-authorization-server',
    '/.well-known/openid-configuration',
  ];
  it.each([
    ['oauth-path', 1],
    ['oidc-path-inserted', 2],
    ['oidc-path-appended', 3],
    ['oauth', 4],
    ['oidc', 5],
  ] as const)('tries an issuer with a path in RFC 8414 / OIDC order until %s answers', async (metadataAt, tries) => {
    const { as, resource } = await upstream({ issuerPath: '/tenant', metadataAt });
    const { created } = await connectAndCall(`issuer-${metadataAt}`, as, resource);
    expect(as.requests.filter((p) => p.includes('/.well-known/'))).toEqual(issuerOrder.slice(0, tries));
    expect(created.metadataUrl).toBe(as.origin + issuerOrder[tries - 1]);
    expect(created.authorizationServer).toBe(`${as.origin}/tenant`);
  });

  it('falls back to the resource’s own origin when it publishes no resource metadata', async () => {
    const { as, resource } = await upstream({ metadataAt: 'oauth' }, { resourceMetadata: 'none', embedAuthServer: true });
    const { created } = await connectAndCall('origin-fallback', as, resource);
    expect(created.metadataUrl).toBe(`${resource.origin}/.well-known/oauth-authorization-server`);
    // Path-aware candidates for the resource URL come before the origin's.
    const wellKnown = resource.requests.filter((p) => p.includes('/.well-known/'));
    expect(wellKnown).toEqual([
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-authorization-server/mcp',
      '/.well-known/openid-configuration/mcp',
      '/mcp/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server',
    ]);
  });
});

describe('registration', () => {
  it('registers at /register on the server’s origin when the metadata names no registration endpoint', async () => {
    const { as, resource } = await upstream({ registration: 'fallback', issuerPath: '/tenant' });
    const { created } = await connectAndCall('register-fallback', as, resource);
    expect(as.requests).toContain('/register');
    expect(as.counts.registrations).toBe(1);
    expect(created.registered).toBe(true);
  });

  it.each([
    [['client_secret_basic', 'private_key_jwt'], 'client_secret_basic'],
    [['private_key_jwt', 'none'], 'none'],
  ])('negotiates the token endpoint auth method from %j', async (authMethods, expected) => {
    const { as, resource } = await upstream({ authMethods });
    const { created } = await connectAndCall(`method-${expected.replaceAll('_', '-')}`, as, resource);
    expect(created.tokenEndpointAuthMethod).toBe(expected);
    expect(as.clients.get(created.clientId)?.authMethod).toBe(expected);
  });

  it('uses an admin-supplied client for oauth2.1-static, without registering', async () => {
    const { as, resource } = await upstream();
    as.addClient('static-client', 'static-secret', [`${gw.url}/api/connections/static/callback`]);
    const { created } = await connectAndCall('static', as, resource, { auth: 'oauth2.1-static', clientId: 'static-client', clientSecret: 'static-secret' });
    expect(created).toMatchObject({ auth: 'oauth2.1-static', clientId: 'static-client', registered: false });
    expect(as.counts.registrations).toBe(0);
    expect(JSON.stringify(created)).not.toContain('static-secret');
  });

  it('registers again when the server forgot the client, and the user authorizes again', async () => {
    const { as, resource } = await upstream();
    const { created } = await connectAndCall('forgetful', as, resource);
    as.forgetClients();
    // The resource refuses the old token, the refresh says invalid_client: authorize again.
    const refused = await api(gw, alice, 'GET', '/connections/forgetful/echo-headers');
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('connection_authorization_required');
    const flow = await authorize(gw, 'forgetful', alice, as.origin, 'alice');
    expect(flow.location).toBe('/account/connections');
    expect(as.counts.registrations).toBe(2);
    const after = await api(gw, gw.adminAuth, 'GET', '/api/admin/connections/forgetful');
    expect(after.body.clientId).not.toBe(created.clientId);
    expect(as.clients.has(after.body.clientId)).toBe(true);
    expect((await api(gw, alice, 'GET', '/connections/forgetful/echo-headers')).status).toBe(200);
  });

  it('registers again when the gateway’s public URL changed since registration', async () => {
    const { as, resource } = await upstream();
    const first = await startTestGateway();
    const dave = await addUser(first, 'dave');
    expect((await api(first, first.adminAuth, 'POST', '/api/admin/connections', { name: 'moved', url: resource.url, auth: 'oauth2.1' })).status).toBe(201);
    await first.close({ keepData: true });
    // Same data, new port: the registered redirect URI no longer points at this gateway.
    const second = await startTestGateway({ dataDir: first.dataDir });
    try {
      const flow = await authorize(second, 'moved', dave, as.origin, 'dave');
      expect(flow.location).toBe('/account/connections');
      expect(as.counts.registrations).toBe(2);
      const view = await api(second, second.adminAuth, 'GET', '/api/admin/connections/moved');
      expect(as.clients.get(view.body.clientId)?.redirectUris).toEqual([`${second.url}/api/connections/moved/callback`]);
    } finally {
      await second.close();
    }
  });
});

describe('PKCE', () => {
  it('omits PKCE when the server’s metadata lists challenge methods without S256', async () => {
    const { as, resource } = await upstream({ codeChallengeMethods: ['plain'] });
    const { created, flow } = await connectAndCall('no-s256', as, resource);
    expect(created.pkce).toBe(false);
    const consent = new URL(flow.visited[1]!);
    expect(consent.pathname).toBe('/authorize');
    expect(consent.searchParams.has('code_challenge')).toBe(false);
    expect(consent.searchParams.has('code_challenge_method')).toBe(false);
  });

  it('keeps PKCE S256 when the metadata lists no methods at all', async () => {
    const { as, resource } = await upstream({ codeChallengeMethods: [] });
    const { created, flow } = await connectAndCall('pkce-default', as, resource);
    expect(created.pkce).toBe(true);
    expect(new URL(flow.visited[1]!).searchParams.get('code_challenge_method')).toBe('S256');
  });
});

describe('on PostgreSQL', () => {
  it('discovers, registers, authorizes and proxies the same way', async () => {
    const schema = freshPgSchema();
    const pgGw = await startTestGateway({ config: { database: `${PG_URL}?schema=${schema}` } });
    try {
      const { as, resource } = await upstream({ accessTokenTtl: 1 });
      const created = await api(pgGw, pgGw.adminAuth, 'POST', '/api/admin/connections', { name: 'pg', url: resource.url, auth: 'oauth2.1' });
      expect(created.status).toBe(201);
      const carol = await addUser(pgGw, 'carol');
      expect((await authorize(pgGw, 'pg', carol, as.origin, 'carol')).location).toBe('/account/connections');
      const client = await mcpClient(`${pgGw.url}/connections/pg/`, carol);
      try {
        expect(toolText(await client.callTool({ name: 'whoami', arguments: {} })).user).toBe('carol');
        await new Promise((r) => setTimeout(r, 600));
        expect(toolText(await client.callTool({ name: 'whoami', arguments: {} })).user).toBe('carol');
        expect(as.counts.refreshes).toBe(1);
      } finally {
        await client.close();
      }
      expect((await api(pgGw, carol, 'GET', '/api/connections')).body).toEqual([{ name: 'pg', url: resource.url, auth: 'oauth2.1', authorized: true }]);
    } finally {
      await pgGw.close();
      await dropPgSchema(schema);
    }
  });
});
