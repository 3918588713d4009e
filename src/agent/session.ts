import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { spawn as spawnPty, type IPty } from 'node-pty';
import type { ServerChannel } from 'ssh2';
import type { AgentLogger } from './log.ts';
import { terminateSession } from './process-tree.ts';

export interface PtySpec {
  term: string;
  cols: number;
  rows: number;
}

export interface ProcessSpec {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Present when the client asked for a PTY; otherwise stdio are plain pipes. */
  pty: PtySpec | undefined;
}

export interface SessionProcessOptions {
  killGraceMs: number;
  logger: AgentLogger;
  /** Called on every chunk in either direction (idle timeout bookkeeping). */
  onActivity: () => void;
  /** Log fields identifying the session. */
  logFields: Record<string, unknown>;
}

/** Signals a client may send (RFC 4254 §6.9); the rest are refused. */
const FORWARDABLE_SIGNALS = new Set(['HUP', 'INT', 'KILL', 'QUIT', 'TERM', 'USR1', 'USR2', 'ALRM']);
/** Signal names SSH can carry in exit-signal (RFC 4254 §6.10); others become 128+n. */
const SSH_EXIT_SIGNALS = new Set(['ABRT', 'ALRM', 'FPE', 'HUP', 'ILL', 'INT', 'KILL', 'PIPE', 'QUIT', 'SEGV', 'TERM', 'USR1', 'USR2']);

/**
 * node-pty queues PTY input without limit (its CustomWriteStream retries on EAGAIN), so a
 * paste into a program that does not read would pile up in the agent. We read the
 * length of that private queue to stop taking data from the SSH channel, which stops
 * window adjustments and so throttles the gateway. The shape is checked defensively:
 * if a node-pty upgrade changes it, input is merely not throttled.
 */
interface PtyInternals {
  _writeStream?: { _writeQueue?: Array<{ buffer: Buffer; offset: number }> };
}
/** Queued PTY input (bytes) above which the channel is paused; resumed below a quarter. */
const INPUT_HIGH_WATER = 256 * 1024;
const INPUT_POLL_MS = 10;
/** Streaming PTY output is coalesced into SSH packets of up to this size (ssh2's channel packet size). */
const OUTPUT_BATCH_BYTES = 32 * 1024;
/** …for at most this long (ms): output that keeps coming within this window is streaming. */
const OUTPUT_BATCH_MS = 1;
/** Reads at least this large (bytes) count as streaming output; smaller ones are interactive. */
const STREAMING_CHUNK_BYTES = 512;

function queuedPtyInput(term: IPty): number {
  const queue = (term as unknown as PtyInternals)._writeStream?._writeQueue;
  if (!Array.isArray(queue)) return 0;
  let n = 0;
  for (const task of queue) n += task.buffer.byteLength - task.offset;
  return n;
}

/** Input nobody will read any more; left queued, node-pty keeps retrying it on a dead fd. */
function dropQueuedPtyInput(term: IPty | undefined): void {
  const queue = (term as unknown as PtyInternals | undefined)?._writeStream?._writeQueue;
  if (Array.isArray(queue)) queue.length = 0;
}

function signalName(signal: number): string | undefined {
  for (const [name, value] of Object.entries(osConstants.signals)) if (value === signal) return name.slice(3);
  return undefined;
}

/**
 * One process (login shell or command) bridged to one SSH session channel. It owns
 * every resource it creates: the PTY or pipes, the process session and its kill timer.
 */
export class SessionProcess {
  readonly pid: number;
  /** Resolves once the process has exited and the channel has been told. */
  readonly exited: Promise<void>;
  #channel: ServerChannel;
  #pty: IPty | undefined;
  #child: ChildProcess | undefined;
  #options: SessionProcessOptions;
  #hasExited = false;
  #channelGone = false;
  #paused = false;
  #output: Buffer[] = [];
  #outputBytes = 0;
  #flushTimer: NodeJS.Timeout | undefined;
  #lastBulkFlush = -Infinity;
  #inputPoll: NodeJS.Timeout | undefined;
  #terminating: Promise<void> | undefined;
  #resolveExited!: () => void;

