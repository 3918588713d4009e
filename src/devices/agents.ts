import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { AgentHeaders, DeviceCloseCode, MAX_MESSAGE_SIZE, StreamMux, agentEndpoints } from '../protocol/index.ts';
import { ReplayCache, assertionIssuer, verifyAssertion } from './assertion.ts';
import { DeviceErrors } from './errors.ts';
import type { DeviceRow, DeviceStore } from './store.ts';

/** A byte stream to the device's SSH server, and why it closed when it has. */
export type DeviceStream = Duplex & { closeReason?: string | undefined };

/** What a terminal needs from a connected agent (on this node, or relayed from another). */
export interface AgentLink {
  readonly deviceId: string;
  /** A new stream to the device's SSH server; throws when the connection cannot take one. */
  open(): DeviceStream;
}

/** One connected agent: its WebSocket, multiplexer and liveness. */
class AgentConnection implements AgentLink {
  readonly deviceId: string;
  /** The stored JWK this connection proved possession of (re-enrollment replaces it). */
  readonly identityKey: string;
  readonly ws: WebSocket;
  readonly mux: StreamMux;
  alive = true;
  /** Why the gateway closed it, for the streams' reason (the agent's close reason otherwise). */
  closing: string | undefined;

  constructor(deviceId: string, identityKey: string, ws: WebSocket, mux: StreamMux) {
    this.deviceId = deviceId;
    this.identityKey = identityKey;
    this.ws = ws;
    this.mux = mux;
  }

  open(): DeviceStream {
    return this.mux.open();
  }

  /** Closes with `code`; open streams end with `reason` (shown to terminal users). */
  close(code: number, reason: string, streamReason = reason): void {
    this.closing ??= streamReason;
    this.mux.connectionClosed(this.closing);
    this.ws.close(code, reason.slice(0, 120));
  }
}

export interface AgentHubOptions {
  store: DeviceStore;
  logger: Logger;
  now: () => number;
  publicUrl: () => string;
  clockSkewSeconds: number;
  pingIntervalMs: number;
  lastSeenIntervalMs: number;
  /** A connected device's record is gone or disabled (found by the periodic check). */
  onStale: (id: string, row: DeviceRow | undefined) => void;
  /** Told when agents connect to and leave this node (cluster presence). */
  presence?: { announce(id: string): void; withdraw(id: string): void } | undefined;
}

/** Close frames must finish within this long, or the socket is torn down (ms). */
const CLOSE_TIMEOUT_MS = 1_000;

/**
 * The agents connected to this node: authenticates each connect by its signed assertion,
 * keeps one connection per device (a newer one replaces the older), detects dead peers
 * with pings, and records when devices were last seen.
 */
export class AgentHub {
  readonly #o: AgentHubOptions;
  readonly #online = new Map<string, AgentConnection>();
  readonly #replay = new ReplayCache();
  readonly #wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, clientTracking: false });
  readonly #pingTimer: NodeJS.Timeout;
  readonly #seenTimer: NodeJS.Timeout;
  /** Bumped by every admin change, so a connect verified before one re-reads the device. */
  #changes = 0;
  #closing = false;

  constructor(options: AgentHubOptions) {
    this.#o = options;
    this.#pingTimer = setInterval(() => this.#ping(), options.pingIntervalMs);
    this.#seenTimer = setInterval(() => void this.#touch(), options.lastSeenIntervalMs);
    this.#pingTimer.unref();
    this.#seenTimer.unref();
  }

  get size(): number {
    return this.#online.size;
  }

  get(id: string): AgentLink | undefined {
    return this.#online.get(id);
  }

  isOnline(id: string): boolean {
    return this.#online.has(id);
  }

