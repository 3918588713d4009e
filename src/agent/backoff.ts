export interface BackoffOptions {
  /** First retry window (ms). */
  baseMs: number;
  /** Largest retry window (ms). */
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 30_000 };

/**
 * "Full jitter" back-off: a uniformly random delay in [0, min(cap, base·2^attempt)).
 * Spreads a fleet of agents reconnecting to a restarted gateway over the whole window
 * instead of in synchronized waves.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const exp = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * exp);
}
