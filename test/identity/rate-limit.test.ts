import { describe, expect, it } from 'vitest';
import { FailureLimiter } from '../../src/identity/index.ts';

describe('FailureLimiter', () => {
  it('limits after N failures in a window, and forgets after it', () => {
    let now = 0;
    const limiter = new FailureLimiter(2, 1_000, () => now);
    limiter.fail('k');
    expect(limiter.retryAfter('k')).toBe(0);
    limiter.fail('k');
    expect(limiter.retryAfter('k')).toBe(1);
    now = 1_001;
    expect(limiter.retryAfter('k')).toBe(0);
  });

  it('stays bounded under a flood of distinct keys', () => {
    const limiter = new FailureLimiter(5, 60_000, () => 0);
    for (let i = 0; i < 150_000; i++) limiter.fail(`made-up-name-${i}`);
    expect(limiter.size).toBeLessThanOrEqual(100_000);
    // The newest keys are the ones kept.
    limiter.fail('made-up-name-149999');
    expect(limiter.size).toBeLessThanOrEqual(100_000);
  });
});
