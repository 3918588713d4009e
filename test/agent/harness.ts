/**
 * A stand-in for the gateway's device endpoints, real enough to drive a real agent:
 * enrollment with one-time expiring tokens, the WebSocket upgrade authenticated by the
 * agent's signed assertion, the stream multiplexer and an ssh2 Client per session.
 * Tier: integration — real sockets on 127.0.0.1:0, real SSH, real PTYs and shells.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { decodeJwt, importJWK, jwtVerify } from 'jose';
import type { Algorithms, Client, ClientChannel, PseudoTtyOptions } from 'ssh2';
import { ssh2 } from '../../src/protocol/index.ts';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  AGENT_ASSERTION_TYPE,
  AgentHeaders,
  MAX_MESSAGE_SIZE,
  SSH_ALGORITHMS,
  StreamMux,
  agentEndpoints,
  decodeFrame,
  generateSshEd25519Key,
  type EnrollRequest,
  type Frame,
  type MuxStream,
} from '../../src/protocol/index.ts';

export interface FakeDevice {
  id: string;
  name: string;
  identityKey: EnrollRequest['identityKey'];
  hostKey: string;
  hostname: string;
  version: string;
  /** Headers and claims of the latest connect. */
  lastConnect: { headers: http.IncomingHttpHeaders; claims: Record<string, unknown> } | undefined;
  ws: WebSocket | undefined;
  mux: StreamMux | undefined;
  /** Every frame the agent sent on the current connection, decoded. */
  frames: Frame[];
  connects: number;
}

interface TokenEntry {
  name: string;
  expiresAt: number;
  used: boolean;
}

export interface Rejection {
  status: number;
  error: string;
  message: string;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function refuseUpgrade(socket: Socket, status: number, body: Rejection | { error: string; message: string }): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

export class FakeGateway {
  readonly gatewayKey = generateSshEd25519Key('portcullis-gateway');
  readonly tokens = new Map<string, TokenEntry>();
  readonly devices = new Map<string, FakeDevice>();
  readonly usedJtis = new Set<string>();
  /** When set, every connect is refused with this answer. */
  rejectConnects: Rejection | undefined;
  /** Close codes and reasons of agent WebSockets, as the gateway saw them. */
  readonly closes: Array<{ deviceId: string; code: number; reason: string }> = [];
  #server: http.Server | undefined;
  #wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE });
  #port = 0;
  #waiters: Array<{ id: string; min: number; resolve: (d: FakeDevice) => void }> = [];

  static async start(): Promise<FakeGateway> {
    const gw = new FakeGateway();
    await gw.listen();
    return gw;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  async listen(): Promise<void> {
    const server = http.createServer((req, res) => void this.#onRequest(req, res));
    server.on('upgrade', (req, socket, head) => void this.#onUpgrade(req, socket as Socket, head));
    server.listen(this.#port, '127.0.0.1');
    await once(server, 'listening');
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Stops listening and drops every agent connection (as a crashing gateway would). */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const ws of this.#wss.clients) ws.terminate();
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  addToken(name: string, ttlMs = 60_000): string {
    const token = randomBytes(24).toString('base64url');
    this.tokens.set(token, { name, expiresAt: Date.now() + ttlMs, used: false });
    return token;
  }

  /** Resolves when the device has connected at least `min` times in total. */
  waitForAgent(id: string, min = 1): Promise<FakeDevice> {
    const d = this.devices.get(id);
    if (d !== undefined && d.connects >= min && d.mux !== undefined) return Promise.resolve(d);
    return new Promise((resolve) => this.#waiters.push({ id, min, resolve }));
  }

  device(id: string): FakeDevice {
    const d = this.devices.get(id);
    if (d === undefined) throw new Error(`no device ${id}`);
    return d;
  }

  /** Opens an SSH connection to the device over a new stream, as the gateway does. */
  async ssh(
    id: string,
    options: { username?: string; privateKey?: string; hostKey?: string } = {},
  ): Promise<{ client: Client; stream: MuxStream; hostKeySeen: () => string | undefined }> {
    const device = this.device(id);
    if (device.mux === undefined) throw new Error('device offline');
    const stream = device.mux.open();
    const client = new ssh2.Client();
    const pinned = ssh2.utils.parseKey(options.hostKey ?? device.hostKey);
    if (pinned instanceof Error) throw pinned;
    let seen: string | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
    });
    client.connect({
      sock: stream,
      username: options.username ?? 'alice',
      privateKey: options.privateKey ?? this.gatewayKey.private,
      algorithms: SSH_ALGORITHMS as Algorithms,
      readyTimeout: 5_000,
      hostVerifier: (key: Buffer) => {
        seen = key.toString('base64');
        return key.equals(pinned.getPublicSSH());
      },
    });
    await ready;
    client.on('error', () => {});
    return { client, stream, hostKeySeen: () => seen };
  }

  #deviceWaitersFor(device: FakeDevice): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (w.id !== device.id || device.connects < w.min) return true;
      w.resolve(device);
      return false;
    });
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url !== '/api/agent/enroll') return sendJson(res, 404, { error: 'not_found', message: 'no such route' });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: EnrollRequest;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as EnrollRequest;
    } catch {
      return sendJson(res, 400, { error: 'invalid_body', message: 'body is not JSON' });
    }
    const entry = this.tokens.get(body.token);
    if (entry === undefined) return sendJson(res, 401, { error: 'enrollment_token_invalid', message: 'unknown enrollment token' });
    if (entry.used) return sendJson(res, 401, { error: 'enrollment_token_used', message: 'this enrollment token was already used' });
    if (entry.expiresAt < Date.now()) return sendJson(res, 401, { error: 'enrollment_token_expired', message: 'this enrollment token has expired' });
    entry.used = true;
    const id = randomUUID();
    this.devices.set(id, {
      id,
      name: entry.name,
      identityKey: body.identityKey,
      hostKey: body.hostKey,
      hostname: body.hostname,
      version: body.version,
      lastConnect: undefined,
      ws: undefined,
      mux: undefined,
      frames: [],
      connects: 0,
    });
    sendJson(res, 201, { deviceId: id, name: entry.name, gatewayKey: this.gatewayKey.public });
  }

