/** Who is making a request: a name and roles, roles always sorted. */
export interface Principal {
  readonly name: string;
  readonly roles: readonly string[];
}

export const ROLE_USER = 'ROLE_USER';
export const ROLE_ADMIN = 'ROLE_ADMIN';
export const ROLE_ANONYMOUS = 'ROLE_ANONYMOUS';
export const ANONYMOUS_NAME = 'anonymousUser';

/** How the principal was established; CSRF checks apply only to `session`. */
export type AuthMethod = 'anonymous' | 'session' | 'basic' | 'bearer';

export interface Authentication {
  readonly principal: Principal;
  readonly method: AuthMethod;
  /** The server-side session behind a cookie, when method is `session`. */
  readonly sessionId?: string;
}

export const ROLE_NAME = /^[A-Za-z0-9_.:-]{1,100}$/;

export function sortedRoles(roles: Iterable<string>): string[] {
  return [...new Set(roles)].sort();
}

export function makePrincipal(name: string, roles: Iterable<string>): Principal {
  return Object.freeze({ name, roles: Object.freeze(sortedRoles(roles)) });
}

export const ANONYMOUS: Principal = makePrincipal(ANONYMOUS_NAME, [ROLE_ANONYMOUS]);
/** Unsecured mode (local development): anonymous callers may do everything. */
export const UNSECURED_ANONYMOUS: Principal = makePrincipal(ANONYMOUS_NAME, [ROLE_ADMIN, ROLE_ANONYMOUS, ROLE_USER]);

export function hasRole(principal: Principal, role: string): boolean {
  return principal.roles.includes(role);
}

export function hasAnyRole(principal: Principal, roles: readonly string[]): boolean {
  return roles.some((role) => principal.roles.includes(role));
}
