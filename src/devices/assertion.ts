import { createPublicKey } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import { PortcullisError } from '../errors.ts';
import { AGENT_ASSERTION_ALG, AGENT_ASSERTION_TYPE, DeviceLimits } from '../protocol/index.ts';
import { DeviceErrors } from './errors.ts';

/** Longest Authorization header an agent sends (an EdDSA JWT is ~400 bytes). */
const MAX_ASSERTION_LENGTH = 4096;
const MAX_JTI_LENGTH = 128;
const DEVICE_ID = /^[A-Za-z0-9-]{1,64}$/;

/**
 * Remembers the `jti` of accepted assertions until they expire, so a captured assertion
 * cannot be replayed within its lifetime (on this node). Bounded: when full of live
 * entries, new connects are refused (503) rather than the cache growing.
 */
export class ReplayCache {
  readonly #seen = new Map<string, number>();
  readonly #max: number;

  constructor(max = 100_000) {
    this.#max = max;
  }

  get size(): number {
    return this.#seen.size;
  }

  /** Records `key` until `expiresAt`; false if it is already there (a replay). */
  remember(key: string, expiresAt: number, now: number): boolean {
    const seenUntil = this.#seen.get(key);
    if (seenUntil !== undefined && seenUntil > now) return false;
    if (this.#seen.size >= this.#max) this.#prune(now);
    if (this.#seen.size >= this.#max) throw DeviceErrors.busy();
    this.#seen.set(key, expiresAt);
    return true;
  }

  #prune(now: number): void {
    for (const [key, until] of this.#seen) if (until <= now) this.#seen.delete(key);
  }
}

/** The unverified issuer of an assertion: which device claims to connect. */
export function assertionIssuer(authorization: string | undefined): { token: string; deviceId: string } {
  if (authorization === undefined || authorization.length > MAX_ASSERTION_LENGTH) throw DeviceErrors.assertionMissing();
  const match = /^Bearer ([A-Za-z0-9._-]+)$/.exec(authorization);
  if (match === null) throw DeviceErrors.assertionMissing();
  const token = match[1]!;
  let header;
  let claims;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch {
    throw DeviceErrors.assertionInvalid('not a JWT');
  }
  // Checked before any key is looked up: only EdDSA, and only our assertion type
  // (RFC 8725 §3.11), so no other JWT (a gateway JWT, an ID token) is taken for one.
  if (header.alg !== AGENT_ASSERTION_ALG) throw DeviceErrors.assertionInvalid(`alg must be ${AGENT_ASSERTION_ALG}`);
  if (header.typ !== AGENT_ASSERTION_TYPE) throw DeviceErrors.assertionInvalid(`typ must be ${AGENT_ASSERTION_TYPE}`);
  if (typeof claims.iss !== 'string' || !DEVICE_ID.test(claims.iss)) throw DeviceErrors.assertionInvalid('iss must be a device id');
  return { token, deviceId: claims.iss };
}

/**
 * Verifies an agent's connect assertion (docs/DEVICE-PROTOCOL.md "Connect") against the
 * device's stored public JWK: signature, `iss = sub` = the device, `aud` = our connect
 * URL, `iat`/`exp` with bounded skew and lifetime, and a `jti` not seen before.
 */
export async function verifyAssertion(options: {
  token: string;
  deviceId: string;
  jwk: string;
  audience: string;
  now: number;
  clockSkewSeconds: number;
  replay: ReplayCache;
}): Promise<void> {
  let key;
  try {
    key = createPublicKey({ key: JSON.parse(options.jwk) as { kty: string }, format: 'jwk' });
  } catch (cause) {
    throw new PortcullisError(500, 'device_key_corrupt', 'The stored device key cannot be read.', { cause });
  }
  const ttl = DeviceLimits.assertionTtlSeconds;
  let payload;
  try {
    ({ payload } = await jwtVerify(options.token, key, {
      algorithms: [AGENT_ASSERTION_ALG],
      typ: AGENT_ASSERTION_TYPE,
      issuer: options.deviceId,
      subject: options.deviceId,
      audience: options.audience,
      requiredClaims: ['iat', 'exp', 'jti'],
      clockTolerance: options.clockSkewSeconds,
      maxTokenAge: ttl + options.clockSkewSeconds,
      currentDate: new Date(options.now),
    }));
  } catch (error) {
    throw describe(error);
  }
  // An agent may not mint itself a long-lived assertion: exp is bounded by the protocol.
  if (payload.exp! - payload.iat! > ttl) throw DeviceErrors.assertionInvalid(`lifetime exceeds ${ttl} s`);
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > MAX_JTI_LENGTH) {
    throw DeviceErrors.assertionInvalid('jti must be a short string');
  }
  const until = (payload.exp! + options.clockSkewSeconds) * 1000;
  if (!options.replay.remember(`${options.deviceId}:${payload.jti}`, until, options.now)) throw DeviceErrors.assertionReplayed();
}

function describe(error: unknown): PortcullisError {
  if (error instanceof joseErrors.JWTExpired) return DeviceErrors.assertionExpired();
  if (error instanceof joseErrors.JWTClaimValidationFailed) return DeviceErrors.assertionInvalid(`the ${error.claim} claim is not acceptable (${error.reason})`);
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return DeviceErrors.assertionInvalid('bad signature');
  if (error instanceof joseErrors.JOSEError) return DeviceErrors.assertionInvalid(error.code);
  return DeviceErrors.assertionInvalid('unreadable');
}