  async #onUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    if (req.url !== '/api/agent/connect') return refuseUpgrade(socket, 404, { error: 'not_found', message: 'no such route' });
    if (this.rejectConnects !== undefined) return refuseUpgrade(socket, this.rejectConnects.status, this.rejectConnects);
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    let device: FakeDevice | undefined;
    let claims: Record<string, unknown>;
    try {
      const unverified = decodeJwt(token);
      device = typeof unverified.iss === 'string' ? this.devices.get(unverified.iss) : undefined;
      if (device === undefined) throw new Error('unknown device');
      const key = await importJWK(device.identityKey, 'EdDSA');
      const verified = await jwtVerify(token, key, {
        issuer: device.id,
        subject: device.id,
        audience: agentEndpoints(this.url).audience,
        typ: AGENT_ASSERTION_TYPE,
        algorithms: ['EdDSA'],
        maxTokenAge: 120,
        requiredClaims: ['jti', 'exp', 'iat'],
      });
      if (this.usedJtis.has(String(verified.payload.jti))) throw new Error('replayed assertion');
      this.usedJtis.add(String(verified.payload.jti));
      claims = { ...verified.payload, ...verified.protectedHeader };
    } catch (err) {
      return refuseUpgrade(socket, 401, { error: 'device_unauthenticated', message: (err as Error).message });
    }
    const d = device;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      d.connects++;
      d.lastConnect = { headers: req.headers, claims };
      d.hostname = String(req.headers[AgentHeaders.hostname] ?? d.hostname);
      d.ws = ws;
      d.frames = [];
      const mux = new StreamMux({
        role: 'gateway',
        socket: ws,
        remoteAddress: socket.remoteAddress,
        onProtocolError: (code, reason) => ws.close(code, reason.slice(0, 120)),
      });
      d.mux = mux;
      ws.on('message', (data, isBinary) => {
        if (isBinary) {
          const r = decodeFrame(data as Buffer);
          if (r.ok) d.frames.push({ ...r.frame, payload: Buffer.from(r.frame.payload) });
        }
        mux.handleMessage(data as Buffer, isBinary);
      });
      ws.on('error', () => {});
      ws.on('close', (code, reason) => {
        this.closes.push({ deviceId: d.id, code, reason: reason.toString() });
        mux.connectionClosed(`agent disconnected (${code})`);
        if (d.ws === ws) {
          d.ws = undefined;
          d.mux = undefined;
        }
      });
      this.#deviceWaitersFor(d);
    });
  }
}

/** Runs a command over SSH and collects its output and exit status. */
export function execCommand(
  client: Client,
  command: string,
  options: { pty?: PseudoTtyOptions } = {},
): Promise<{ stdout: string; stderr: string; code: number | undefined; signal: string | undefined }> {
  return new Promise((resolve, reject) => {
    client.exec(command, options.pty === undefined ? {} : { pty: options.pty }, (err, channel) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: number | undefined;
      let signal: string | undefined;
      channel.on('data', (d: Buffer) => (stdout += d.toString()));
      channel.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      channel.on('exit', (c: number | null, s?: string) => {
        code = c ?? undefined;
        signal = s;
      });
      channel.on('close', () => resolve({ stdout, stderr, code, signal }));
    });
  });
}

/** Opens an interactive login shell with a PTY; `waitFor` reads until a pattern shows up. */
export function openShell(
  client: Client,
  pty: PseudoTtyOptions = { term: 'xterm-256color', cols: 80, rows: 24 },
): Promise<{ channel: ClientChannel; output: () => string; waitFor: (re: RegExp, ms?: number) => Promise<RegExpMatchArray> }> {
  return new Promise((resolve, reject) => {
    client.shell(pty, (err, channel) => {
      if (err) return reject(err);
      let out = '';
      const listeners = new Set<() => void>();
      channel.on('data', (d: Buffer) => {
        out += d.toString();
        for (const l of listeners) l();
      });
      const waitFor = (re: RegExp, ms = 5_000) =>
        new Promise<RegExpMatchArray>((res, rej) => {
          const check = () => {
            const m = out.match(re);
            if (m === null) return;
            listeners.delete(check);
            clearTimeout(timer);
            res(m);
          };
          const timer = setTimeout(() => {
            listeners.delete(check);
            rej(new Error(`timed out waiting for ${re} in output: ${JSON.stringify(out.slice(-500))}`));
          }, ms);
          listeners.add(check);
          check();
        });
      resolve({ channel, output: () => out, waitFor });
    });
  });
}

/** True when the pid no longer runs (gone, or a zombie nobody reaped yet). */
export async function processGone(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  const { readFile } = await import('node:fs/promises');
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X' || stat === '';
}

export async function waitUntil(check: () => boolean | Promise<boolean>, ms = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}
