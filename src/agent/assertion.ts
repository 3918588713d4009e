import { randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { AGENT_ASSERTION_ALG, AGENT_ASSERTION_TYPE, DeviceLimits } from '../protocol/index.ts';

/**
 * The proof of possession sent with every connect: a short-lived JWT signed by the
 * device's identity key, bound to the connect URL (`aud`) and unique (`jti`) so the
 * gateway can refuse a replay. The gateway keeps only the public key.
 */
export async function signConnectAssertion(options: { deviceId: string; audience: string; key: KeyObject; now?: () => number }): Promise<string> {
  const iat = Math.floor((options.now ?? Date.now)() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: AGENT_ASSERTION_ALG, typ: AGENT_ASSERTION_TYPE })
    .setIssuer(options.deviceId)
    .setSubject(options.deviceId)
    .setAudience(options.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + DeviceLimits.assertionTtlSeconds)
    .setJti(randomUUID())
    .sign(options.key);
}
