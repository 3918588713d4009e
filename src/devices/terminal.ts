import { constants as osConstants } from 'node:os';
import type { Logger } from 'pino';
import type { Algorithms, Client, ClientChannel } from 'ssh2';
import type { WebSocket } from 'ws';
import type { Principal } from '../identity/index.ts';
import { DeviceProtocolError, SSH_ALGORITHMS, clampTerminalSize, ssh2 } from '../protocol/index.ts';
import type { AgentLink, DeviceStream } from './agents.ts';
import { clip } from './errors.ts';

/** Control messages the gateway sends as text frames. */
export type TerminalControl = { type: 'exit'; code: number } | { type: 'error'; message: string };

/** WebSocket close codes of the browser terminal. */
export const TerminalCloseCode = {
  normal: 1000,
  goingAway: 1001,
  invalidData: 1007,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
} as const;

export interface TerminalLimits {
  handshakeTimeoutMs: number;
  /** Pause device output while the browser socket buffers more than this (bytes). */
  outputHighWaterMark: number;
  /** Browser input held while the shell is being opened (bytes); beyond it the socket is paused. */
  maxPendingInput: number;
}

export interface TerminalOptions {
  id: number;
  ws: WebSocket;
  deviceId: string;
  deviceName: string;
  principal: Principal;
  sessionId: string | undefined;
  /** The gateway's SSH client key (OpenSSH private key). */
  clientKey: string;
  /** The pinned host key (OpenSSH public key line). */
  hostKey: string;
  limits: TerminalLimits;
  logger: Logger;
  /** Called once, when every resource of the session has been released. */
  onEnd: (session: TerminalSession) => void;
}

/** Longest JSON control message accepted from the browser (bytes). */
export const MAX_CONTROL_BYTES = 1024;
/** Window changes are applied at most this often; the latest size always wins (ms). */
const RESIZE_INTERVAL_MS = 50;
/** A closing browser socket that does not finish its close handshake is cut after this (ms). */
const CLOSE_GRACE_MS = 1_000;
/** When a channel closes without an exit status, wait this long for the stream's reason (ms). */
const CONCLUDE_DELAY_MS = 100;
const DEFAULT_SIZE = { cols: 80, rows: 24 };
const TERM = 'xterm-256color';
const WS_OPEN = 1;

function exitCode(code: unknown, signal: unknown): number {
  if (typeof code === 'number') return code;
  const n = typeof signal === 'string' ? (osConstants.signals as Record<string, number>)[`SIG${signal}`] : undefined;
  return n === undefined ? 255 : 128 + n;
}

/**
 * One browser terminal: a WebSocket from the browser bridged to an SSH session on the
 * device, over its own stream of the device's agent connection. Owns every resource it
 * creates (stream, SSH client and channel, timers) and releases all of them when either
 * side goes away.
 */
export class TerminalSession {
  readonly id: number;
  readonly deviceId: string;
  readonly userName: string;
  readonly sessionId: string | undefined;
  principal: Principal;
  /** Bumped on every byte either way (idle timeout), and liveness for pings. */
  activity = 0;
  idleSince: { activity: number; ms: number } = { activity: 0, ms: 0 };
  alive = true;
  /** Resolves when the browser socket has closed. */
  readonly closed: Promise<void>;
  readonly #o: TerminalOptions;
  readonly #ws: WebSocket;
  #state: 'connecting' | 'open' | 'ended' = 'connecting';
  #stream: DeviceStream | undefined;
  #client: Client | undefined;
  #channel: ClientChannel | undefined;
  #size = DEFAULT_SIZE;
  #appliedSize = DEFAULT_SIZE;
  #resizeTimer: NodeJS.Timeout | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #concludeTimer: NodeJS.Timeout | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #inputPaused = false;
  #waitingForDrain = false;
  #outputPaused = false;
  #exit: number | undefined;
  #hostKeyMismatch = false;
  #sshError: (Error & { level?: string }) | undefined;
  #released = false;

