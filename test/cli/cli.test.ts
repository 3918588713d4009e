// End-to-end tests of the `portcullis` command as an operator runs it (real processes).
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.ts';
import { basic } from '../helpers/gateway.ts';

const BIN = path.resolve('bin/portcullis.js');
const dataDir = mkdtempSync(path.join(tmpdir(), 'portcullis-cli-'));
const env = { ...process.env, PORTCULLIS_DATA_DIR: dataDir, PORTCULLIS_ADMIN_PASSWORD: 'cli-admin-pw', PORTCULLIS_LOG_LEVEL: 'warn' };

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function cli(args: string[], extraEnv: Record<string, string> = {}, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

describe('portcullis CLI', () => {
  it('manages users and groups against the store', async () => {
    expect((await cli(['users', 'add', 'alice', '--password-stdin', '--role', 'ROLE_WONDERLAND'], {}, 'alice-pw\n')).code).toBe(0);
    expect((await cli(['groups', 'add', 'ops', '--role', 'ROLE_OPS', '--member', 'alice'])).code).toBe(0);
    const list = await cli(['users', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^alice\tROLE_USER,ROLE_WONDERLAND$/m);
    expect((await cli(['users', 'set', 'alice', '--roles', 'ROLE_A,ROLE_B'])).stdout).toMatch(/ROLE_A, ROLE_B, ROLE_USER/);
    const duplicate = await cli(['users', 'add', 'alice']);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(/already exists\. \(user_exists\)/);
    expect((await cli(['groups', 'list'])).stdout).toMatch(/^ops\troles=ROLE_OPS\tmembers=alice$/m);
  });

  it('exits 2 with a message naming the key on bad configuration', async () => {
    const result = await cli(['users', 'list'], { PORTCULLIS_LISTEN: 'nope' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/invalid configuration at "listen"/);
  });

  it('exits 2 on an unknown command or option', async () => {
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['users', 'add', 'x', '--nope'])).code).toBe(2);
  });

  it('serves, logs the chosen URL, sees CLI-made users, and rotates keys', async () => {
    const child = spawn(process.execPath, [BIN, 'serve'], { env: { ...env, PORTCULLIS_LISTEN: '127.0.0.1:0', PORTCULLIS_LOG_LEVEL: 'info' } });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
      });
      const me = await fetch(`${url}/api/me`, { headers: { authorization: basic('alice', 'alice-pw') } });
      expect(me.status).toBe(200);
      const before = (await (await fetch(`${url}/.well-known/jwks.json`)).json()).keys.length;
      expect(before).toBe(1);
      const rotated = await cli(['keys', 'rotate']);
      expect(rotated.code).toBe(0);
      const kid = /new signing key (\S+);/.exec(rotated.stdout)![1];
      // The store now has the new key current and the old one retired (still published).
      const store = await openStore({ database: `sqlite:${path.join(dataDir, 'portcullis.db')}`, dataDir });
      try {
        const keys = await store.db.selectFrom('signing_keys').select(['kid', 'retired_at']).execute();
        expect(keys).toHaveLength(2);
        expect(keys.find((k) => k.retired_at === null)?.kid).toBe(kid);
      } finally {
        await store.close();
      }
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

});
