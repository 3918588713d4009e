// Tier: end-to-end. The agent as its own OS process (`node src/agent/main.ts`, what
// `portcullis agent` runs), against the stand-in gateway.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeGateway, execCommand, openShell, processGone, waitUntil } from './harness.ts';

const entry = fileURLToPath(new URL('../../src/agent/main.ts', import.meta.url));
let gw: FakeGateway;
let dir: string;

beforeAll(async () => {
  gw = await FakeGateway.start();
  dir = await mkdtemp(path.join(os.tmpdir(), 'pc-proc-'));
});

afterAll(async () => {
  await gw.stop();
  await rm(dir, { recursive: true, force: true });
});

function runAgent(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string } {
  const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, stdout: () => out, stderr: () => err };
}

describe('portcullis agent as a process', () => {
  it('enrolls, serves a shell, and on SIGTERM ends its sessions and exits 0', async () => {
    const stateDir = path.join(dir, 'state');
    const agent = runAgent(['--server', gw.url, '--enroll', gw.addToken('proc'), '--state-dir', stateDir]);
    try {
      await waitUntil(() => /enrolled as device "proc"/.test(agent.stdout()), 10_000, 'enrollment message');
      const deviceId = /\(([0-9a-f-]{36})\)/.exec(agent.stdout())![1]!;
      await gw.waitForAgent(deviceId);
      const { client } = await gw.ssh(deviceId);
      const sh = await openShell(client);
      sh.channel.write('echo "SHELL=$$"\n');
      const pid = Number((await sh.waitFor(/SHELL=(\d+)/))[1]);
      const exited = once(agent.child, 'exit');
      agent.child.kill('SIGTERM');
      const [code] = (await exited) as [number];
      expect(code).toBe(0);
      expect(await processGone(pid)).toBe(true);
      expect(agent.stderr()).toMatch(/"msg":"gateway user authenticated"/);
      client.end();

      // Restarted without --enroll, it reconnects with the stored credentials.
      const again = runAgent(['--server', gw.url, '--state-dir', stateDir]);
      await gw.waitForAgent(deviceId, 2);
      const second = await gw.ssh(deviceId);
      expect((await execCommand(second.client, 'echo again')).stdout.trim()).toBe('again');
      second.client.end();
      again.child.kill('SIGTERM');
      expect(((await once(again.child, 'exit')) as [number])[0]).toBe(0);
    } finally {
      agent.child.kill('SIGKILL');
    }
  });

  it('exits 1 with a clear message when the token is refused', async () => {
    const agent = runAgent(['--server', gw.url, '--enroll', 'not-a-token', '--state-dir', path.join(dir, 'refused')]);
    const [code] = (await once(agent.child, 'exit')) as [number];
    expect(code).toBe(1);
    expect(agent.stderr()).toMatch(/portcullis agent: the gateway refused the enrollment: unknown enrollment token/);
  });
});
