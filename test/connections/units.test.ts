// Unit tier: pure functions, and the token vault on a real SQLite store with a fake clock
// and a fake refresher (deterministic time: no sleeping).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  authorizationServerMetadataUrls,
  metadataCandidates,
  negotiateAuthMethod,
  resourceMetadataParam,
  resourceMetadataUrls,
  safeReturnTo,
} from '../../src/connections/index.ts';
import { GrantError, type TokenSet } from '../../src/connections/oauth.ts';
import { ConnectionStore } from '../../src/connections/store.ts';
import { TokenVault } from '../../src/connections/tokens.ts';
import { openStore, type Store } from '../../src/store/index.ts';

describe('discovery URLs', () => {
  it('builds RFC 9728 resource metadata URLs, path-aware first', () => {
    expect(resourceMetadataUrls('https://r.example/mcp/')).toEqual([
      'https://r.example/.well-known/oauth-protected-resource/mcp',
      'https://r.example/.well-known/oauth-protected-resource',
    ]);
    expect(resourceMetadataUrls('https://r.example')).toEqual(['https://r.example/.well-known/oauth-protected-resource']);
  });

  it('builds RFC 8414 and OIDC URLs for an issuer, path-aware variants first', () => {
    expect(authorizationServerMetadataUrls('https://as.example/tenant/a/')).toEqual([
      'https://as.example/.well-known/oauth-authorization-server/tenant/a',
      'https://as.example/.well-known/openid-configuration/tenant/a',
      'https://as.example/tenant/a/.well-known/openid-configuration',
      'https://as.example/.well-known/oauth-authorization-server',
      'https://as.example/.well-known/openid-configuration',
    ]);
    expect(authorizationServerMetadataUrls('https://as.example')).toEqual([
      'https://as.example/.well-known/oauth-authorization-server',
      'https://as.example/.well-known/openid-configuration',
    ]);
  });

  it('tries every authorization server in order, then the resource, without repeats', () => {
    expect(metadataCandidates(['https://a.example/t', 'https://b.example'], 'https://a.example/mcp')).toEqual([
      'https://a.example/.well-known/oauth-authorization-server/t',
      'https://a.example/.well-known/openid-configuration/t',
      'https://a.example/t/.well-known/openid-configuration',
      'https://a.example/.well-known/oauth-authorization-server',
      'https://a.example/.well-known/openid-configuration',
      'https://b.example/.well-known/oauth-authorization-server',
      'https://b.example/.well-known/openid-configuration',
      'https://a.example/.well-known/oauth-authorization-server/mcp',
      'https://a.example/.well-known/openid-configuration/mcp',
      'https://a.example/mcp/.well-known/openid-configuration',
    ]);
  });

  it.each([
    ['Bearer resource_metadata="https://r.example/.well-known/oauth-protected-resource"', 'https://r.example/.well-known/oauth-protected-resource'],
    ['Bearer error="invalid_token", resource_metadata=https://r.example/m, scope="a"', 'https://r.example/m'],
    ['Bearer realm="x",resource_metadata="https://r.example/\\"q"', 'https://r.example/"q'],
    ['Bearer realm="mcp"', undefined],
    ['Bearer not_resource_metadata="https://evil.example/"', undefined],
  ])('reads resource_metadata from %j', (header, expected) => {
    expect(resourceMetadataParam(header)).toBe(expected);
  });
});

describe('token endpoint auth method', () => {
  it.each([
    [['client_secret_basic', 'client_secret_post'], true, 'client_secret_post'],
    [['private_key_jwt', 'client_secret_basic'], true, 'client_secret_basic'],
    [undefined, true, 'client_secret_basic'],
    [[], true, 'client_secret_basic'],
    [['none', 'client_secret_post'], false, 'none'],
    [undefined, false, 'none'],
  ] as const)('from %j (secret: %s) picks %s', (offered, hasSecret, expected) => {
    expect(negotiateAuthMethod(offered as readonly string[] | undefined, hasSecret)).toBe(expected);
  });

  it('refuses when nothing usable is offered', () => {
    expect(() => negotiateAuthMethod(['private_key_jwt'], true)).toThrow(expect.objectContaining({ code: 'unsupported_auth_method' }));
    expect(() => negotiateAuthMethod(['client_secret_post'], false)).toThrow(expect.objectContaining({ code: 'unsupported_auth_method' }));
  });
});

