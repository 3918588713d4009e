import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderKeys } from '../../src/sso/jwks.ts';
import { startServer } from './helpers/setup.ts';

/** Unit tier with a real HTTP JWKS endpoint: what the key cache does when signatures fail. */
describe('provider signing keys', () => {
  let published: object[] = [];
  let fetches = 0;
  let server: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    server = await startServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }));
    });
  });
  afterAll(() => server.close());

  async function key(kid: string) {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    published = [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }];
    return (claims: Record<string, unknown> = {}) =>
      new SignJWT({ sub: 'x', ...claims }).setProtectedHeader({ alg: 'RS256', kid }).setIssuer('iss').setAudience('aud').setIssuedAt().sign(privateKey);
  }

  it('refetches once on a failed signature, then refuses (with a cooldown against floods)', async () => {
    let now = 1_000_000;
    const keys = new ProviderKeys({ uri: `${server.url}/jwks`, timeoutMs: 2000, now: () => now });
    const signA = await key('k');
    await expect(keys.verify(await signA(), { issuer: 'iss', audience: 'aud', algorithms: ['RS256'] })).resolves.toMatchObject({ sub: 'x' });
    expect(fetches).toBe(1);

    // Rotation under the same kid: one refetch makes it pass.
    const signB = await key('k');
    await expect(keys.verify(await signB(), { issuer: 'iss', audience: 'aud', algorithms: ['RS256'] })).resolves.toMatchObject({ sub: 'x' });
    expect(fetches).toBe(2);

    // A forged token (a key the provider never published) fails after at most one refetch…
    const forge = await (async () => {
      const { privateKey } = await generateKeyPair('RS256');
      return new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256', kid: 'k' }).setIssuer('iss').setAudience('aud').setIssuedAt().sign(privateKey);
    })();
    now += 60_000;
    await expect(keys.verify(forge, { issuer: 'iss', audience: 'aud', algorithms: ['RS256'] })).rejects.toMatchObject({ code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    expect(fetches).toBe(3);
    // …and a flood of them inside the cooldown fetches nothing more.
    for (let i = 0; i < 5; i++) {
      await expect(keys.verify(forge, { issuer: 'iss', audience: 'aud', algorithms: ['RS256'] })).rejects.toMatchObject({ code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    }
    expect(fetches).toBe(3);
  });

  it('refuses alg none and algorithms outside the list', async () => {
    const keys = new ProviderKeys({ uri: `${server.url}/jwks`, timeoutMs: 2000 });
    const sign = await key('k2');
    const unsigned = (await sign()).split('.').slice(0, 2).join('.') + '.';
    const none = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url') + '.' + unsigned.split('.')[1] + '.';
    await expect(keys.verify(none, { algorithms: ['RS256'] })).rejects.toMatchObject({ code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
    await expect(keys.verify(await sign(), { algorithms: ['ES256'] })).rejects.toMatchObject({ code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
  });
});
