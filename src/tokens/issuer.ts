import { randomUUID } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify, type JWTHeaderParameters } from 'jose';
import { PortcullisError } from '../errors.ts';
import type { KeyRing } from './keyring.ts';

export interface TokenSubject {
  readonly name: string;
  readonly roles: readonly string[];
}

export interface VerifiedToken {
  readonly name: string;
  readonly roles: readonly string[];
  readonly expiresAt: number;
}

interface CachedJwt {
  readonly jwt: string;
  /** Reuse until this instant (half the lifetime), then sign afresh. */
  readonly refreshAt: number;
  readonly expiresAt: number;
}

const MAX_CACHE = 10_000;

/**
 * Signs and verifies the gateway's own JWTs. Signing RSA costs ~1 ms, so a principal's
 * JWT is reused while more than half its life remains; verified tokens are remembered
 * until they expire, so an app calling back with the same JWT costs one signature check.
 */
export class JwtIssuer {
  readonly #keys: KeyRing;
  readonly #issuer: () => string;
  readonly #audience: string;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #signed = new Map<string, CachedJwt>();
  readonly #verified = new Map<string, VerifiedToken>();

  constructor(options: { keys: KeyRing; /** The public URL, known only once the server is bound. */ issuer: () => string; audience: string; ttlMs: number; now?: () => number }) {
    this.#keys = options.keys;
    this.#issuer = options.issuer;
    this.#audience = options.audience;
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? Date.now;
  }

  /** Forget cached JWTs (after a key rotation, so new JWTs carry the new kid). */
  reset(): void {
    this.#signed.clear();
  }

  async issue(subject: TokenSubject): Promise<string> {
    const cacheKey = subject.name + '\0' + subject.roles.join('\0');
    const now = this.#now();
    const hit = this.#signed.get(cacheKey);
    if (hit && hit.refreshAt > now) return hit.jwt;
    const key = this.#keys.current;
    const iat = Math.floor(now / 1000);
    const exp = iat + Math.floor(this.#ttlMs / 1000);
    const jwt = await new SignJWT({ authorities: [...subject.roles] })
      .setProtectedHeader({ alg: key.algorithm, kid: key.kid, typ: 'JWT' })
      .setSubject(subject.name)
      .setIssuer(this.#issuer())
      .setAudience(this.#audience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(key.privateKey);
    if (this.#signed.size >= MAX_CACHE) this.#signed.delete(this.#signed.keys().next().value!);
    this.#signed.set(cacheKey, { jwt, refreshAt: now + this.#ttlMs / 2, expiresAt: exp * 1000 });
    return jwt;
  }

  async verify(token: string): Promise<VerifiedToken> {
    const now = this.#now();
    const hit = this.#verified.get(token);
    if (hit) {
      if (hit.expiresAt > now) return hit;
      this.#verified.delete(token);
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(
        token,
        (header: JWTHeaderParameters) => {
          const key = header.kid ? this.#keys.findKey(header.kid) : undefined;
          if (!key) throw new PortcullisError(401, 'invalid_token', 'The bearer token is not valid: unknown signing key.');
          if (key.algorithm !== header.alg) throw new PortcullisError(401, 'invalid_token', 'The bearer token is not valid: algorithm mismatch.');
          return key.publicKey;
        },
        {
          issuer: this.#issuer(),
          audience: this.#audience,
          algorithms: ['RS512', 'RS256', 'ES256', 'EdDSA'],
          currentDate: new Date(now),
          requiredClaims: ['sub', 'exp', 'iat'],
        },
      ));
    } catch (error) {
      if (error instanceof PortcullisError) throw error;
      throw new PortcullisError(401, 'invalid_token', `The bearer token is not valid: ${describeJoseError(error)}.`, { cause: error });
    }
    const roles = payload.authorities;
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) {
      throw new PortcullisError(401, 'invalid_token', 'The bearer token is not valid: authorities claim missing.');
    }
    const verified: VerifiedToken = { name: payload.sub!, roles: [...roles].sort(), expiresAt: payload.exp! * 1000 };
    if (this.#verified.size >= MAX_CACHE) this.#verified.delete(this.#verified.keys().next().value!);
    this.#verified.set(token, verified);
    return verified;
  }
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `claim "${error.claim}" rejected`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) return 'malformed';
  return 'rejected';
}
