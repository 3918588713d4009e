/**
 * Fixtures for the device tests. Tier: integration — a real gateway on 127.0.0.1:0 with
 * its SQLite store, real agents (the Agent class in-process, with their in-process SSH
 * servers and real PTYs running real shells), and `ws` clients standing in for browsers.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { Agent, silentLogger, type AgentOptions } from '../../src/agent/index.ts';
import type { ConfigInput } from '../../src/config/index.ts';
import { deviceRuntimeStats, type AdminDeviceView, type DeviceRuntimeStats, type EnrollmentView } from '../../src/devices/index.ts';
import type { Capability, CapabilityContext } from '../../src/server/index.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

export interface DevicesGateway extends TestGateway {
  stats(): DeviceRuntimeStats;
  api<T = unknown>(method: string, path: string, body?: unknown, auth?: string): Promise<{ status: number; body: T }>;
  createDevice(name: string, allowedRoles?: string[]): Promise<{ device: AdminDeviceView; enrollment: EnrollmentView }>;
  /** Creates a device and runs an enrolled, connected agent for it. */
  addAgent(name: string, options?: { allowedRoles?: string[]; agent?: Partial<AgentOptions> }): Promise<TestAgent>;
  /** Stops every agent started through it, then the gateway. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

export interface TestAgent {
  agent: Agent;
  id: string;
  name: string;
  stateDir: string;
}

/** A real gateway with fast device timers, and helpers to enroll real agents. */
export async function startDevicesGateway(
  options: { config?: ConfigInput; dataDir?: string; now?: () => number } = {},
): Promise<DevicesGateway> {
  let ctx: CapabilityContext | undefined;
  const probe: Capability = (c) => {
    ctx = c;
  };
  const gw = await startTestGateway({ ...options, capabilities: [probe] });
  const agents: TestAgent[] = [];
  const tempDirs: string[] = [];
  const api = async <T>(method: string, p: string, body?: unknown, auth = gw.adminAuth) => {
    const res = await fetch(gw.url + p, {
      method,
      headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  };
  const createDevice = async (name: string, allowedRoles?: string[]) => {
    const res = await api<{ device: AdminDeviceView; enrollment: EnrollmentView }>('POST', '/api/admin/devices', { name, ...(allowedRoles ? { allowedRoles } : {}) });
    if (res.status !== 201) throw new Error(`create device: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  return {
    ...gw,
    stats: () => deviceRuntimeStats(ctx!)!,
    api,
    createDevice,
    async addAgent(name, addOptions = {}) {
      const { device, enrollment } = await createDevice(name, addOptions.allowedRoles);
      const stateDir = mkdtempSync(path.join(tmpdir(), 'pc-devices-agent-'));
      tempDirs.push(stateDir);
      const agent = new Agent({
        server: gw.url,
        stateDir,
        enrollToken: enrollment.token,
        hostname: `${name}-host`,
        logger: silentLogger,
        backoff: { baseMs: 50, capMs: 300 },
        killGraceMs: 500,
        ...addOptions.agent,
      });
      const connected = new Promise<void>((resolve) => agent.once('connected', () => resolve()));
      await agent.start();
      await connected;
      const test: TestAgent = { agent, id: device.id, name, stateDir };
      agents.push(test);
      await waitUntil(async () => (await api<AdminDeviceView>('GET', `/api/admin/devices/${device.id}`)).body.online, 5_000, `${name} online`);
      return test;
    },
    async close(closeOptions) {
      await Promise.all(agents.map((a) => a.agent.stop()));
      await gw.close(closeOptions);
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    },
  };
}

export type Control = { type: 'exit'; code: number } | { type: 'error'; message: string };

/** A browser's side of a terminal: binary frames are terminal bytes, text frames JSON control. */
export class TerminalClient {
  readonly ws: WebSocket;
  readonly controls: Control[] = [];
  /** Resolves with the close code and reason (and when it happened). */
  readonly closed: Promise<{ code: number; reason: string; at: number }>;
  readonly opened: Promise<void>;
  /** Terminal bytes received so far. */
  received = 0;
  #chunks: string[] = [];
  #listeners = new Set<(text: string) => void>();

  constructor(url: string, deviceId: string, headers: Record<string, string>, options: { maxPayload?: number } = {}) {
    const wsUrl = `${url.replace(/^http/, 'ws')}/api/devices/${encodeURIComponent(deviceId)}/terminal`;
    this.ws = new WebSocket(wsUrl, { headers, perMessageDeflate: false, ...(options.maxPayload ? { maxPayload: options.maxPayload } : {}) });
    this.ws.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.ws.on('message', (data, isBinary) => {
      const buf = data as Buffer;
      if (!isBinary) {
        this.controls.push(JSON.parse(buf.toString('utf8')) as Control);
        for (const l of this.#listeners) l('');
        return;
      }
      this.received += buf.length;
      const text = buf.toString('latin1');
      this.#chunks.push(text);
      for (const l of this.#listeners) l(text);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })));
  }

  /** Everything received, as text (bytes as Latin-1, so any byte sequence survives). */
  get output(): string {
    if (this.#chunks.length > 1) this.#chunks = [this.#chunks.join('')];
    return this.#chunks[0] ?? '';
  }

  /** Opens a terminal and waits for the shell's first output. */
  static async open(url: string, deviceId: string, headers: Record<string, string>): Promise<TerminalClient> {
    const t = new TerminalClient(url, deviceId, headers);
    await t.opened;
    return t;
  }

  type(text: string): void {
    this.ws.send(Buffer.from(text, 'utf8'));
  }

  control(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Types `cmd` and a newline; resolves with the first match of `re` in the output that follows. */
  async run(cmd: string, re: RegExp, ms = 5_000): Promise<RegExpMatchArray> {
    const from = this.received;
    this.type(`${cmd}\n`);
    return this.waitFor(re, ms, from);
  }

  /**
   * Resolves with the first match of `re` in the output after byte `from`. Matches are
   * looked for in a sliding window (new bytes plus 4 KiB before them), so a flood of
   * output costs each check only what arrived.
   */
  waitFor(re: RegExp, ms = 5_000, from = 0): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      let window = this.received > from ? this.output.slice(from - this.received) : '';
      const check = (text: string) => {
        window = (window + text).slice(-(4096 + text.length));
        const m = window.match(re);
        if (m === null) return;
        this.#listeners.delete(check);
        clearTimeout(timer);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.#listeners.delete(check);
        reject(new Error(`timed out waiting for ${re}; output: ${JSON.stringify(window.slice(-400))}; controls: ${JSON.stringify(this.controls)}`));
      }, ms);
      this.#listeners.add(check);
      check('');
    });
  }

  /** Waits for the final control message and the close. */
  async ended(ms = 5_000): Promise<{ control: Control | undefined; code: number; reason: string; at: number }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`terminal not closed within ${ms} ms; output: ${JSON.stringify(this.output.slice(-300))}`)), ms);
    });
    try {
      const closed = await Promise.race([this.closed, timeout]);
      return { control: this.controls.at(-1), ...closed };
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.ws.close(1000, 'done');
  }
}

/** Attempts a WebSocket upgrade that should be refused; returns the status and JSON body. */
export function refusedUpgrade(url: string, headers: Record<string, string>): Promise<{ status: number; body: { error?: string; message?: string } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers });
    ws.on('error', () => {});
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let body = {};
        try {
          body = JSON.parse(text) as object;
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
  });
}

export async function waitUntil(check: () => boolean | Promise<boolean>, ms = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** True when the pid no longer runs (gone, or a zombie nobody reaped yet). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  let stat = '';
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}
