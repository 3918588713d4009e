import { PortcullisError } from '../errors.ts';

/** Catalogue of identity failures: stable codes clients and tests can rely on. */
export const IdentityErrors = {
  authenticationRequired: () => new PortcullisError(401, 'authentication_required', 'Sign in to continue.'),
  badCredentials: () => new PortcullisError(401, 'invalid_credentials', 'The user name or password is wrong.'),
  malformedAuthorization: (why: string) => new PortcullisError(401, 'invalid_authorization', `The Authorization header is malformed: ${why}.`),
  invalidToken: (why: string, cause?: unknown) => new PortcullisError(401, 'invalid_token', `The bearer token is not valid: ${why}.`, { cause }),
  sessionInvalid: () => new PortcullisError(401, 'session_invalid', 'Your session has ended; sign in again.'),
  forbidden: (role: string) => new PortcullisError(403, 'forbidden', `This needs ${role}.`),
  csrf: () => new PortcullisError(403, 'csrf_rejected', 'Cross-site request refused: the Origin does not match this gateway.'),
  rateLimited: (retryAfterSeconds: number) =>
    new PortcullisError(429, 'rate_limited', `Too many failed sign-ins; try again in ${retryAfterSeconds} s.`, { details: { retryAfter: retryAfterSeconds } }),
  userExists: (name: string) => new PortcullisError(409, 'user_exists', `A user named "${name}" already exists.`),
  userNotFound: (name: string) => new PortcullisError(404, 'user_not_found', `No user named "${name}".`),
  groupExists: (name: string) => new PortcullisError(409, 'group_exists', `A group named "${name}" already exists.`),
  groupNotFound: (name: string) => new PortcullisError(404, 'group_not_found', `No group named "${name}".`),
  sessionNotFound: () => new PortcullisError(404, 'session_not_found', 'No such session.'),
  invalidName: (kind: 'user' | 'group', name: string) =>
    new PortcullisError(400, `invalid_${kind}_name`, `"${name.slice(0, 60)}" is not a valid ${kind} name (letters, digits and _ . @ + -, at most 200).`),
  emailTaken: () => new PortcullisError(409, 'email_taken', 'Another user has this email address.'),
  invalidRole: (role: string) => new PortcullisError(400, 'invalid_role', `"${role}" is not a valid role name.`),
};