  constructor(channel: ServerChannel, spec: ProcessSpec, options: SessionProcessOptions) {
    this.#channel = channel;
    this.#options = options;
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
    channel.on('error', (err: Error) => options.logger.debug({ ...options.logFields, err }, 'session channel error'));
    channel.once('close', () => {
      this.#channelGone = true;
      if (!this.#hasExited) void this.terminate('channel closed');
    });
    this.pid = spec.pty === undefined ? this.#startPipes(spec) : this.#startPty(spec, spec.pty);
  }

  #startPty(spec: ProcessSpec, pty: PtySpec): number {
    const term = spawnPty(spec.file, spec.args, {
      name: pty.term,
      cols: pty.cols,
      rows: pty.rows,
      cwd: spec.cwd,
      env: spec.env,
      // Raw bytes: no UTF-8 decoding cost, no mangled split sequences.
      encoding: null,
    });
    this.#pty = term;
    const channel = this.#channel;
    term.onData((data: string | Buffer) => {
      this.#options.onActivity();
      if (this.#channelGone) return;
      const chunk = typeof data === 'string' ? Buffer.from(data) : data;
      this.#output.push(chunk);
      this.#outputBytes += chunk.length;
      if (this.#outputBytes >= OUTPUT_BATCH_BYTES) {
        this.#flushOutput();
        return;
      }
      if (this.#flushTimer !== undefined) return;
      const now = performance.now();
      if (chunk.length >= STREAMING_CHUNK_BYTES && now - this.#lastBulkFlush < OUTPUT_BATCH_MS) {
        // Output is streaming: gather for a moment into one larger packet.
        this.#flushTimer = setTimeout(this.#flushOutput, OUTPUT_BATCH_MS);
        return;
      }
      // Interactive output (an echo, a prompt) goes at once.
      if (chunk.length >= STREAMING_CHUNK_BYTES) this.#lastBulkFlush = now;
      this.#flushOutput();
    });
    term.onExit(({ exitCode, signal }) => this.#onExit(exitCode, signal === 0 ? undefined : signal));
    channel.on('data', (data: Buffer) => {
      this.#options.onActivity();
      // Input that arrives while the session is being torn down has no reader left.
      if (this.#hasExited || this.#terminating !== undefined) return;
      term.write(data);
      if (this.#inputPoll === undefined && queuedPtyInput(term) > INPUT_HIGH_WATER) {
        channel.pause();
        this.#inputPoll = setInterval(() => {
          if (this.#hasExited || this.#channelGone || queuedPtyInput(term) < INPUT_HIGH_WATER / 4) {
            clearInterval(this.#inputPoll);
            this.#inputPoll = undefined;
            channel.resume();
          }
        }, INPUT_POLL_MS);
      }
    });
    return term.pid;
  }

  /**
   * Sends the PTY output gathered so far as one SSH packet. A PTY hands over a couple of
   * KiB per read, one read per event-loop turn; while output streams, gathering it for a
   * millisecond cuts the packets (each a cipher run, a frame and socket writes on both
   * sides) about tenfold. Interactive output is never held back.
   */
  readonly #flushOutput = (): void => {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#outputBytes === 0) return;
    const data = this.#output.length === 1 ? this.#output[0]! : Buffer.concat(this.#output, this.#outputBytes);
    this.#output = [];
    this.#outputBytes = 0;
    const term = this.#pty;
    if (this.#channelGone || term === undefined) return;
    if (!this.#channel.write(data) && !this.#paused) {
      // The SSH window is full: stop reading the PTY, so the shell blocks on its writes
      // instead of the agent buffering its output.
      this.#paused = true;
      term.pause();
      this.#channel.once('drain', () => {
        this.#paused = false;
        term.resume();
      });
    }
  };

  #startPipes(spec: ProcessSpec): number {
    const child = spawnChild(spec.file, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      // Its own session, like a PTY child, so ending it ends everything it started.
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#child = child;
    const channel = this.#channel;
    child.stdout!.on('data', () => this.#options.onActivity());
    child.stdout!.pipe(channel, { end: false });
    child.stderr!.pipe(channel.stderr, { end: false });
    channel.on('data', () => this.#options.onActivity());
    channel.pipe(child.stdin!);
    child.stdin!.on('error', () => {
      // EPIPE when the command exits without reading its input: not an error of ours.
    });
    child.once('error', (err) => {
      this.#options.logger.warn({ ...this.#options.logFields, err }, 'cannot start command');
      this.#onExit(127, undefined);
    });
    child.once('close', (code, signal) => this.#onExit(code ?? 0, signal === null ? undefined : osConstants.signals[signal]));
    return child.pid ?? -1;
  }

  /** Honours a window-change; sizes are already clamped by the caller. */
  resize(cols: number, rows: number): void {
    if (this.#pty === undefined || this.#hasExited) return;
    try {
      this.#pty.resize(cols, rows);
    } catch (err) {
      this.#options.logger.debug({ ...this.#options.logFields, err }, 'resize failed');
    }
  }

  /** Forwards a client signal request to the session's process group. */
  signal(name: string): boolean {
    const bare = name.toUpperCase().replace(/^SIG/, '');
    if (!FORWARDABLE_SIGNALS.has(bare) || this.#hasExited || this.pid <= 1) return false;
    try {
      process.kill(-this.pid, `SIG${bare}` as NodeJS.Signals);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Ends the session's processes (SIGHUP, SIGKILL after the grace period) and resolves
   * when they are gone. Safe to call any number of times.
   */
  terminate(why: string): Promise<void> {
    if (this.#terminating === undefined) {
      this.#options.logger.debug({ ...this.#options.logFields, pid: this.pid, why }, 'ending session processes');
      dropQueuedPtyInput(this.#pty);
      // Keep draining a paused PTY, or it never notices its child is gone.
      if (this.#paused) {
        this.#paused = false;
        this.#pty?.resume();
      }
      this.#terminating = (async () => {
        if (this.pid > 1) await terminateSession(this.pid, this.#options.killGraceMs);
        await this.exited;
      })();
    }
    return this.#terminating;
  }

  #onExit(code: number, signal: number | undefined): void {
    if (this.#hasExited) return;
    this.#hasExited = true;
    // Output still being coalesced goes before the exit status.
    this.#flushOutput();
    clearInterval(this.#inputPoll);
    dropQueuedPtyInput(this.#pty);
    this.#options.logger.info({ ...this.#options.logFields, pid: this.pid, code, signal }, 'session process exited');
    // Jobs the shell left behind belong to the session too.
    if (this.#terminating === undefined && this.pid > 1) {
      this.#terminating = terminateSession(this.pid, this.#options.killGraceMs).then(() => this.exited);
    }
    const channel = this.#channel;
    if (this.#channelGone || !channel.writable) {
      this.#resolveExited();
      return;
    }
    // exit-status must follow the output still queued on the channel, and precede its
    // close (which ssh2 sends as soon as the channel ends), so wait for the queue first.
    channel.write(Buffer.alloc(0), () => {
      this.#sendExit(code, signal);
      if (channel.writable) channel.end();
      this.#resolveExited();
    });
    // If the channel closes before the queue drains, the callback never runs.
    channel.once('close', () => this.#resolveExited());
  }

  #sendExit(code: number, signal: number | undefined): void {
    try {
      if (signal !== undefined) {
        const name = signalName(signal);
        if (name !== undefined && SSH_EXIT_SIGNALS.has(name)) {
          this.#channel.exit(name, false);
          return;
        }
        this.#channel.exit(128 + signal);
        return;
      }
      this.#channel.exit(code);
    } catch (err) {
      this.#options.logger.debug({ ...this.#options.logFields, err }, 'cannot report exit status');
    }
  }
}
