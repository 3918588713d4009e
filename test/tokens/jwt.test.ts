import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { basic, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { verifyWithJwks } from '../helpers/jwt-check.ts';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

describe('gateway JWTs', () => {
  it.each(['RS512', 'RS256', 'ES256', 'EdDSA'] as const)('signs with %s, verifiable with the JWKS and node:crypto alone', async (algorithm) => {
    gw = await startTestGateway({ config: { jwt: { algorithm, ttl: 120, audience: 'apps' } } });
    const jwt = await gw.gateway.jwt.issue({ name: 'alice', roles: ['ROLE_USER', 'ROLE_Z'] });
    const { header, claims } = await verifyWithJwks(jwt, `${gw.url}/.well-known/jwks.json`);
    expect(header).toMatchObject({ alg: algorithm, kid: expect.any(String) });
    expect(claims).toMatchObject({ sub: 'alice', authorities: ['ROLE_USER', 'ROLE_Z'], iss: gw.url, aud: 'apps' });
    expect((claims.exp as number) - (claims.iat as number)).toBe(120);
    expect(claims.jti).toEqual(expect.any(String));
    // And the gateway itself accepts it as a Bearer credential.
    const response = await fetch(`${gw.url}/api/me`, { headers: { authorization: `Bearer ${jwt}` } });
    expect(await response.json()).toEqual({ name: 'alice', roles: ['ROLE_USER', 'ROLE_Z'] });
  });

  it('reuses a principal’s JWT while most of its life remains, then signs a new one', async () => {
    let now = Date.now();
    gw = await startTestGateway({ now: () => now });
    const a = await gw.gateway.jwt.issue({ name: 'x', roles: ['ROLE_USER'] });
    expect(await gw.gateway.jwt.issue({ name: 'x', roles: ['ROLE_USER'] })).toBe(a);
    expect(await gw.gateway.jwt.issue({ name: 'x', roles: ['ROLE_ADMIN', 'ROLE_USER'] })).not.toBe(a);
    now += 151_000;
    expect(await gw.gateway.jwt.issue({ name: 'x', roles: ['ROLE_USER'] })).not.toBe(a);
  });

  it('rotates: the new key signs, the old one stays published until its JWTs expire', async () => {
    let now = Date.now();
    gw = await startTestGateway({ now: () => now });
    const old = await gw.gateway.jwt.issue({ name: 'x', roles: ['ROLE_USER'] });
    const oldKid = JSON.parse(Buffer.from(old.split('.')[0]!, 'base64url').toString()).kid;
    await gw.gateway.keys.rotate();
    gw.gateway.jwt.reset();
    const fresh = await gw.gateway.jwt.issue({ name: 'x', roles: ['ROLE_USER'] });
    const newKid = JSON.parse(Buffer.from(fresh.split('.')[0]!, 'base64url').toString()).kid;
    expect(newKid).not.toBe(oldKid);
    const kids = (await (await fetch(`${gw.url}/.well-known/jwks.json`)).json()).keys.map((k: { kid: string }) => k.kid);
    expect(kids.sort()).toEqual([oldKid, newKid].sort());
    expect((await fetch(`${gw.url}/api/me`, { headers: { authorization: `Bearer ${old}` } })).status).toBe(200);
    now += 10 * 60_000;
    const later = (await (await fetch(`${gw.url}/.well-known/jwks.json`)).json()).keys.map((k: { kid: string }) => k.kid);
    expect(later).toEqual([newKid]);
  });

  it('uses a key pair given in configuration as PEM files', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-keys-'));
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(path.join(dir, 'private.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(path.join(dir, 'public.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    gw = await startTestGateway({ config: { jwt: { privateKey: path.join(dir, 'private.pem'), publicKey: path.join(dir, 'public.pem') } } });
    const jwks = await (await fetch(`${gw.url}/.well-known/jwks.json`)).json();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0].n).toBe(publicKey.export({ format: 'jwk' }).n);
    await expect(gw.gateway.keys.rotate()).rejects.toMatchObject({ code: 'keys_from_config' });
    const response = await fetch(`${gw.url}/api/me`, { headers: { authorization: basic('admin', 'admin-password-for-tests') } });
    expect(response.status).toBe(200);
  });
});