describe('return_to', () => {
  it.each([
    [undefined, '/'],
    ['', '/'],
    ['/account/connections?x=1#y', '/account/connections?x=1#y'],
    ['/a/../b', '/b'],
    ['https://evil.example/', undefined],
    ['//evil.example', undefined],
    ['/.//evil.example', undefined],
    ['/a/..//evil.example', undefined],
    ['/%2e//evil.example', undefined],
    ['/\\evil.example', undefined],
    ['relative', undefined],
    ['/x\ny', undefined],
    ['/' + 'a'.repeat(3000), undefined],
  ])('%j → %j', (input, expected) => {
    expect(safeReturnTo(input)).toBe(expected);
  });
});


describe('token vault', () => {
  let dir: string;
  let store: Store;
  let connections: ConnectionStore;
  let clock = 1_000_000;
  let refreshes = 0;
  let refreshImpl: (refreshToken: string) => Promise<TokenSet>;
  const connection = { name: 'c', revision: 1 };
  const changed: string[] = [];

  const tokens = (access: string, lifetimeMs: number, refresh: string | null = `r-${access}`): TokenSet => ({
    accessToken: access,
    refreshToken: refresh ?? undefined,
    tokenType: 'bearer',
    scope: undefined,
    expiresAt: clock + lifetimeMs,
    obtainedAt: clock,
  });

  const vault = (margin = 300_000) =>
    new TokenVault({
      store: connections,
      logger: pino({ level: 'silent' }),
      now: () => clock,
      refreshMarginMs: margin,
      maxEntries: 100,
      refresh: async (_c, refreshToken) => {
        refreshes++;
        return refreshImpl(refreshToken);
      },
      changed: (name, user) => void changed.push(`${name}/${user}`),
    });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-vault-'));
    store = await openStore({ database: `sqlite:${path.join(dir, 'db')}`, dataDir: dir });
    connections = new ConnectionStore(store.db, store.secrets);
    await store.db.insertInto('users').values({ name: 'u', password_hash: null, roles: '[]', disabled: 0, email: null, picture: null, created_at: 0, updated_at: 0 }).execute();
    await connections.insert({ name: 'c', url: 'https://r.example', auth: 'oauth2.1', scope: null, secret: null, client: null, revision: 1, created_at: 0, updated_at: 0 });
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    refreshes = 0;
    let n = 0;
    refreshImpl = async () => tokens(`fresh-${++n}`, 3_600_000);
  });

  it('serves the cached token until the refresh margin, then refreshes once for concurrent callers', async () => {
    const v = vault();
    await v.put(connection, 'u', tokens('first', 3_600_000));
    expect(await v.accessToken(connection, 'u')).toBe('first');
    clock += 3_600_000 - 300_000 - 1;
    expect(await v.accessToken(connection, 'u')).toBe('first');
    clock += 2;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    refreshImpl = async () => {
      await gate;
      return tokens('second', 3_600_000);
    };
    const waiting = Promise.all(Array.from({ length: 20 }, () => v.accessToken(connection, 'u')));
    release();
    expect(new Set(await waiting)).toEqual(new Set(['second']));
    expect(refreshes).toBe(1);
    expect(await vault().accessToken(connection, 'u')).toBe('second');
  });

  it('refreshes a short-lived token after half its life, not on every request', async () => {
    const v = vault();
    await v.put(connection, 'u', tokens('short', 60_000));
    clock += 29_000;
    expect(await v.accessToken(connection, 'u')).toBe('short');
    expect(refreshes).toBe(0);
    clock += 1_001;
    expect(await v.accessToken(connection, 'u')).toBe('fresh-1');
    expect(refreshes).toBe(1);
  });

  it('keeps a still-valid token through a transient failure, and reports one that expired', async () => {
    const v = vault();
    await v.put(connection, 'u', tokens('t', 600_000));
    refreshImpl = async () => {
      throw new GrantError('transient', 'HTTP 503', undefined);
    };
    clock += 400_000;
    expect(await v.accessToken(connection, 'u')).toBe('t');
    // No retry storm: the next attempt waits for the back-off.
    expect(await v.accessToken(connection, 'u')).toBe('t');
    expect(refreshes).toBe(1);
    clock += 200_001;
    await expect(v.accessToken(connection, 'u')).rejects.toMatchObject({ code: 'token_refresh_failed', status: 502 });
  });

  it('forgets tokens whose grant is gone', async () => {
    const v = vault();
    await v.put(connection, 'u', tokens('t', 60_000));
    refreshImpl = async () => {
      throw new GrantError('invalid_grant', 'HTTP 400 invalid_grant', undefined);
    };
    clock += 50_000;
    expect(await v.accessToken(connection, 'u')).toBeNull();
    expect(await connections.token('c', 'u')).toBeUndefined();
  });

  it('without a refresh token, serves the token until it expires, then nothing', async () => {
    const v = vault();
    await v.put(connection, 'u', tokens('once', 60_000, null));
    clock += 59_000;
    expect(await v.accessToken(connection, 'u')).toBe('once');
    clock += 1_000;
    expect(await v.accessToken(connection, 'u')).toBeNull();
    expect(refreshes).toBe(0);
  });

  it('adopts another node’s refresh instead of discarding the user’s grant (rotated refresh tokens)', async () => {
    const nodeA = vault();
    const nodeB = vault();
    await nodeA.put(connection, 'u', tokens('old', 60_000, 'r-old'));
    clock += 31_000;
    // B reads the row and presents r-old; before the server answers, A refreshes and rotates it.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    refreshImpl = async (refreshToken) => {
      if (refreshes === 1) {
        await gate;
        throw new GrantError('invalid_grant', `${refreshToken} was rotated`, undefined);
      }
      return tokens('from-a', 3_600_000, 'r-a');
    };
    const fromB = nodeB.accessToken(connection, 'u');
    while (refreshes < 1) await new Promise((r) => setImmediate(r));
    expect(await nodeA.accessToken(connection, 'u')).toBe('from-a');
    release();
    expect(await fromB).toBe('from-a');
    expect(refreshes).toBe(2);
    expect((await connections.token('c', 'u'))?.version).toBe(2);
  });

  it('refreshes at once when the resource refused the token, once for all who saw it', async () => {
    const v = vault();
    await v.put(connection, 'u', tokens('refused', 3_600_000));
    expect(await v.accessToken(connection, 'u')).toBe('refused');
    const [a, b] = await Promise.all([v.replaceRejected(connection, 'u', 'refused'), v.replaceRejected(connection, 'u', 'refused')]);
    expect(a).toBe('fresh-1');
    expect(b).toBe('fresh-1');
    expect(refreshes).toBe(1);
    expect(await v.replaceRejected(connection, 'u', 'refused')).toBe('fresh-1');
    expect(refreshes).toBe(1);
  });

  it('drops cached tokens when the connection’s client changes (revision)', async () => {
    const v = vault();
    await v.put(connection, 'u', tokens('rev1', 3_600_000));
    expect(await v.accessToken(connection, 'u')).toBe('rev1');
    await connections.deleteTokens('c');
    expect(await v.accessToken({ name: 'c', revision: 2 }, 'u')).toBeNull();
  });
});
