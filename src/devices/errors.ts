import { PortcullisError } from '../errors.ts';

/** Keeps a peer's words short, single-line and free of control characters. */
export function clip(text: string, max = 200): string {
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

/**
 * Catalogue of device failures a client can cause. The enrollment and connect codes are
 * part of the device protocol (the agent prints `message` and, for connects, retries
 * after a full back-off window): see docs/DEVICE-PROTOCOL.md.
 */
export const DeviceErrors = {
  notFound: (id: string) => new PortcullisError(404, 'device_not_found', `No device "${clip(id, 64)}".`),
  nameTaken: (name: string) => new PortcullisError(409, 'device_exists', `A device named "${name}" already exists.`),
  invalidName: (name: string) =>
    new PortcullisError(400, 'invalid_device_name', `"${clip(name, 60)}" is not a valid device name (letters, digits, . _ -, at most 100, starting with a letter or digit).`),
  invalidRole: (role: string) => new PortcullisError(400, 'invalid_role', `"${clip(role, 60)}" is not a valid role name (letters, digits, _ . : -).`),

  // Enrollment (POST /api/agent/enroll).
  enrollmentInvalid: () => new PortcullisError(401, 'enrollment_token_invalid', 'Unknown enrollment token: ask the administrator for a new one.'),
  enrollmentExpired: () => new PortcullisError(401, 'enrollment_token_expired', 'This enrollment token has expired: ask the administrator for a new one.'),
  enrollmentUsed: () => new PortcullisError(401, 'enrollment_token_used', 'This enrollment token was already used: ask the administrator for a new one.'),
  enrollmentBody: (why: string) => new PortcullisError(400, 'invalid_enrollment', `Invalid enrollment request: ${why}.`),
  disabled: (name: string) => new PortcullisError(403, 'device_disabled', `The device "${name}" is disabled by an administrator.`),

  // Agent connect (GET /api/agent/connect upgrade).
  assertionMissing: () => new PortcullisError(401, 'device_assertion_missing', 'The connect request carries no agent assertion (Authorization: Bearer …).'),
  assertionInvalid: (why: string) => new PortcullisError(401, 'device_assertion_invalid', `The agent assertion is not valid: ${why}.`),
  assertionExpired: () => new PortcullisError(401, 'device_assertion_expired', 'The agent assertion has expired (check the device clock).'),
  assertionReplayed: () => new PortcullisError(401, 'device_assertion_replayed', 'The agent assertion was already used.'),
  unknownDevice: () => new PortcullisError(401, 'device_unknown', 'This device is not enrolled at this gateway (it may have been deleted): enroll it again.'),
  busy: () => new PortcullisError(503, 'device_connect_busy', 'Too many agent connects at once; retry later.'),
  shuttingDown: () => new PortcullisError(503, 'shutting_down', 'The gateway is shutting down.'),
};
