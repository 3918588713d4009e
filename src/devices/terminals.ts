import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { PortcullisError } from '../errors.ts';
import { IdentityErrors, hasAnyRole, type Authentication, type Principal } from '../identity/index.ts';
import type { AgentHub, AgentLink } from './agents.ts';
import { DeviceErrors } from './errors.ts';
import { parseRoles } from './service.ts';
import type { DeviceRow, DeviceStore } from './store.ts';
import { TerminalCloseCode, TerminalSession, type TerminalLimits } from './terminal.ts';

export interface TerminalHubOptions {
  agents: AgentHub;
  store: DeviceStore;
  logger: Logger;
  /** The gateway's SSH client key (OpenSSH private key). */
  clientKey: string;
  /** A link to a device whose agent is connected to another node (clusters only). */
  remoteLink?: ((deviceId: string, userName: string) => Promise<AgentLink | undefined>) | undefined;
  /** Current principal of a user (null when deleted or disabled), for re-checks after changes. */
  principalOf: (name: string) => Promise<Principal | null>;
  limits: TerminalLimits & {
    maxMessageBytes: number;
    maxSessionsPerDevice: number;
    maxSessionsPerUser: number;
    /** 0 disables. */
    idleTimeoutMs: number;
    pingIntervalMs: number;
  };
}

const DEVICE_ID = /^[A-Za-z0-9-]{1,64}$/;
/** How long shutdown waits for browsers to acknowledge the close (ms). */
const SHUTDOWN_GRACE_MS = 1_000;

/**
 * The browser terminals of this node: authorizes and upgrades `GET
 * /api/devices/{id}/terminal`, tracks every session, pings browsers, enforces idle
 * timeouts, and ends sessions whose user, session or device access ended.
 */
export class TerminalHub {
  readonly #o: TerminalHubOptions;
  readonly #sessions = new Set<TerminalSession>();
  readonly #wss: WebSocketServer;
  readonly #sweepTimer: NodeJS.Timeout;
  #nextId = 1;
  #closing = false;

