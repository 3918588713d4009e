import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';

type CryptoKeyLike = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
import Provider, { type ClientMetadata, type Configuration } from 'oidc-provider';

/**
 * A real OpenID Provider (npm `oidc-provider`) in this process, on 127.0.0.1 port 0,
 * with dev interactions (any login name, any password) and accounts whose claims the
 * tests choose. Its signing key can be rotated between logins: the HTTP server then
 * hands requests to a new Provider instance (same issuer; grants and sessions live in
 * oidc-provider's process-wide memory adapter, so they survive).
 */
export interface TestOp {
  issuer: string;
  accounts: Map<string, Record<string, unknown>>;
  /** Registers the relying parties (their redirect URIs are known once the gateway runs). */
  setClients(clients: ClientMetadata[]): Promise<void>;
  /** New signing key; `sameKid` keeps the old key id, so only the signature tells them apart. */
  rotateKey(options?: { sameKid?: boolean }): Promise<void>;
  /** Signs any claims with the provider's current key (crafted back-channel logout tokens). */
  sign(claims: Record<string, unknown>, options?: { typ?: string; withForeignKey?: boolean }): Promise<string>;
  /** Refresh token grants the provider has served. */
  refreshCount(): number;
  /** Revokes every refresh token issued to `clientId` for `accountId`. */
  revokeRefreshTokens(accountId: string): Promise<void>;
  provider(): Provider;
  close(): Promise<void>;
}

interface KeyPair {
  privateJwk: JWK;
  privateKey: CryptoKeyLike;
}

async function newKey(kid: string): Promise<KeyPair> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  return { privateJwk, privateKey };
}

export async function startOp(options: { accessTokenTtl?: number } = {}): Promise<TestOp> {
  const accounts = new Map<string, Record<string, unknown>>();
  let key = await newKey('k1');
  let keyCount = 1;
  let clients: ClientMetadata[] = [];
  let current: Provider | undefined;
  let refreshes = 0;
  const refreshTokens: Array<{ accountId: string; jti: string }> = [];

  const server = http.createServer((req, res) => {
    if (!current) {
      res.statusCode = 503;
      res.end();
      return;
    }
    current.callback()(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const cookieKeys = [randomBytes(16).toString('hex')];

  const build = () => {
    const configuration: Configuration = {
      clients,
      jwks: { keys: [key.privateJwk as never] },
      cookies: { keys: cookieKeys },
      findAccount: async (_ctx, id) => {
        const claims = accounts.get(id);
        if (!claims) return undefined;
        return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
      },
      claims: {
        openid: ['sub'],
        email: ['email', 'email_verified'],
        profile: ['name', 'preferred_username', 'picture', 'realm_access', 'groups', 'roles'],
      },
      features: {
        devInteractions: { enabled: true },
        backchannelLogout: { enabled: true },
        revocation: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          // A bare confirmation page (the default one prints a customisation notice).
          logoutSource: async (ctx, form) => {
            ctx.body = `<!DOCTYPE html><html><body>${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button></body></html>`;
          },
        },
      },
      ttl: {
        AccessToken: options.accessTokenTtl ?? 3600,
        IdToken: 3600,
        RefreshToken: 24 * 3600,
        Grant: 24 * 3600,
        Session: 24 * 3600,
        Interaction: 600,
        AuthorizationCode: 60,
      },
      issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      rotateRefreshToken: () => true,
      // The gateway under test listens on loopback: let the provider's back-channel
      // logout reach it (its SSRF guard refuses special-use addresses otherwise).
      fetch: (url: string | URL, init: RequestInit & { dispatcher?: unknown }) => {
        const { dispatcher: _ignored, ...rest } = init;
        return globalThis.fetch(url, rest);
      },
    } as Configuration;
    // The dev-only adapter and interactions are the point here: keep their notices out of test output.
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (!String(args[0]).includes('development-only')) warn(...args);
    };
    let provider: Provider;
    try {
      provider = new Provider(issuer, configuration);
    } finally {
      console.warn = warn;
    }
    provider.on('grant.success', (ctx) => {
      if ((ctx.oidc.params?.grant_type as string | undefined) === 'refresh_token') refreshes++;
    });
    provider.on('refresh_token.saved', (token) => {
      refreshTokens.push({ accountId: String(token.accountId), jti: String(token.jti) });
    });
    current = provider;
  };

  return {
    issuer,
    accounts,
    async setClients(list) {
      clients = list;
      build();
    },
    async rotateKey(rotate = {}) {
      keyCount++;
      key = await newKey(rotate.sameKid ? String(key.privateJwk.kid) : `k${keyCount}`);
      build();
    },
    async sign(claims, signOptions = {}) {
      const signingKey = signOptions.withForeignKey ? (await newKey(String(key.privateJwk.kid))).privateKey : key.privateKey;
      return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: String(key.privateJwk.kid), typ: signOptions.typ ?? 'logout+jwt' }).sign(signingKey);
    },
    refreshCount: () => refreshes,
    async revokeRefreshTokens(accountId) {
      for (const entry of refreshTokens.filter((t) => t.accountId === accountId)) {
        const token = await current!.RefreshToken.find(entry.jti);
        if (token) await token.destroy();
      }
    },
    provider: () => current!,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
