import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import WebSocket from 'ws';
import {
  AgentHeaders,
  DeviceCloseCode,
  MAX_MESSAGE_SIZE,
  StreamMux,
  agentEndpoints,
} from '../protocol/index.ts';
import { signConnectAssertion } from './assertion.ts';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from './backoff.ts';
import { enroll } from './enroll.ts';
import { AgentError } from './errors.ts';
import { jsonLogger, type AgentLogger } from './log.ts';
import { DeviceSshServer } from './ssh-server.ts';
import { defaultStateDir, isEnrolled, loadCredentials, type AgentCredentials } from './state.ts';
import { AGENT_VERSION } from './version.ts';

export interface AgentOptions {
  /** Gateway base URL (`https://gateway.example`); defaults to the one the device enrolled with. */
  server?: string;
  /** Where credentials live (0700); default `~/.portcullis-agent`. */
  stateDir?: string;
  /** One-time enrollment token: enroll first if the state directory is empty. */
  enrollToken?: string;
  hostname?: string;
  /** Shell for sessions; default the agent user's login shell. */
  shell?: string;
  logger?: AgentLogger;
  /** WebSocket ping period; a peer that misses one whole period is dropped (ms). */
  pingIntervalMs?: number;
  /** Reconnect back-off window (ms). */
  backoff?: Partial<BackoffOptions>;
  /** A connection that stays up this long resets the back-off (ms). */
  stableAfterMs?: number;
  /** WebSocket opening handshake timeout (ms). */
  connectTimeoutMs?: number;
  /** SSH: from stream open until a session runs (ms). */
  handshakeTimeoutMs?: number;
  /** SSH: close connections without terminal traffic for this long (ms); 0 disables. */
  idleTimeoutMs?: number;
  /** Between SIGHUP and SIGKILL when a session ends (ms). */
  killGraceMs?: number;
  /** Concurrent streams (sessions) accepted on the gateway connection. */
  maxStreams?: number;
  random?: () => number;
  fetch?: typeof fetch;
}

/** Defaults, with units; every one is overridable through AgentOptions. */
export const AGENT_DEFAULTS = {
  pingIntervalMs: 20_000,
  stableAfterMs: 10_000,
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  killGraceMs: 2_000,
  /** Longest error body read from a refused upgrade (bytes). */
  maxRejectionBody: 4 * 1024,
  /** How long ws.close() may take before the socket is torn down (ms). */
  closeTimeoutMs: 2_000,
} as const;

export interface AgentRejection {
  status: number;
  error: string | undefined;
  message: string;
}

export interface AgentEvents {
  connected: [];
  disconnected: [{ code: number; reason: string }];
  /** The gateway refused the upgrade (HTTP status and its JSON error). */
  rejected: [AgentRejection];
  reconnecting: [{ attempt: number; delayMs: number }];
}

/**
 * The device agent: one outbound WebSocket to the gateway, kept alive and re-dialled
 * with back-off, carrying SSH connections to an in-process SSH server.
 */
export class Agent extends EventEmitter<AgentEvents> {
  readonly #options: AgentOptions;
  readonly #log: AgentLogger;
  readonly #stateDir: string;
  readonly #backoff: BackoffOptions;
  #credentials: AgentCredentials | undefined;
  #endpoints: ReturnType<typeof agentEndpoints> | undefined;
  #ssh: DeviceSshServer | undefined;
  #ws: WebSocket | undefined;
  #mux: StreamMux | undefined;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #started = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(options: AgentOptions = {}) {
    super();
    this.#options = options;
    this.#log = options.logger ?? jsonLogger();
    this.#stateDir = options.stateDir ?? defaultStateDir();
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    if (!(this.#backoff.baseMs > 0) || !(this.#backoff.capMs >= this.#backoff.baseMs)) {
      throw new AgentError('AGENT_BAD_OPTION', 'backoff needs 0 < baseMs <= capMs');
    }
  }

  get deviceId(): string | undefined {
    return this.#credentials?.state.deviceId;
  }

  get credentials(): AgentCredentials | undefined {
    return this.#credentials;
  }

  get connected(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN && this.#mux !== undefined;
  }

