import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';

/**
 * Verifies a gateway JWT the way a third-party app would: the JWKS and node:crypto only,
 * deliberately not the library that signed it.
 */
export async function verifyWithJwks(jwt: string, jwksUrl: string): Promise<{ header: Record<string, unknown>; claims: Record<string, unknown> }> {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new Error('not a compact JWS');
  const [h, p, s] = parts as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { alg: string; kid: string };
  const response = await fetch(jwksUrl);
  const { keys } = (await response.json()) as { keys: Array<JsonWebKey & { kid: string }> };
  const jwk = keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`kid ${header.kid} not in JWKS`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(s, 'base64url');
  const ok = (() => {
    switch (header.alg) {
      case 'RS512':
        return verify('sha512', data, key, signature);
      case 'RS256':
        return verify('sha256', data, key, signature);
      case 'ES256':
        return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      case 'EdDSA':
        return verify(null, data, key, signature);
      default:
        throw new Error(`unexpected alg ${header.alg}`);
    }
  })();
  if (!ok) throw new Error('signature does not verify');
  return { header, claims: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown> };
}
