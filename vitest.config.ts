import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

// Terminal tests start real login shells. Under the developer's own HOME those run the
// developer's profile, which can be slow or stall (a version manager's rehash lock left
// behind by a shell killed mid-start-up hangs every later login shell). Tests get an
// empty HOME of their own.
const home = mkdtempSync(path.join(tmpdir(), 'portcullis-test-home-'));

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    env: { HOME: home },
    // Real servers, real shells and a real browser: generous, but bounded.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: more parallel files only add contention and flaky timings.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
