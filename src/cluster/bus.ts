import { EventEmitter } from 'node:events';

/**
 * Events that every gateway node must see: a session or a user's access ended, or
 * cached identity data went stale. With one node the bus is in-process; with Redis
 * configured the same messages travel to all nodes (see redis-bus.ts).
 */
export type BusMessage =
  | { type: 'session-ended'; sessionId: string; userName: string; reason: string }
  | { type: 'user-ended'; userName: string; reason: string }
  | { type: 'user-changed'; userName: string }
  | { type: 'settings-changed'; key: string }
  | { type: 'keys-changed' }
  | { type: 'custom'; channel: string; payload: unknown };

export interface Bus {
  publish(message: BusMessage): Promise<void>;
  subscribe(listener: (message: BusMessage) => void): () => void;
  close(): Promise<void>;
}

/** Delivers to listeners of this process only (single-node gateways, and tests). */
export class LocalBus implements Bus {
  readonly #emitter = new EventEmitter().setMaxListeners(0);

  async publish(message: BusMessage): Promise<void> {
    this.deliver(message);
  }

  /** Hands a message to local listeners; a throwing listener cannot stop the others. */
  deliver(message: BusMessage): void {
    for (const listener of this.#emitter.listeners('message')) {
      try {
        (listener as (m: BusMessage) => void)(message);
      } catch {
        // A listener's own failure is its concern; the bus keeps delivering.
      }
    }
  }

  subscribe(listener: (message: BusMessage) => void): () => void {
    this.#emitter.on('message', listener);
    return () => this.#emitter.off('message', listener);
  }

  async close(): Promise<void> {
    this.#emitter.removeAllListeners();
  }
}
