/** Keys tracked at most: beyond it the oldest are forgotten (a flood of made-up names must not grow memory). */
const MAX_KEYS = 100_000;

/**
 * Counts failures per key in a fixed window. In memory: with several nodes each node
 * counts on its own, which still bounds guessing to (nodes × limit) per window.
 */
export class FailureLimiter {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { count: number; resetAt: number }>();

  constructor(limit: number, windowMs: number, now: () => number = Date.now) {
    this.#limit = limit;
    this.#windowMs = windowMs;
    this.#now = now;
  }

  /** Seconds until the key may try again, or 0 if it may try now. */
  retryAfter(key: string): number {
    const entry = this.#entries.get(key);
    if (!entry) return 0;
    const now = this.#now();
    if (entry.resetAt <= now) {
      this.#entries.delete(key);
      return 0;
    }
    return entry.count >= this.#limit ? Math.ceil((entry.resetAt - now) / 1000) : 0;
  }

  fail(key: string): void {
    const now = this.#now();
    const entry = this.#entries.get(key);
    if (!entry || entry.resetAt <= now) {
      this.#entries.delete(key);
      if (this.#entries.size >= MAX_KEYS) this.#sweep(now);
      this.#entries.set(key, { count: 1, resetAt: now + this.#windowMs });
    } else {
      entry.count += 1;
    }
  }

  reset(key: string): void {
    this.#entries.delete(key);
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#entries) if (entry.resetAt <= now) this.#entries.delete(key);
    // Still full: drop the oldest windows (insertion order) to make room.
    for (const key of this.#entries.keys()) {
      if (this.#entries.size < MAX_KEYS * 0.9) break;
      this.#entries.delete(key);
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}