  constructor(options: TerminalHubOptions) {
    this.#o = options;
    this.#wss = new WebSocketServer({
      noServer: true,
      // Terminal output is mostly small and latency-bound; deflate would cost CPU and memory per session.
      perMessageDeflate: false,
      maxPayload: options.limits.maxMessageBytes,
      clientTracking: false,
    });
    this.#sweepTimer = setInterval(() => this.#sweep(), options.limits.pingIntervalMs);
    this.#sweepTimer.unref();
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Terminals whose device output is paused because their browser is behind. */
  pausedOutputs(): number {
    let n = 0;
    for (const s of this.#sessions) if (s.outputPaused) n++;
    return n;
  }

  countForDevice(id: string): number {
    let n = 0;
    for (const s of this.#sessions) if (s.deviceId === id) n++;
    return n;
  }

  #countForUser(name: string): number {
    let n = 0;
    for (const s of this.#sessions) if (s.userName === name) n++;
    return n;
  }

  /** `GET /api/devices/{id}/terminal`: authorization refusals are status lines; everything after is a message. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, auth: Authentication, id: string): Promise<void> {
    if (this.#closing) throw DeviceErrors.shuttingDown();
    if (!DEVICE_ID.test(id)) throw DeviceErrors.notFound(id);
    const row = await this.#o.store.get(id);
    if (row === undefined) throw DeviceErrors.notFound(id);
    if (!hasAnyRole(auth.principal, parseRoles(row.allowed_roles))) {
      if (auth.method === 'anonymous') throw IdentityErrors.authenticationRequired();
      throw new PortcullisError(403, 'device_forbidden', `You are not allowed to open a terminal on "${row.name}".`);
    }
    if (this.#closing) throw DeviceErrors.shuttingDown();
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new TerminalSession({
        id: this.#nextId++,
        ws,
        deviceId: row.id,
        deviceName: row.name,
        principal: auth.principal,
        sessionId: auth.sessionId,
        clientKey: this.#o.clientKey,
        hostKey: row.host_key ?? '',
        limits: this.#o.limits,
        logger: this.#o.logger,
        onEnd: (s) => this.#sessions.delete(s),
      });
      this.#sessions.add(session);
      this.#start(session, row).catch((err: unknown) => {
        this.#o.logger.error({ err, terminal: session.id }, 'cannot start a terminal');
        session.fail('The gateway could not reach the device.', TerminalCloseCode.internal);
      });
    });
  }

  async #start(session: TerminalSession, row: DeviceRow): Promise<void> {
    const limits = this.#o.limits;
    if (this.#closing) return session.fail('The gateway is shutting down; reconnect in a moment.', TerminalCloseCode.goingAway);
    if (row.disabled === 1) return session.fail(`The device "${row.name}" is disabled by an administrator.`, TerminalCloseCode.policy);
    if (row.host_key === null) return session.fail(`The device "${row.name}" has not enrolled yet: run its enrollment command on it.`, TerminalCloseCode.policy);
    if (this.#countForUser(session.userName) > limits.maxSessionsPerUser) {
      return session.fail(`You already have ${limits.maxSessionsPerUser} terminals open; close one first.`, TerminalCloseCode.policy);
    }
    if (this.countForDevice(row.id) > limits.maxSessionsPerDevice) {
      return session.fail(`The device "${row.name}" already has ${limits.maxSessionsPerDevice} terminals open.`, TerminalCloseCode.policy);
    }
    const link = this.#o.agents.get(row.id) ?? (await this.#o.remoteLink?.(row.id, session.userName));
    if (session.state !== 'connecting') return;
    if (link === undefined) return session.fail(`The device "${row.name}" is offline: its agent is not connected to the gateway.`, TerminalCloseCode.normal);
    session.start(link);
  }

  /** A user's gateway session ended (logout, back-channel logout): close its terminals now. */
  sessionEnded(sessionId: string, reason: string): void {
    for (const s of [...this.#sessions]) if (s.sessionId === sessionId) s.fail(`Your session ended: ${reason}.`, TerminalCloseCode.policy);
  }

  /** A user was deleted or disabled: close their terminals now. */
  userEnded(userName: string, reason: string): void {
    for (const s of [...this.#sessions]) if (s.userName === userName) s.fail(`Your access ended: ${reason}.`, TerminalCloseCode.policy);
  }

  /** A device changed: end its terminals if it is gone or disabled, or the user lost access. */
  deviceChanged(id: string, row: DeviceRow | undefined): void {
    const roles = row === undefined ? [] : parseRoles(row.allowed_roles);
    for (const s of [...this.#sessions]) {
      if (s.deviceId !== id) continue;
      if (row === undefined) s.fail('The device was deleted.', TerminalCloseCode.policy);
      else if (row.disabled === 1) s.fail('The device was disabled by an administrator.', TerminalCloseCode.policy);
      else if (!hasAnyRole(s.principal, roles)) s.fail('You are no longer allowed to open this device.', TerminalCloseCode.policy);
    }
  }

  /** Roles may have changed (a user's, or a group's): re-check the terminals of `users` (all when undefined). */
  async recheckUsers(users: ReadonlySet<string> | undefined): Promise<void> {
    const affected = [...this.#sessions].filter((s) => users === undefined || users.has(s.userName));
    const principals = new Map<string, Principal | null>();
    const rows = new Map<string, DeviceRow | undefined>();
    for (const s of affected) {
      if (!principals.has(s.userName)) principals.set(s.userName, await this.#o.principalOf(s.userName));
      if (!rows.has(s.deviceId)) rows.set(s.deviceId, await this.#o.store.get(s.deviceId));
      const principal = principals.get(s.userName);
      // Not a directory user (unsecured mode's anonymous): nothing to re-check.
      if (principal === null || principal === undefined) continue;
      s.principal = principal;
      const row = rows.get(s.deviceId);
      if (row !== undefined && !hasAnyRole(principal, parseRoles(row.allowed_roles))) {
        s.fail('You are no longer allowed to open this device.', TerminalCloseCode.policy);
      }
    }
  }

  /** Pings browsers (dropping dead ones) and closes idle terminals. */
  #sweep(): void {
    const { pingIntervalMs, idleTimeoutMs } = this.#o.limits;
    for (const s of [...this.#sessions]) {
      if (!s.alive) {
        this.#o.logger.info({ terminal: s.id, user: s.userName }, 'browser stopped answering pings; dropping the terminal');
        s.terminate();
        continue;
      }
      s.alive = false;
      s.ping();
      if (idleTimeoutMs <= 0) continue;
      if (s.activity !== s.idleSince.activity) s.idleSince = { activity: s.activity, ms: 0 };
      else s.idleSince.ms += pingIntervalMs;
      if (s.idleSince.ms >= idleTimeoutMs) s.fail(`The terminal was closed after ${duration(idleTimeoutMs)} without activity.`, TerminalCloseCode.normal);
    }
  }

  /** Graceful shutdown: every terminal is told why it closes. */
  async close(reason: string): Promise<void> {
    this.#closing = true;
    clearInterval(this.#sweepTimer);
    const sessions = [...this.#sessions];
    const closed = sessions.map((s) => s.closed);
    const message = `${reason.charAt(0).toUpperCase()}${reason.slice(1)}; reconnect in a moment.`;
    for (const s of sessions) s.fail(message, TerminalCloseCode.goingAway);
    const timer = setTimeout(() => {
      for (const s of sessions) s.terminate();
    }, SHUTDOWN_GRACE_MS);
    await Promise.all(closed);
    clearTimeout(timer);
  }
}

function duration(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 1000)} s`;
}
