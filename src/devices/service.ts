import { createHash, createPublicKey, randomBytes, randomUUID } from 'node:crypto';
import type { Bus } from '../cluster/index.ts';
import { ROLE_ADMIN, isUniqueViolation, sortedRoles } from '../identity/index.ts';
import { ssh2, type EnrollRequest, type EnrollResponse } from '../protocol/index.ts';
import { DeviceErrors } from './errors.ts';
import type { DeviceRow, DeviceStore } from './store.ts';

/** What `GET /api/devices` shows a user about a device they may open. */
export interface DeviceView {
  id: string;
  name: string;
  online: boolean;
  lastSeenAt: string | null;
  hostname: string | null;
  agentVersion: string | null;
  allowedRoles: string[];
}

/** What admins see (`GET /api/admin/devices`). */
export interface AdminDeviceView extends DeviceView {
  disabled: boolean;
  enrolled: boolean;
  createdAt: string;
  enrolledAt: string | null;
  /** OpenSSH-style fingerprint of the pinned host key (`SHA256:…`). */
  hostKeyFingerprint: string | null;
  /** The latest enrollment token's state (the token itself is shown only once). */
  enrollment: { expiresAt: string; used: boolean } | null;
  /** Terminals open on this device through this gateway node. */
  sessions: number;
}

export interface EnrollmentView {
  token: string;
  expiresAt: string;
  /** The command to run on the device. */
  command: string;
}

/** Live state the service reports and notifies; the CLI runs without one. */
export interface DevicePresence {
  isOnline(id: string): boolean;
  sessionCount(id: string): number;
  /** A device's record changed (or is gone): disconnect, end or re-check what depends on it. */
  apply(id: string, row: DeviceRow | undefined): void;
}

/** Bus channel on which device changes reach every gateway node (payload `{id}`). */
export const DEVICES_CHANGED = 'devices-changed';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const ROLE = /^[A-Za-z0-9_.:-]{1,100}$/;

