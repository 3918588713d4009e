export {
  ANONYMOUS,
  ANONYMOUS_NAME,
  ROLE_ADMIN,
  ROLE_ANONYMOUS,
  ROLE_USER,
  UNSECURED_ANONYMOUS,
  hasAnyRole,
  hasRole,
  makePrincipal,
  sortedRoles,
  type Authentication,
  type AuthMethod,
  type Principal,
} from './principal.ts';
export { Authenticator, readCookie } from './authenticator.ts';
export { USER_NAME, UserDirectory, isUniqueViolation, type UserView, type GroupView, type NewUser, type UserPatch } from './directory.ts';
export { SessionManager, type SessionRecord } from './sessions.ts';
export { FailureLimiter } from './rate-limit.ts';
export { IdentityErrors } from './errors.ts';
export { checkCsrf, isSameOrigin, requireRole, roleGuard } from './http.ts';
export { registerIdentityRoutes, registerPublicIdentityRoutes, sessionCookie, type IdentityRouteDeps } from './routes.ts';
export { ensureFirstAdmin } from './bootstrap.ts';
export { hashPassword, verifyPassword, generatePassword } from './passwords.ts';
export { safeReturnPath } from './return-path.ts';
