import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { LocalBus, type Bus, type BusMessage } from './bus.ts';

const CHANNEL = 'portcullis:bus';

/**
 * Fans bus messages out to every node through Redis pub/sub. A node delivers its own
 * messages locally at once (not waiting for the round trip) and ignores their echo.
 */
export class RedisBus implements Bus {
  readonly #local = new LocalBus();
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #node = randomUUID();

  private constructor(url: string) {
    this.#pub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    this.#sub = new Redis(url, { lazyConnect: true });
    this.#sub.on('message', (_channel: string, text: string) => {
      let envelope: { node: string; message: BusMessage };
      try {
        envelope = JSON.parse(text);
      } catch {
        return;
      }
      if (envelope.node !== this.#node) this.#local.deliver(envelope.message);
    });
    // ioredis reconnects by itself; errors are reported through failed publishes.
    this.#pub.on('error', () => {});
    this.#sub.on('error', () => {});
  }

  static async connect(url: string): Promise<RedisBus> {
    const bus = new RedisBus(url);
    await bus.#pub.connect();
    await bus.#sub.connect();
    await bus.#sub.subscribe(CHANNEL);
    return bus;
  }

  async publish(message: BusMessage): Promise<void> {
    this.#local.deliver(message);
    await this.#pub.publish(CHANNEL, JSON.stringify({ node: this.#node, message }));
  }

  subscribe(listener: (message: BusMessage) => void): () => void {
    return this.#local.subscribe(listener);
  }

  /** The publishing connection, for other shared state (rate limits, device routing). */
  get redis(): Redis {
    return this.#pub;
  }

  async close(): Promise<void> {
    await this.#local.close();
    this.#sub.disconnect();
    this.#pub.disconnect();
  }
}