  /** Open streams over every agent connection (for leak checks). */
  streams(): number {
    let n = 0;
    for (const c of this.#online.values()) n += c.mux.size;
    return n;
  }

  /** A device record changed: a disabled, deleted or re-enrolled device is disconnected. */
  apply(id: string, row: DeviceRow | undefined): void {
    this.#changes++;
    const conn = this.#online.get(id);
    if (conn === undefined) return;
    if (row === undefined) conn.close(DeviceCloseCode.deviceDeleted, 'device deleted', 'it was deleted');
    else if (row.disabled === 1) conn.close(DeviceCloseCode.deviceDisabled, 'device disabled', 'it was disabled by an administrator');
    else if (row.identity_key !== conn.identityKey) conn.close(DeviceCloseCode.policyViolation, 'device enrolled again', 'it was enrolled again');
  }

  /** `GET /api/agent/connect`: refuse with a status line, or take over the socket. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.#closing) throw DeviceErrors.shuttingDown();
    const { token, deviceId } = assertionIssuer(req.headers.authorization);
    const changes = this.#changes;
    const row = await this.#checkDevice(deviceId);
    const identityKey = row.identity_key!;
    await verifyAssertion({
      token,
      deviceId,
      jwk: identityKey,
      audience: agentEndpoints(this.#o.publicUrl()).audience,
      now: this.#o.now(),
      clockSkewSeconds: this.#o.clockSkewSeconds,
      replay: this.#replay,
    });
    // An admin disabled, deleted or re-enrolled the device while we were verifying.
    if (changes !== this.#changes && (await this.#checkDevice(deviceId)).identity_key !== identityKey) throw DeviceErrors.unknownDevice();
    if (this.#closing) throw DeviceErrors.shuttingDown();
    const hostname = headerText(req.headers[AgentHeaders.hostname], 255);
    const version = headerText(req.headers[AgentHeaders.version], 100);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#register(deviceId, identityKey, ws, hostname, version, req.socket.remoteAddress));
  }

  async #checkDevice(id: string): Promise<DeviceRow> {
    const row = await this.#o.store.get(id);
    if (row === undefined || row.identity_key === null) throw DeviceErrors.unknownDevice();
    if (row.disabled === 1) throw DeviceErrors.disabled(row.name);
    return row;
  }

  #register(deviceId: string, identityKey: string, ws: WebSocket, hostname: string | undefined, version: string | undefined, address: string | undefined): void {
    const log = this.#o.logger;
    if (this.#closing) {
      ws.close(DeviceCloseCode.goingAway, 'gateway stopping');
      return;
    }
    const mux = new StreamMux({
      role: 'gateway',
      socket: ws,
      ...(address === undefined ? {} : { remoteAddress: address }),
      onProtocolError: (code, reason) => {
        log.warn({ deviceId, code, reason }, 'device protocol violation by an agent; disconnecting it');
        conn.closing ??= `its agent broke the device protocol (${reason})`;
        ws.close(code, reason.slice(0, 120));
      },
    });
    const conn = new AgentConnection(deviceId, identityKey, ws, mux);
    const previous = this.#online.get(deviceId);
    this.#online.set(deviceId, conn);
    this.#o.presence?.announce(deviceId);
    if (previous !== undefined) {
      log.info({ deviceId }, 'a newer connection of the device replaces the older one');
      previous.close(DeviceCloseCode.replaced, 'replaced by a newer connection', 'a newer connection of its agent replaced this one');
    }
    ws.on('message', (data, isBinary) => {
      conn.alive = true;
      mux.handleMessage(data as Buffer, isBinary);
    });
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself (1002/1009…) after a bad frame.
      log.info({ deviceId, err: { code: err.code, message: err.message } }, 'agent connection error');
    });
    ws.on('close', (code, reasonBuf) => {
      if (this.#online.get(deviceId) === conn) {
        this.#online.delete(deviceId);
        this.#o.presence?.withdraw(deviceId);
      }
      const reason = reasonBuf.toString('utf8');
      conn.closing ??= code === DeviceCloseCode.goingAway ? 'its agent is stopping' : `its agent disconnected (${code}${reason === '' ? '' : ` ${reason.slice(0, 60)}`})`;
      mux.connectionClosed(conn.closing);
      log.info({ deviceId, code, reason: conn.closing }, 'agent disconnected');
      // On shutdown, close() records every device at once.
      if (this.#closing) return;
      void this.#o.store.update(deviceId, { last_seen_at: this.#o.now() }).catch((err: unknown) => log.warn({ err, deviceId }, 'cannot record last seen'));
    });
    log.info({ deviceId, hostname, version }, 'agent connected');
    const seen: Partial<DeviceRow> = { last_seen_at: this.#o.now() };
    if (hostname !== undefined) seen.hostname = hostname;
    if (version !== undefined) seen.agent_version = version;
    void this.#o.store.update(deviceId, seen).catch((err: unknown) => log.warn({ err, deviceId }, 'cannot record the agent connect'));
  }

  /** Pings every agent; one that did not answer since the previous round is dropped. */
  #ping(): void {
    for (const conn of this.#online.values()) {
      if (!conn.alive) {
        this.#o.logger.warn({ deviceId: conn.deviceId }, 'agent stopped answering pings; dropping it');
        conn.closing ??= 'it stopped answering';
        conn.mux.connectionClosed(conn.closing);
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }

  /** Records last-seen for connected devices, and drops those removed or disabled elsewhere (CLI, another node). */
  async #touch(): Promise<void> {
    const ids = [...this.#online.keys()];
    if (ids.length === 0) return;
    try {
      const live = await this.#o.store.touch(ids, this.#o.now());
      for (const id of ids) {
        if (live.has(id) || !this.#online.has(id)) continue;
        this.#o.onStale(id, await this.#o.store.get(id));
      }
    } catch (err) {
      this.#o.logger.warn({ err }, 'cannot record devices last seen');
    }
  }

  /** Disconnects every agent (they reconnect to another node, or when this one is back). */
  async close(reason: string): Promise<void> {
    this.#closing = true;
    clearInterval(this.#pingTimer);
    clearInterval(this.#seenTimer);
    const conns = [...this.#online.values()];
    const closed = conns.map((c) => new Promise<void>((resolve) => c.ws.once('close', () => resolve())));
    for (const c of conns) c.close(DeviceCloseCode.goingAway, 'gateway stopping', reason);
    const timer = setTimeout(() => {
      for (const c of conns) c.ws.terminate();
    }, CLOSE_TIMEOUT_MS);
    await Promise.all(closed);
    clearTimeout(timer);
    const ids = conns.map((c) => c.deviceId);
    if (ids.length > 0) await this.#o.store.touch(ids, this.#o.now()).catch(() => {});
  }
}

function headerText(value: string | string[] | undefined, max: number): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, max);
}
