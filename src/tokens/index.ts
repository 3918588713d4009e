export { KeyRing, keyRingFor, type JwtAlgorithm, type SigningKey } from './keyring.ts';
export { JwtIssuer, type TokenSubject, type VerifiedToken } from './issuer.ts';