export interface DeviceServiceOptions {
  store: DeviceStore;
  bus: Bus;
  publicUrl: () => string;
  now: () => number;
  enrollmentTtlMs: number;
  /** The gateway's SSH client key (public line), handed to agents at enrollment. */
  gatewayPublicKey?: () => string;
  presence?: DevicePresence;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function parseRoles(text: string): string[] {
  try {
    const roles: unknown = JSON.parse(text);
    return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [];
  } catch {
    return [];
  }
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** `SHA256:…` as `ssh-keygen -l` prints it. */
export function hostKeyFingerprint(line: string): string | null {
  const parsed = ssh2.utils.parseKey(line);
  if (parsed instanceof Error) return null;
  return `SHA256:${createHash('sha256').update(parsed.getPublicSSH()).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Device administration and enrollment: the policy over the devices table. Used by the
 * HTTP routes and by the CLI (which has no live presence and reaches running nodes
 * only through the bus).
 */
export class DeviceService {
  readonly #o: DeviceServiceOptions;

  constructor(options: DeviceServiceOptions) {
    this.#o = options;
  }

  userView(row: DeviceRow): DeviceView {
    const online = this.#o.presence?.isOnline(row.id) ?? false;
    return {
      id: row.id,
      name: row.name,
      online,
      lastSeenAt: online ? iso(this.#o.now()) : iso(row.last_seen_at),
      hostname: row.hostname,
      agentVersion: row.agent_version,
      allowedRoles: parseRoles(row.allowed_roles),
    };
  }

  adminView(row: DeviceRow): AdminDeviceView {
    return {
      ...this.userView(row),
      disabled: row.disabled === 1,
      enrolled: row.identity_key !== null,
      createdAt: iso(row.created_at)!,
      enrolledAt: iso(row.enrolled_at),
      hostKeyFingerprint: row.host_key === null ? null : hostKeyFingerprint(row.host_key),
      enrollment: row.enrollment_expires_at === null ? null : { expiresAt: iso(row.enrollment_expires_at)!, used: row.enrollment_used === 1 },
      sessions: this.#o.presence?.sessionCount(row.id) ?? 0,
    };
  }

  list(): Promise<DeviceRow[]> {
    return this.#o.store.list();
  }

  async get(id: string): Promise<DeviceRow> {
    const row = await this.#o.store.get(id);
    if (row === undefined) throw DeviceErrors.notFound(id);
    return row;
  }

  async getByName(name: string): Promise<DeviceRow> {
    const row = await this.#o.store.byName(name);
    if (row === undefined) throw DeviceErrors.notFound(name);
    return row;
  }

  /** Creates a device and its first enrollment token. */
  async create(input: { name: string; allowedRoles?: readonly string[] | undefined }): Promise<{ row: DeviceRow; enrollment: EnrollmentView }> {
    const name = checkName(input.name);
    const roles = checkRoles(input.allowedRoles);
    const now = this.#o.now();
    const { token, hash, expiresAt } = this.#newToken(now);
    const row: DeviceRow = {
      id: randomUUID(),
      name,
      allowed_roles: JSON.stringify(roles),
      disabled: 0,
      identity_key: null,
      host_key: null,
      enrollment_token_hash: hash,
      enrollment_expires_at: expiresAt,
      enrollment_used: 0,
      enrolled_at: null,
      last_seen_at: null,
      agent_version: null,
      hostname: null,
      created_at: now,
      updated_at: now,
    };
    try {
      await this.#o.store.insert(row);
    } catch (error) {
      if (isUniqueViolation(error)) throw DeviceErrors.nameTaken(name);
      throw error;
    }
    return { row, enrollment: this.#enrollmentView(token, expiresAt) };
  }

  async update(id: string, patch: { name?: string; allowedRoles?: readonly string[]; disabled?: boolean }): Promise<DeviceRow> {
    const values: Partial<DeviceRow> = { updated_at: this.#o.now() };
    if (patch.name !== undefined) values.name = checkName(patch.name);
    if (patch.allowedRoles !== undefined) values.allowed_roles = JSON.stringify(checkRoles(patch.allowedRoles));
    if (patch.disabled !== undefined) values.disabled = patch.disabled ? 1 : 0;
    let updated: boolean;
    try {
      updated = await this.#o.store.update(id, values);
    } catch (error) {
      if (isUniqueViolation(error)) throw DeviceErrors.nameTaken(values.name ?? '');
      throw error;
    }
    if (!updated) throw DeviceErrors.notFound(id);
    const row = await this.get(id);
    await this.#changed(id, row);
    return row;
  }

  async remove(id: string): Promise<void> {
    if (!(await this.#o.store.remove(id))) throw DeviceErrors.notFound(id);
    await this.#changed(id, undefined);
  }

  /** Replaces the device's enrollment token (the previous one stops working). */
  async newEnrollment(id: string): Promise<{ row: DeviceRow; enrollment: EnrollmentView }> {
    const now = this.#o.now();
    const { token, hash, expiresAt } = this.#newToken(now);
    const updated = await this.#o.store.update(id, {
      enrollment_token_hash: hash,
      enrollment_expires_at: expiresAt,
      enrollment_used: 0,
      updated_at: now,
    });
    if (!updated) throw DeviceErrors.notFound(id);
    return { row: await this.get(id), enrollment: this.#enrollmentView(token, expiresAt) };
  }

  /**
   * `POST /api/agent/enroll`: spends the token and pins the device's keys. Enrolling an
   * already enrolled device again (a reinstalled machine) replaces its keys, and the
   * old keys stop working at once.
   */
  async enroll(body: EnrollRequest): Promise<EnrollResponse> {
    const identityKey = checkIdentityKey(body.identityKey);
    const hostKey = checkHostKey(body.hostKey);
    const hostname = cleanText(body.hostname, 255, 'hostname');
    const version = cleanText(body.version, 100, 'version');
    const gatewayKey = this.#o.gatewayPublicKey?.();
    if (gatewayKey === undefined) throw new TypeError('enrollment needs the gateway key');
    const now = this.#o.now();
    const hash = hashToken(body.token);
    const row = await this.#o.store.enroll(hash, now, {
      identity_key: identityKey,
      host_key: hostKey,
      hostname,
      agent_version: version,
      enrolled_at: now,
      updated_at: now,
    });
    if (row === undefined) {
      const found = await this.#o.store.byTokenHash(hash);
      if (found === undefined) throw DeviceErrors.enrollmentInvalid();
      if (found.disabled === 1) throw DeviceErrors.disabled(found.name);
      if (found.enrollment_used === 1) throw DeviceErrors.enrollmentUsed();
      if ((found.enrollment_expires_at ?? 0) <= now) throw DeviceErrors.enrollmentExpired();
      throw DeviceErrors.enrollmentUsed();
    }
    await this.#changed(row.id, row);
    return { deviceId: row.id, name: row.name, gatewayKey };
  }

  async #changed(id: string, row: DeviceRow | undefined): Promise<void> {
    this.#o.presence?.apply(id, row);
    await this.#o.bus.publish({ type: 'custom', channel: DEVICES_CHANGED, payload: { id } });
  }

  #newToken(now: number): { token: string; hash: string; expiresAt: number } {
    const token = randomBytes(32).toString('base64url');
    return { token, hash: hashToken(token), expiresAt: now + this.#o.enrollmentTtlMs };
  }

  #enrollmentView(token: string, expiresAt: number): EnrollmentView {
    return {
      token,
      expiresAt: iso(expiresAt)!,
      command: `npx portcullis agent --server ${this.#o.publicUrl()} --enroll ${token}`,
    };
  }
}

function checkName(name: string): string {
  const trimmed = name.trim();
  if (!NAME.test(trimmed)) throw DeviceErrors.invalidName(name);
  return trimmed;
}

/** Allowed roles, sorted; none given (or an empty list) means ROLE_ADMIN only. */
function checkRoles(roles: readonly string[] | undefined): string[] {
  const list = (roles ?? []).map((r) => r.trim()).filter((r) => r !== '');
  for (const role of list) if (!ROLE.test(role)) throw DeviceErrors.invalidRole(role);
  return list.length === 0 ? [ROLE_ADMIN] : sortedRoles(list);
}

function checkIdentityKey(key: EnrollRequest['identityKey']): string {
  if (typeof key !== 'object' || key === null || key.kty !== 'OKP' || key.crv !== 'Ed25519' || typeof key.x !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(key.x)) {
    throw DeviceErrors.enrollmentBody('identityKey must be an Ed25519 public JWK');
  }
  const jwk = { kty: 'OKP', crv: 'Ed25519', x: key.x };
  try {
    createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw DeviceErrors.enrollmentBody('identityKey is not a usable Ed25519 key');
  }
  return JSON.stringify(jwk);
}

function checkHostKey(line: string): string {
  const parsed = typeof line === 'string' && line.length <= 8192 ? ssh2.utils.parseKey(line) : new Error('too long');
  if (parsed instanceof Error || parsed.isPrivateKey() || parsed.type !== 'ssh-ed25519') {
    throw DeviceErrors.enrollmentBody('hostKey must be an ssh-ed25519 public key line');
  }
  // Stored without the comment: the key is what is pinned.
  return `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`;
}

/** Descriptive text from the agent (host name, version): kept printable and bounded, not refused. */
function cleanText(value: unknown, max: number, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw DeviceErrors.enrollmentBody(`${what} is missing`);
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, max);
}
