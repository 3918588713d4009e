import type { SecretBox } from '../store/index.ts';

/**
 * What a started login must remember until its callback: state, nonce and PKCE
 * verifier, and where to return. Kept in a short-lived cookie sealed with the gateway's
 * secret box (AES-256-GCM, bound to the provider), so a login started on one node can
 * finish on another and an unauthenticated endpoint never writes to the store.
 */
export interface PendingLogin {
  state: string;
  nonce: string | undefined;
  codeVerifier: string;
  returnTo: string;
  /** Epoch ms after which the login is refused. */
  expiresAt: number;
}

const context = (provider: string) => `sso-login:${provider}`;

export function sealLogin(secrets: SecretBox, provider: string, login: PendingLogin): string {
  return secrets.seal(JSON.stringify(login), context(provider));
}

/** The pending login in a cookie value, or undefined if it is missing, forged, for another provider, or expired. */
export function openLogin(secrets: SecretBox, provider: string, value: string | undefined, now: number): PendingLogin | undefined {
  if (!value || value.length > 4096) return undefined;
  try {
    const login = JSON.parse(secrets.open(value, context(provider))) as PendingLogin;
    if (typeof login.state !== 'string' || typeof login.codeVerifier !== 'string' || typeof login.expiresAt !== 'number') return undefined;
    return login.expiresAt > now ? login : undefined;
  } catch {
    return undefined;
  }
}

export interface LoginCookie {
  name: string;
  path: string;
  secure: boolean;
}

export function loginCookie(c: LoginCookie, value: string, maxAgeSeconds: number): string {
  return `${c.name}=${value}; Path=${c.path}; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${c.secure ? '; Secure' : ''}`;
}

export function clearedLoginCookie(c: LoginCookie): string {
  return `${c.name}=; Path=${c.path}; HttpOnly; SameSite=Lax; Max-Age=0${c.secure ? '; Secure' : ''}`;
}