  /** Live resources, for leak checks. */
  stats(): { connected: boolean; streams: number; connections: number; sessions: number } {
    const ssh = this.#ssh?.stats ?? { connections: 0, sessions: 0 };
    return { connected: this.connected, streams: this.#mux?.size ?? 0, ...ssh };
  }

  /**
   * Enrolls if asked to, loads the credentials and starts dialling the gateway. Resolves
   * once the agent is running (not once it is connected: listen for `connected`).
   * Rejects with an AgentError when enrollment or the credentials fail.
   */
  async start(): Promise<void> {
    if (this.#started) throw new AgentError('AGENT_BAD_OPTION', 'agent already started');
    this.#started = true;
    const token = this.#options.enrollToken;
    if (token !== undefined) {
      if (this.#options.server === undefined) throw new AgentError('AGENT_BAD_OPTION', '--server is required to enroll');
      if (await isEnrolled(this.#stateDir)) {
        throw new AgentError('AGENT_ALREADY_ENROLLED', `${this.#stateDir} already holds an enrolled device; remove it (or use another --state-dir) to enroll again`);
      }
      this.#credentials = await enroll({
        server: this.#options.server,
        token,
        stateDir: this.#stateDir,
        ...(this.#options.hostname === undefined ? {} : { hostname: this.#options.hostname }),
        ...(this.#options.fetch === undefined ? {} : { fetch: this.#options.fetch }),
      });
      this.#log.info({ deviceId: this.#credentials.state.deviceId, name: this.#credentials.state.name, stateDir: this.#stateDir }, 'device enrolled');
    } else {
      this.#credentials = await loadCredentials(this.#stateDir);
    }
    const server = this.#options.server ?? this.#credentials.state.server;
    try {
      this.#endpoints = agentEndpoints(server);
    } catch (err) {
      throw new AgentError('AGENT_BAD_OPTION', `--server must be the gateway's http(s) URL: ${(err as Error).message}`, { cause: err });
    }
    const { hostname: host, protocol } = new URL(this.#endpoints.connectUrl);
    if (protocol === 'ws:' && !['localhost', '127.0.0.1', '[::1]'].includes(host)) {
      this.#log.warn({ server }, 'the gateway URL is not https: the connection can be observed and tampered with up to the SSH layer');
    }
    this.#ssh = new DeviceSshServer({
      hostKey: this.#credentials.hostKey,
      gatewayKey: this.#credentials.state.gatewayKey,
      ...(this.#options.shell === undefined ? {} : { shell: this.#options.shell }),
      handshakeTimeoutMs: this.#options.handshakeTimeoutMs ?? AGENT_DEFAULTS.handshakeTimeoutMs,
      idleTimeoutMs: this.#options.idleTimeoutMs ?? AGENT_DEFAULTS.idleTimeoutMs,
      killGraceMs: this.#options.killGraceMs ?? AGENT_DEFAULTS.killGraceMs,
      logger: this.#log,
    });
    this.#connect();
  }

  /** Ends every session, closes the connection and stops reconnecting. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#reconnectTimer);
    // Sessions first, so the gateway sees each stream close before the socket goes.
    await this.#ssh?.close('agent stopping');
    const ws = this.#ws;
    if (ws !== undefined && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => ws.terminate(), AGENT_DEFAULTS.closeTimeoutMs);
        ws.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
        else ws.close(DeviceCloseCode.goingAway, 'agent stopping');
      });
    }
    this.#log.info({}, 'agent stopped');
  }

  #connect(): void {
    if (this.#stopping) return;
    const credentials = this.#credentials!;
    const endpoints = this.#endpoints!;
    signConnectAssertion({ deviceId: credentials.state.deviceId, audience: endpoints.audience, key: credentials.identityKey })
      .then((assertion) => this.#open(assertion))
      .catch((err: unknown) => {
        this.#log.error({ err }, 'cannot sign the connect assertion');
        this.#scheduleReconnect();
      });
  }

  #open(assertion: string): void {
    if (this.#stopping) return;
    const endpoints = this.#endpoints!;
    const log = this.#log;
    const ws = new WebSocket(endpoints.connectUrl, {
      headers: {
        authorization: `Bearer ${assertion}`,
        [AgentHeaders.version]: AGENT_VERSION,
        [AgentHeaders.hostname]: headerSafe(this.#options.hostname ?? os.hostname()),
      },
      // SSH traffic is encrypted, so incompressible; deflate would only cost CPU and memory.
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_SIZE,
      handshakeTimeout: this.#options.connectTimeoutMs ?? AGENT_DEFAULTS.connectTimeoutMs,
      followRedirects: false,
    });
    this.#ws = ws;
    let mux: StreamMux | undefined;
    let alive = true;
    let heartbeat: NodeJS.Timeout | undefined;
    let stableTimer: NodeJS.Timeout | undefined;

    ws.on('unexpected-response', (_req, res) => this.#onRejected(ws, res));
    ws.on('open', () => {
      mux = new StreamMux({
        role: 'agent',
        socket: ws,
        maxStreams: this.#options.maxStreams,
        remoteAddress: 'gateway',
        onStream: (stream) => {
          log.debug({ stream: stream.id }, 'stream opened by the gateway');
          this.#ssh!.accept(stream);
        },
        onProtocolError: (code, reason) => {
          log.warn({ code, reason }, 'device protocol violation by the gateway; reconnecting');
          ws.close(code, truncateReason(reason));
        },
      });
      this.#mux = mux;
      const pingInterval = this.#options.pingIntervalMs ?? AGENT_DEFAULTS.pingIntervalMs;
      heartbeat = setInterval(() => {
        if (!alive) {
          log.warn({ pingIntervalMs: pingInterval }, 'gateway stopped answering pings; dropping the connection');
          ws.terminate();
          return;
        }
        alive = false;
        ws.ping();
      }, pingInterval);
      stableTimer = setTimeout(() => {
        this.#attempt = 0;
      }, this.#options.stableAfterMs ?? AGENT_DEFAULTS.stableAfterMs);
      log.info({ url: endpoints.connectUrl, deviceId: this.deviceId }, 'connected to the gateway');
      this.emit('connected');
    });
    ws.on('message', (data, isBinary) => {
      alive = true;
      mux?.handleMessage(data, isBinary);
    });
    ws.on('pong', () => {
      alive = true;
    });
    ws.on('ping', () => {
      alive = true;
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // WS_ERR_* are frames the gateway should never send (oversized, bad opcode...).
      if (err.code?.startsWith('WS_ERR_')) log.warn({ err }, 'invalid WebSocket frame from the gateway');
      else log.debug({ err }, 'gateway connection error');
    });
    ws.on('close', (code, reasonBuf) => {
      clearInterval(heartbeat);
      clearTimeout(stableTimer);
      const reason = reasonBuf.toString('utf8');
      if (this.#ws === ws) this.#ws = undefined;
      if (mux !== undefined) {
        if (this.#mux === mux) this.#mux = undefined;
        mux.connectionClosed(reason === '' ? `gateway connection closed (${code})` : reason);
        const level = code === DeviceCloseCode.normal || code === DeviceCloseCode.goingAway || this.#stopping ? 'info' : 'warn';
        log[level]({ code, reason }, 'disconnected from the gateway');
        this.emit('disconnected', { code, reason });
      }
      this.#scheduleReconnect();
    });
  }

  /** The gateway answered the upgrade with an HTTP error: log its message, retry later. */
  #onRejected(ws: WebSocket, res: IncomingMessage): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // Not our gateway, or a proxy in front of it.
      }
      const status = res.statusCode ?? 0;
      const rejection: AgentRejection = {
        status,
        error: typeof body.error === 'string' ? body.error.slice(0, 100) : undefined,
        message: typeof body.message === 'string' ? body.message.slice(0, 500) : `HTTP ${status}`,
      };
      this.#log.warn({ ...rejection }, 'the gateway refused the connection');
      // Refusals do not fix themselves quickly: wait a full back-off window.
      this.#attempt = Math.max(this.#attempt, Math.ceil(Math.log2(this.#backoff.capMs / this.#backoff.baseMs)));
      this.emit('rejected', rejection);
      res.destroy();
      ws.terminate();
    };
    const timer = setTimeout(finish, AGENT_DEFAULTS.connectTimeoutMs);
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= AGENT_DEFAULTS.maxRejectionBody) chunks.push(chunk);
      else finish();
    });
    res.on('end', finish);
    res.on('error', finish);
  }

  #scheduleReconnect(): void {
    if (this.#stopping) return;
    clearTimeout(this.#reconnectTimer);
    const attempt = this.#attempt;
    const delayMs = backoffDelay(attempt, this.#backoff, this.#options.random);
    this.#attempt = attempt + 1;
    this.#log.info({ attempt: attempt + 1, delayMs }, 'reconnecting');
    this.emit('reconnecting', { attempt: attempt + 1, delayMs });
    this.#reconnectTimer = setTimeout(() => this.#connect(), delayMs);
  }
}

/** A header value Node accepts (it throws on anything else): printable ASCII, bounded. */
function headerSafe(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, 255);
}

/** WebSocket close reasons are limited to 123 bytes. */
function truncateReason(reason: string): string {
  let out = reason;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

/** Creates and starts an agent (see Agent.start). */
export async function runAgent(options: AgentOptions): Promise<Agent> {
  const agent = new Agent(options);
  await agent.start();
  return agent;
}