  constructor(options: TerminalOptions) {
    this.#o = options;
    this.id = options.id;
    this.#ws = options.ws;
    this.deviceId = options.deviceId;
    this.principal = options.principal;
    this.userName = options.principal.name;
    this.sessionId = options.sessionId;
    const ws = this.#ws;
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('message', (data, isBinary) => this.#fromBrowser(data as Buffer, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself after a bad frame (1009 too big, 1007 bad UTF-8…).
      options.logger.info({ terminal: this.id, err: { code: err.code, message: err.message } }, 'terminal WebSocket error');
    });
    ws.on('close', () => {
      clearTimeout(this.#closeTimer);
      this.#release();
    });
  }

  /** Device output is paused because the browser is behind. */
  get outputPaused(): boolean {
    return this.#outputPaused;
  }

  get state(): 'connecting' | 'open' | 'ended' {
    return this.#state;
  }

  /** Opens the SSH session on the device; failures end the terminal with a message. */
  start(link: AgentLink): void {
    const limits = this.#o.limits;
    this.#handshakeTimer = setTimeout(
      () => this.fail(`The device did not open a shell within ${Math.round(limits.handshakeTimeoutMs / 1000)} s.`, TerminalCloseCode.internal),
      limits.handshakeTimeoutMs,
    );
    let stream: DeviceStream;
    try {
      stream = link.open();
    } catch (err) {
      const why = err instanceof DeviceProtocolError && err.code === 'STREAM_LIMIT' ? err.message : 'its connection is closing';
      this.fail(`Cannot open a session on the device: ${why}.`, TerminalCloseCode.policy);
      return;
    }
    this.#stream = stream;
    stream.once('close', () => this.#transportGone());
    const pinned = ssh2.utils.parseKey(this.#o.hostKey);
    if (pinned instanceof Error) {
      this.fail('The device has no usable pinned host key; enroll it again.', TerminalCloseCode.internal);
      return;
    }
    const pinnedBlob = pinned.getPublicSSH();
    const client = new ssh2.Client();
    this.#client = client;
    client.on('error', (err: Error & { level?: string }) => {
      this.#sshError ??= err;
    });
    client.on('close', () => this.#transportGone());
    client.once('ready', () => this.#openShell(client));
    try {
      client.connect({
        sock: stream,
        // The device logs who opened the session, and exports it as PORTCULLIS_USER.
        username: this.userName,
        privateKey: this.#o.clientKey,
        algorithms: SSH_ALGORITHMS as Algorithms,
        hostVerifier: (key: Buffer) => {
          const ok = key.equals(pinnedBlob);
          if (!ok) this.#hostKeyMismatch = true;
          return ok;
        },
        // Our handshake timer covers the whole open; ssh2's own is only a backstop.
        readyTimeout: limits.handshakeTimeoutMs + 5_000,
        keepaliveInterval: 0,
        ident: 'portcullis-gateway',
      });
    } catch (err) {
      this.#o.logger.error({ err, terminal: this.id }, 'cannot start the SSH client');
      this.fail('The gateway could not start the SSH session.', TerminalCloseCode.internal);
    }
  }

  #openShell(client: Client): void {
    if (this.#state !== 'connecting') return;
    const size = this.#size;
    client.shell({ term: TERM, cols: size.cols, rows: size.rows, width: 0, height: 0 }, (err, channel) => {
      if (err) {
        if (this.#state === 'connecting') this.fail(`The device refused to open a shell: ${clip(err.message, 120)}.`, TerminalCloseCode.internal);
        return;
      }
      if (this.#state !== 'connecting') {
        channel.close();
        return;
      }
      this.#state = 'open';
      this.#channel = channel;
      this.#appliedSize = size;
      clearTimeout(this.#handshakeTimer);
      channel.on('data', this.#onOutput);
      channel.stderr.on('data', this.#onOutput);
      channel.on('error', () => {});
      channel.on('exit', (code: unknown, signal: unknown) => {
        this.#exit = exitCode(code, signal);
      });
      channel.on('close', () => this.#channelClosed());
      const pending = this.#pending;
      this.#pending = [];
      this.#pendingBytes = 0;
      for (const chunk of pending) this.#write(chunk);
      if (this.#inputPaused && !this.#waitingForDrain) {
        this.#inputPaused = false;
        this.#ws.resume();
      }
      this.#applySize();
      this.#o.logger.info({ terminal: this.id, deviceId: this.deviceId, user: this.userName }, 'terminal opened');
    });
  }

  /** Device output → browser, pausing the SSH channel while the browser is behind. */
  readonly #onOutput = (data: Buffer): void => {
    const ws = this.#ws;
    if (ws.readyState !== WS_OPEN) return;
    this.activity++;
    ws.send(data, { binary: true }, this.#onSent);
    if (!this.#outputPaused && ws.bufferedAmount > this.#o.limits.outputHighWaterMark) {
      // Not reading the channel stops its window adjustments: the device's PTY blocks.
      this.#outputPaused = true;
      this.#channel?.pause();
    }
  };

  readonly #onSent = (): void => {
    if (this.#outputPaused && this.#ws.bufferedAmount <= this.#o.limits.outputHighWaterMark / 2) {
      this.#outputPaused = false;
      if (this.#state === 'open') this.#channel?.resume();
    }
  };

  #fromBrowser(data: Buffer, isBinary: boolean): void {
    if (this.#state === 'ended') return;
    this.activity++;
    if (!isBinary) {
      this.#control(data);
      return;
    }
    if (data.length === 0) return;
    if (this.#state === 'open') {
      this.#write(data);
      return;
    }
    // Keys typed while the session opens: kept (bounded), then sent in order.
    this.#pending.push(data);
    this.#pendingBytes += data.length;
    if (this.#pendingBytes > this.#o.limits.maxPendingInput && !this.#inputPaused) {
      this.#inputPaused = true;
      this.#ws.pause();
    }
  }

  /** Browser input → device, pausing the browser socket while the SSH window is full. */
  #write(data: Buffer): void {
    const channel = this.#channel!;
    if (channel.write(data) || this.#waitingForDrain) return;
    this.#waitingForDrain = true;
    this.#inputPaused = true;
    this.#ws.pause();
    channel.once('drain', () => {
      this.#waitingForDrain = false;
      this.#inputPaused = false;
      if (this.#state !== 'ended') this.#ws.resume();
    });
  }

  #control(data: Buffer): void {
    if (data.length > MAX_CONTROL_BYTES) {
      this.fail(`Control message too large (at most ${MAX_CONTROL_BYTES} bytes).`, TerminalCloseCode.tooBig);
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(data.toString('utf8'));
    } catch {
      this.fail('Invalid control message: not JSON.', TerminalCloseCode.invalidData);
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.fail('Invalid control message: not a JSON object.', TerminalCloseCode.invalidData);
      return;
    }
    const m = message as Record<string, unknown>;
    if (m.type === 'resize') {
      const { cols, rows } = m;
      if (typeof cols !== 'number' || typeof rows !== 'number' || !Number.isFinite(cols) || !Number.isFinite(rows)) {
        this.fail('Invalid control message: resize needs numeric cols and rows.', TerminalCloseCode.invalidData);
        return;
      }
      this.#resize(clampTerminalSize(cols, rows));
    }
    // Other types are ignored, so a newer page can talk to an older gateway.
  }

  #resize(size: { cols: number; rows: number }): void {
    this.#size = size;
    if (this.#state !== 'open' || this.#resizeTimer !== undefined) return;
    this.#applySize();
    // A window being dragged sends a burst of sizes: one window-change per interval.
    this.#resizeTimer = setTimeout(() => {
      this.#resizeTimer = undefined;
      if (this.#state === 'open') this.#applySize();
    }, RESIZE_INTERVAL_MS);
  }

  #applySize(): void {
    const size = this.#size;
    if (size.cols === this.#appliedSize.cols && size.rows === this.#appliedSize.rows) return;
    this.#appliedSize = size;
    this.#channel?.setWindow(size.rows, size.cols, 0, 0);
  }

  #channelClosed(): void {
    if (this.#state === 'ended') return;
    if (this.#exit !== undefined) {
      this.end({ type: 'exit', code: this.#exit }, TerminalCloseCode.normal, `exit ${this.#exit}`);
      return;
    }
    this.#concludeSoon();
  }

  #transportGone(): void {
    if (this.#state === 'ended') return;
    this.#concludeSoon();
  }

  /** The SSH side ended without an exit status: say why, once every event has landed. */
  #concludeSoon(): void {
    if (this.#concludeTimer !== undefined) return;
    this.#concludeTimer = setTimeout(() => {
      this.#concludeTimer = undefined;
      if (this.#state === 'ended') return;
      if (this.#exit !== undefined) this.end({ type: 'exit', code: this.#exit }, TerminalCloseCode.normal, `exit ${this.#exit}`);
      else this.fail(this.#describeFailure(), TerminalCloseCode.internal);
    }, CONCLUDE_DELAY_MS);
  }

  #describeFailure(): string {
    if (this.#hostKeyMismatch) {
      return "The device's SSH host key does not match the key pinned when it enrolled, so the session was refused. If the device was reinstalled, enroll it again.";
    }
    const stream = this.#stream;
    const reason = stream?.closeReason;
    if (reason !== undefined && reason !== '') {
      const err = stream?.errored as DeviceProtocolError | null | undefined;
      if (err instanceof DeviceProtocolError && err.code === 'CONNECTION_LOST') return `The device went offline: ${clip(reason, 200)}.`;
      if (reason === 'agent stopping') return 'The device went offline: its agent is stopping.';
      return `The device closed the session: ${clip(reason, 200)}.`;
    }
    const ssh = this.#sshError;
    if (ssh?.level === 'client-authentication') return "The device refused the gateway's SSH key (was it enrolled with another gateway?).";
    if (ssh?.level === 'client-timeout') return 'The device did not complete the SSH handshake in time.';
    if (ssh !== undefined) return `The SSH connection to the device failed: ${clip(ssh.message, 160)}.`;
    return 'The connection to the device ended unexpectedly.';
  }

  /** Ends the terminal with an error message (shown to the user) and a close code. */
  fail(message: string, code: number = TerminalCloseCode.internal): void {
    this.end({ type: 'error', message }, code, message);
  }

  /** Sends the final control message, closes the browser socket, releases everything. */
  end(control: TerminalControl, code: number, reason: string): void {
    if (this.#state === 'ended') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'ended';
    const ws = this.#ws;
    if (ws.readyState === WS_OPEN) {
      ws.send(JSON.stringify(control));
      ws.close(code, closeReason(reason));
      this.#closeTimer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    }
    const fields = { terminal: this.id, deviceId: this.deviceId, user: this.userName, wasOpen };
    if (control.type === 'error') this.#o.logger.info({ ...fields, reason: control.message }, 'terminal closed');
    else this.#o.logger.info({ ...fields, code: control.code }, 'terminal exited');
    this.#release();
  }

  ping(): void {
    if (this.#ws.readyState === WS_OPEN) this.#ws.ping();
  }

  /** Drops a browser that stopped answering pings. */
  terminate(): void {
    this.#state = 'ended';
    this.#ws.terminate();
    this.#release();
  }

  #release(): void {
    this.#state = 'ended';
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#resizeTimer);
    clearTimeout(this.#concludeTimer);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#channel?.removeListener('data', this.#onOutput);
    this.#channel?.stderr.removeListener('data', this.#onOutput);
    try {
      // Ends the SSH connection; the device ends the session's processes.
      this.#client?.end();
    } catch {
      // Not connected yet.
    }
    this.#stream?.destroy();
    this.#o.onEnd(this);
  }
}

/** WebSocket close reasons are limited to 123 bytes. */
function closeReason(text: string): string {
  let out = text;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}
