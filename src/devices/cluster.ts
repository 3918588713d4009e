import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, createWebSocketStream } from 'ws';
import type { Bus } from '../cluster/index.ts';
import { PortcullisError } from '../errors.ts';
import { MAX_MESSAGE_SIZE } from '../protocol/index.ts';
import type { SecretBox } from '../store/index.ts';
import type { AgentLink, DeviceStream } from './agents.ts';

/** Where another node serves the relay to the agents connected to it. */
export const RELAY_PATH = '/api/internal/devices/:id/relay';
const RELAY_HEADER = 'x-portcullis-relay';
const PRESENCE_CHANNEL = 'device-presence';
const KEY = (id: string) => `portcullis:device:${id}`;
/** A relay token is good for this long: it only has to cover one connect (ms). */
const RELAY_TOKEN_TTL_MS = 30_000;

// Delete the key only if this node still owns it: a device that moved on must stay located.
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

interface Location {
  readonly node: string;
  readonly url: string;
}

/**
 * Devices across gateway nodes (SPEC §9): each node records in Redis which of its agents
 * are connected and how to reach it, mirrors the other nodes' records locally (so "is it
 * online" stays synchronous), and relays a terminal's byte stream to the node that holds
 * the device's agent. SSH still runs end to end from the terminal's node to the device:
 * the relaying node only moves opaque bytes.
 */
export class ClusterDevices {
  readonly node = randomUUID();
  readonly #redis: Redis;
  readonly #bus: Bus;
  readonly #secrets: SecretBox;
  readonly #url: () => string;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Devices whose agents are connected to other nodes. */
  readonly #elsewhere = new Map<string, Location & { expiresAt: number }>();
  readonly #mine = new Set<string>();
  readonly #wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, clientTracking: false });
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: () => void;

