import { timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import os from 'node:os';
import type { Algorithms, AuthContext, Connection, ParsedKey, ServerChannel, Session } from 'ssh2';
import { SSH_ALGORITHMS, clampTerminalSize, ssh2, type MuxStream } from '../protocol/index.ts';
import type { AgentLogger } from './log.ts';
import { SessionProcess, type PtySpec } from './session.ts';

export interface DeviceSshServerOptions {
  /** SSH host private key (OpenSSH format). */
  hostKey: string;
  /** OpenSSH public key line of the gateway: the only key allowed to log in. */
  gatewayKey: string;
  /** Shell for sessions; default: the agent user's login shell. */
  shell?: string;
  /** From stream open until a session channel is open (and again after the last closes), ms. */
  handshakeTimeoutMs: number;
  /** Close a connection with no terminal traffic for this long (ms); 0 disables. */
  idleTimeoutMs: number;
  /** Between SIGHUP and SIGKILL when a session ends (ms). */
  killGraceMs: number;
  /** Session channels per SSH connection (the gateway uses one). */
  maxSessionsPerConnection?: number;
  logger: AgentLogger;
}

/** Failed authentication attempts before the connection is dropped (OpenSSH MaxAuthTries). */
const MAX_AUTH_ATTEMPTS = 6;
/** Longest SSH user name we log or put in the environment. */
const MAX_USERNAME_LENGTH = 256;
const DEFAULT_MAX_SESSIONS = 4;
const TERM_PATTERN = /^[A-Za-z0-9._+-]{1,64}$/;
const DEFAULT_TERM = 'xterm-256color';

interface ConnectionState {
  tag: number;
  stream: MuxStream;
  username: string | undefined;
  authFailures: number;
  sessions: Set<SessionProcess>;
  channels: number;
  setupTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  activity: number;
  closed: boolean;
}

/** The gateway's user name, made safe for logs and the environment. */
function cleanUsername(name: string): string {
  return name.slice(0, MAX_USERNAME_LENGTH).replace(/[\u0000-\u001f\u007f]/g, '?');
}

function defaultShell(): string {
  const fromUser = (() => {
    try {
      return os.userInfo().shell;
    } catch {
      return null;
    }
  })();
  for (const candidate of [fromUser, process.env.SHELL, '/bin/bash', '/bin/sh']) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  return '/bin/sh';
}

/**
 * An SSH server that listens on no port: the agent hands it each multiplexed stream the
 * gateway opens. Public-key authentication by the gateway's key only; each session gets
 * the agent user's login shell (or a command) in a PTY.
 */
export class DeviceSshServer {
  readonly #server: InstanceType<typeof ssh2.Server>;
  readonly #options: DeviceSshServerOptions;
  readonly #gatewayKey: ParsedKey;
  readonly #gatewayKeyBlob: Buffer;
  readonly #shell: string;
  readonly #connections = new Map<number, ConnectionState>();
  #nextTag = 1;

  constructor(options: DeviceSshServerOptions) {
    this.#options = options;
    const parsed = ssh2.utils.parseKey(options.gatewayKey);
    if (parsed instanceof Error) throw new TypeError(`gateway key is not an SSH public key: ${parsed.message}`);
    this.#gatewayKey = parsed;
    this.#gatewayKeyBlob = parsed.getPublicSSH();
    this.#shell = options.shell ?? defaultShell();
    this.#server = new ssh2.Server(
      {
        hostKeys: [options.hostKey],
        // The protocol module lists names as plain strings to stay free of ssh2's types.
        algorithms: SSH_ALGORITHMS as Algorithms,
        ident: 'portcullis-agent',
      },
      (client, info) => this.#onConnection(client, info.port),
    );
  }

  /** Open SSH connections and running sessions (for stats and leak checks). */
  get stats(): { connections: number; sessions: number } {
    let sessions = 0;
    for (const c of this.#connections.values()) sessions += c.sessions.size;
    return { connections: this.#connections.size, sessions };
  }

  /** Starts an SSH connection on a stream the gateway opened. */
  accept(stream: MuxStream): void {
    const tag = this.#nextTag;
    this.#nextTag = this.#nextTag >= 0x7fffffff ? 1 : this.#nextTag + 1;
    // ssh2 reports the socket's remotePort with the connection: our handle to find it again.
    stream.remotePort = tag;
    const conn: ConnectionState = {
      tag,
      stream,
      username: undefined,
      authFailures: 0,
      sessions: new Set(),
      channels: 0,
      setupTimer: undefined,
      idleTimer: undefined,
      activity: 0,
      closed: false,
    };
    this.#connections.set(tag, conn);
    this.#armSetupTimer(conn);
    stream.once('close', () => this.#release(conn));
    this.#server.injectSocket(stream as unknown as Socket);
  }

  /** Ends every connection and session; resolves when their processes are gone. */
  async close(reason: string): Promise<void> {
    const ending: Promise<void>[] = [];
    for (const conn of this.#connections.values()) {
      for (const s of conn.sessions) ending.push(s.terminate(reason));
      this.#closeConnection(conn, reason);
    }
    await Promise.all(ending);
  }

  #armSetupTimer(conn: ConnectionState): void {
    clearTimeout(conn.setupTimer);
    conn.setupTimer = setTimeout(() => {
      this.#options.logger.info({ stream: conn.stream.id, user: conn.username }, 'SSH connection without a session timed out');
      this.#closeConnection(conn, conn.username === undefined ? 'SSH handshake timeout' : 'no session opened in time');
    }, this.#options.handshakeTimeoutMs);
  }

  #startIdleTimer(conn: ConnectionState): void {
    const idle = this.#options.idleTimeoutMs;
    if (idle <= 0 || conn.idleTimer !== undefined) return;
    // Checked at a quarter of the timeout against an activity counter, so the hot data
    // path only increments a number instead of re-arming a timer per chunk.
    let seen = conn.activity;
    let quiet = 0;
    const step = Math.max(10, Math.floor(idle / 4));
    conn.idleTimer = setInterval(() => {
      if (conn.activity !== seen) {
        seen = conn.activity;
        quiet = 0;
        return;
      }
      quiet += step;
      if (quiet >= idle) {
        this.#options.logger.info({ stream: conn.stream.id, user: conn.username, idleMs: idle }, 'closing idle SSH connection');
        this.#closeConnection(conn, 'idle timeout');
      }
    }, step);
  }

  #closeConnection(conn: ConnectionState, reason: string): void {
    if (conn.closed) return;
    conn.stream.closeWithReason(reason);
    this.#release(conn);
  }

  #release(conn: ConnectionState): void {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.setupTimer);
    clearInterval(conn.idleTimer);
    this.#connections.delete(conn.tag);
    if (!conn.stream.destroyed) conn.stream.destroy();
    for (const s of conn.sessions) void s.terminate('connection closed');
  }

  #onConnection(client: Connection, tag: number): void {
    const conn = this.#connections.get(tag);
    if (conn === undefined) {
      client.on('error', () => {});
      client.end();
      return;
    }
    const log = this.#options.logger;
    client.on('error', (err: Error) => log.debug({ stream: conn.stream.id, err }, 'SSH connection error'));
    client.on('authentication', (ctx) => this.#authenticate(conn, client, ctx));
    client.on('ready', () => {
      log.info({ stream: conn.stream.id, user: conn.username }, 'gateway user authenticated');
    });
    client.on('session', (accept, reject) => {
      const max = this.#options.maxSessionsPerConnection ?? DEFAULT_MAX_SESSIONS;
      if (conn.channels >= max) {
        reject();
        return;
      }
      conn.channels++;
      clearTimeout(conn.setupTimer);
      this.#startIdleTimer(conn);
      this.#onSession(conn, accept());
    });
    // Port forwarding, X11 and global requests have no listener, so ssh2 refuses them.
    client.on('request', (_accept, reject) => reject?.());
    client.on('close', () => this.#release(conn));
  }

  #authenticate(conn: ConnectionState, client: Connection, ctx: AuthContext): void {
    const username = cleanUsername(ctx.username);
    const deny = () => {
      conn.authFailures++;
      if (conn.authFailures >= MAX_AUTH_ATTEMPTS) {
        this.#options.logger.warn({ stream: conn.stream.id, user: username }, 'too many failed SSH authentications');
        ctx.reject([]);
        client.end();
        return;
      }
      ctx.reject(['publickey']);
    };
    if (ctx.method === 'none') {
      // How clients ask which methods exist: neither a failure nor worth a log line.
      ctx.reject(['publickey']);
      return;
    }
    if (ctx.method !== 'publickey') {
      this.#options.logger.info({ stream: conn.stream.id, method: ctx.method }, 'refused SSH authentication method');
      deny();
      return;
    }
    const offered = ctx.key.data;
    const matches =
      ctx.key.algo === this.#gatewayKey.type &&
      offered.length === this.#gatewayKeyBlob.length &&
      timingSafeEqual(offered, this.#gatewayKeyBlob);
    if (!matches) {
      this.#options.logger.warn({ stream: conn.stream.id, user: username, algo: ctx.key.algo }, 'refused an SSH key that is not the gateway key');
      deny();
      return;
    }
    if (ctx.signature === undefined || ctx.blob === undefined) {
      // The client only asks whether this key would do; it must still prove possession.
      ctx.accept();
      return;
    }
    if (this.#gatewayKey.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
      this.#options.logger.warn({ stream: conn.stream.id, user: username }, 'bad signature from the gateway key');
      deny();
      return;
    }
    conn.username = username;
    ctx.accept();
  }

  #onSession(conn: ConnectionState, session: Session): void {
    const log = this.#options.logger;
    const fields = { stream: conn.stream.id, user: conn.username };
    let pty: PtySpec | undefined;
    let proc: SessionProcess | undefined;
    let ended = false;
    const endChannel = () => {
      if (ended) return;
      ended = true;
      conn.channels--;
      if (conn.channels === 0 && !conn.closed) this.#armSetupTimer(conn);
    };

    session.on('pty', (accept, reject, info) => {
      if (proc !== undefined) return reject?.();
      const size = clampTerminalSize(info.cols, info.rows);
      pty = { term: TERM_PATTERN.test(info.term) ? info.term : DEFAULT_TERM, ...size };
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      const size = clampTerminalSize(info.cols, info.rows);
      if (pty !== undefined) pty = { ...pty, ...size };
      proc?.resize(size.cols, size.rows);
      accept?.();
    });
    // The environment is ours to choose; a client may not inject LD_PRELOAD and friends.
    session.on('env', (_accept, reject) => reject?.());
    session.on('signal', (accept, reject, info) => {
      if (proc?.signal(info.name)) accept?.();
      else reject?.();
    });

    const start = (channel: ServerChannel | undefined, command: string | undefined) => {
      if (channel === undefined) return;
      const args = command === undefined ? ['-l'] : ['-c', command];
      log.info({ ...fields, pty: pty !== undefined, command: command === undefined ? undefined : command.slice(0, 200) }, command === undefined ? 'starting login shell' : 'running command');
      try {
        proc = new SessionProcess(
          channel,
          { file: this.#shell, args, cwd: homeDir(), env: this.#environment(conn, pty), pty },
          { killGraceMs: this.#options.killGraceMs, logger: log, onActivity: () => conn.activity++, logFields: fields },
        );
      } catch (err) {
        log.error({ ...fields, err }, 'cannot start session process');
        channel.stderr.write(`portcullis-agent: cannot start ${this.#shell}\r\n`);
        channel.exit(127);
        channel.end();
        return;
      }
      conn.sessions.add(proc);
      const p = proc;
      void p.exited.then(() => conn.sessions.delete(p));
      channel.once('close', () => {
        endChannel();
        void p.terminate('channel closed').then(() => conn.sessions.delete(p));
      });
    };

    session.on('shell', (accept, reject) => {
      if (proc !== undefined) return reject?.();
      start(accept?.(), undefined);
    });
    session.on('exec', (accept, reject, info) => {
      if (proc !== undefined) return reject?.();
      start(accept?.(), info.command);
    });
    session.once('close', () => {
      if (proc === undefined) endChannel();
    });
  }

  #environment(conn: ConnectionState, pty: PtySpec | undefined): Record<string, string> {
    // A fresh environment like sshd's, not the agent's own: the agent may run with
    // variables (tokens, service settings) that are none of the session's business.
    const info = os.userInfo();
    const env: Record<string, string> = {
      HOME: homeDir(),
      USER: info.username,
      LOGNAME: info.username,
      SHELL: this.#shell,
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      PORTCULLIS_USER: conn.username ?? '',
    };
    for (const key of ['LANG', 'LC_ALL', 'LC_CTYPE', 'TZ']) {
      const v = process.env[key];
      if (v !== undefined) env[key] = v;
    }
    if (pty !== undefined) env.TERM = pty.term;
    return env;
  }
}

function homeDir(): string {
  const home = os.homedir();
  return home !== '' && existsSync(home) ? home : '/';
}
