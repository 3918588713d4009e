/**
 * The web UI has its own tsconfig (DOM types, Preact JSX) outside the project's main
 * type-check; this keeps it strict-clean in every test run.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

test('the web UI type-checks (web/tsconfig.json)', { timeout: 60_000 }, async () => {
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', 'web/tsconfig.json'], { cwd: ROOT }).then(
    () => ({ ok: true, output: '' }),
    (err: { stdout?: string; stderr?: string }) => ({ ok: false, output: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
  );
  expect(result.output).toBe('');
  expect(result.ok).toBe(true);
});