  constructor(options: { redis: Redis; bus: Bus; secrets: SecretBox; url: () => string; logger: Logger; ttlMs: number; now: () => number }) {
    this.#redis = options.redis;
    this.#bus = options.bus;
    this.#secrets = options.secrets;
    this.#url = options.url;
    this.#logger = options.logger;
    this.#ttlMs = options.ttlMs;
    this.#now = options.now;
    this.#unsubscribe = this.#bus.subscribe((message) => {
      if (message.type !== 'custom' || message.channel !== PRESENCE_CHANNEL) return;
      const p = message.payload as { id: string; node: string; url: string; online: boolean };
      if (p.node === this.node) return;
      if (p.online) this.#elsewhere.set(p.id, { node: p.node, url: p.url, expiresAt: this.#now() + this.#ttlMs });
      else if (this.#elsewhere.get(p.id)?.node === p.node) this.#elsewhere.delete(p.id);
    });
    // Refresh our records before they expire, and re-read everyone's (a missed message heals here).
    this.#timer = setInterval(() => void this.#refresh().catch((err: unknown) => this.#logger.warn({ err }, 'device presence refresh failed')), this.#ttlMs / 3);
    this.#timer.unref();
    void this.#refresh().catch(() => {});
  }

  /** An agent connected to this node. */
  announce(id: string): void {
    this.#mine.add(id);
    this.#elsewhere.delete(id);
    const location: Location = { node: this.node, url: this.#url() };
    void this.#redis
      .set(KEY(id), JSON.stringify(location), 'PX', this.#ttlMs)
      .then(() => this.#bus.publish({ type: 'custom', channel: PRESENCE_CHANNEL, payload: { id, ...location, online: true } }))
      .catch((err: unknown) => this.#logger.warn({ err, deviceId: id }, 'cannot record device presence'));
  }

  /** An agent left this node. */
  withdraw(id: string): void {
    this.#mine.delete(id);
    void this.#redis
      .eval(RELEASE, 1, KEY(id), JSON.stringify({ node: this.node, url: this.#url() }))
      .then(() => this.#bus.publish({ type: 'custom', channel: PRESENCE_CHANNEL, payload: { id, node: this.node, url: this.#url(), online: false } }))
      .catch((err: unknown) => this.#logger.warn({ err, deviceId: id }, 'cannot clear device presence'));
  }

  /** Whether the device's agent is connected to another node. */
  isOnlineElsewhere(id: string): boolean {
    const entry = this.#elsewhere.get(id);
    return entry !== undefined && entry.expiresAt > this.#now();
  }

  /** A link to a device whose agent another node holds, or undefined. */
  async remoteLink(id: string, userName: string): Promise<AgentLink | undefined> {
    let location: Location | undefined = this.isOnlineElsewhere(id) ? this.#elsewhere.get(id) : undefined;
    if (location === undefined) {
      const text = await this.#redis.get(KEY(id));
      location = text === null ? undefined : (JSON.parse(text) as Location);
    }
    if (location === undefined || location.node === this.node) return undefined;
    const target = location;
    return { deviceId: id, open: () => this.#dial(target, id, userName) };
  }

  /** Node-to-node credential for one relay: the device, the user, an expiry, a MAC under the shared secret key. */
  #token(id: string, userName: string): string {
    const exp = this.#now() + RELAY_TOKEN_TTL_MS;
    const body = Buffer.from(JSON.stringify({ id, user: userName, exp })).toString('base64url');
    return `${body}.${this.#secrets.mac('device relay', body)}`;
  }

  #dial(location: Location, id: string, userName: string): DeviceStream {
    const url = `${location.url.replace(/^http/, 'ws')}${RELAY_PATH.replace(':id', encodeURIComponent(id))}`;
    const ws = new WebSocket(url, { headers: { [RELAY_HEADER]: this.#token(id, userName) }, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE });
    const stream = createWebSocketStream(ws) as DeviceStream;
    stream.on('error', () => {});
    ws.on('unexpected-response', (_req, res) => {
      stream.closeReason = `the gateway node holding its agent refused the relay (HTTP ${res.statusCode})`;
      res.resume();
      stream.destroy();
    });
    ws.on('close', (_code, reason) => {
      const text = reason.toString('utf8');
      if (text !== '') stream.closeReason ??= text;
    });
    return stream;
  }

  /** `GET /api/internal/devices/{id}/relay` from another node: bridge its socket to a new stream of the local agent. */
  handleRelay(req: IncomingMessage, socket: Duplex, head: Buffer, id: string, local: AgentLink | undefined): void {
    const user = this.#verify(req.headers[RELAY_HEADER], id);
    if (local === undefined) throw new PortcullisError(404, 'device_offline', 'The device is not connected to this node.');
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const device = local.open();
      const peer = createWebSocketStream(ws);
      peer.on('error', () => device.destroy());
      device.on('error', () => {});
      device.pipe(peer);
      peer.pipe(device);
      device.once('close', () => {
        if (ws.readyState === WebSocket.OPEN) ws.close(1000, (device.closeReason ?? '').slice(0, 120));
      });
      ws.once('close', () => device.destroy());
      this.#logger.info({ deviceId: id, user }, 'relaying a terminal for another node');
    });
  }

  #verify(header: string | string[] | undefined, id: string): string {
    const refuse = () => new PortcullisError(401, 'relay_refused', 'Not a valid relay request from a node of this cluster.');
    if (typeof header !== 'string') throw refuse();
    const [body, mac] = header.split('.');
    if (!body || !mac) throw refuse();
    const expected = Buffer.from(this.#secrets.mac('device relay', body));
    const given = Buffer.from(mac);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw refuse();
    let claims: { id?: unknown; user?: unknown; exp?: unknown };
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      throw refuse();
    }
    if (claims.id !== id || typeof claims.user !== 'string' || typeof claims.exp !== 'number' || claims.exp < this.#now()) throw refuse();
    return claims.user;
  }

  async #refresh(): Promise<void> {
    const location = JSON.stringify({ node: this.node, url: this.#url() });
    for (const id of this.#mine) await this.#redis.set(KEY(id), location, 'PX', this.#ttlMs);
    const seen = new Map<string, Location & { expiresAt: number }>();
    let cursor = '0';
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', KEY('*'), 'COUNT', 500);
      cursor = next;
      if (keys.length === 0) continue;
      const values = await this.#redis.mget(...keys);
      keys.forEach((key, i) => {
        const text = values[i];
        if (!text) return;
        const loc = JSON.parse(text) as Location;
        if (loc.node !== this.node) seen.set(key.slice(KEY('').length), { ...loc, expiresAt: this.#now() + this.#ttlMs });
      });
    } while (cursor !== '0');
    this.#elsewhere.clear();
    for (const [id, loc] of seen) this.#elsewhere.set(id, loc);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#unsubscribe();
    const location = JSON.stringify({ node: this.node, url: this.#url() });
    await Promise.all([...this.#mine].map((id) => this.#redis.eval(RELEASE, 1, KEY(id), location).catch(() => 0)));
    this.#mine.clear();
  }
}
