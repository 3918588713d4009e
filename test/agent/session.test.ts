// Tier: integration. Real agent in-process, real SSH over a real WebSocket, real PTYs and
// the agent user's real login shell; only the gateway is a stand-in (harness.ts).
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, silentLogger } from '../../src/agent/index.ts';
import { generateSshEd25519Key, ssh2 } from '../../src/protocol/index.ts';
import { FakeGateway, execCommand, openShell, processGone, waitUntil } from './harness.ts';

let gw: FakeGateway;
let agent: Agent;
let dir: string;
let deviceId: string;

beforeAll(async () => {
  gw = await FakeGateway.start();
  dir = await mkdtemp(path.join(os.tmpdir(), 'pc-agent-'));
  agent = new Agent({
    server: gw.url,
    enrollToken: gw.addToken('local'),
    stateDir: path.join(dir, 'state'),
    logger: silentLogger,
    killGraceMs: 300,
    handshakeTimeoutMs: 1_000,
    backoff: { baseMs: 20, capMs: 200 },
  });
  await agent.start();
  deviceId = agent.deviceId!;
  await gw.waitForAgent(deviceId);
});

afterAll(async () => {
  await agent?.stop();
  await gw?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('terminal sessions over the device WebSocket', () => {
  it('runs a command and returns its output', async () => {
    const { client } = await gw.ssh(deviceId);
    const r = await execCommand(client, 'echo hello from $(whoami)');
    expect(r.stdout.trim()).toBe(`hello from ${os.userInfo().username}`);
    expect(r.code).toBe(0);
    client.end();
  });

  it('reports the exit status', async () => {
    const { client } = await gw.ssh(deviceId);
    expect((await execCommand(client, 'exit 7')).code).toBe(7);
    expect((await execCommand(client, 'exit 7', { pty: { term: 'xterm', cols: 80, rows: 24 } })).code).toBe(7);
    client.end();
  });

  it('reports a killing signal as exit-signal', async () => {
    const { client } = await gw.ssh(deviceId);
    const r = await execCommand(client, 'kill -TERM $$', { pty: { term: 'xterm', cols: 80, rows: 24 } });
    expect(r.signal).toBe('SIGTERM');
    client.end();
  });

  it('presents the host key generated at enrollment', async () => {
    const { client, hostKeySeen } = await gw.ssh(deviceId);
    const stored = await readFile(path.join(dir, 'state', 'ssh_host_ed25519_key'), 'utf8');
    const parsed = ssh2.utils.parseKey(stored);
    if (parsed instanceof Error) throw parsed;
    expect(hostKeySeen()).toBe(parsed.getPublicSSH().toString('base64'));
    expect(gw.device(deviceId).hostKey).toBe(`ssh-ed25519 ${hostKeySeen()}`);
    client.end();
  });

  it('starts the login shell in a PTY and honours window-change', async () => {
    const { client } = await gw.ssh(deviceId);
    const sh = await openShell(client, { term: 'xterm-256color', cols: 80, rows: 24 });
    sh.channel.write('stty size; echo "TERM=$TERM USER=$PORTCULLIS_USER"\n');
    await sh.waitFor(/24 80/);
    await sh.waitFor(/TERM=xterm-256color USER=alice/);
    sh.channel.setWindow(40, 132, 0, 0);
    sh.channel.write('stty size\n');
    await sh.waitFor(/40 132/);
    // Absurd sizes are clamped, not passed to the kernel or refused.
    sh.channel.setWindow(99999, 0, 0, 0);
    sh.channel.write('stty size\n');
    await sh.waitFor(/1000 1\r?\n/);
    sh.channel.write('exit 3\n');
    const [code] = (await once(sh.channel, 'exit')) as [number];
    expect(code).toBe(3);
    client.end();
  });

  it('carries two concurrent sessions on one device', async () => {
    const a = await gw.ssh(deviceId, { username: 'alice' });
    const b = await gw.ssh(deviceId, { username: 'bob' });
    expect(a.stream.id).not.toBe(b.stream.id);
    const [ra, rb] = await Promise.all([
      execCommand(a.client, 'sleep 0.2; echo A-$PORTCULLIS_USER'),
      execCommand(b.client, 'sleep 0.2; echo B-$PORTCULLIS_USER'),
    ]);
    expect(ra.stdout.trim()).toBe('A-alice');
    expect(rb.stdout.trim()).toBe('B-bob');
    a.client.end();
    b.client.end();
  });

  it('refuses a client key other than the gateway key', async () => {
    const other = generateSshEd25519Key();
    await expect(gw.ssh(deviceId, { privateKey: other.private })).rejects.toThrow(/authentication methods failed/);
  });

  it('drops a connection after 6 failed authentications', async () => {
    const keys = Array.from({ length: 20 }, () => generateSshEd25519Key().private);
    const stream = gw.device(deviceId).mux!.open();
    const client = new ssh2.Client();
    let attempts = 0;
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.on('error', () => {});
    client.connect({
      sock: stream,
      username: 'mallory',
      hostVerifier: () => true,
      authHandler: (_methods, _partial, next) => {
        if (attempts >= keys.length) return next(false as never);
        next({ type: 'publickey', username: 'mallory', key: keys[attempts++]! });
      },
    });
    await closed;
    // 6 refusals, plus at most the attempt already in flight when the server hung up.
    expect(attempts).toBeGreaterThanOrEqual(6);
    expect(attempts).toBeLessThanOrEqual(7);
  });

  it('refuses a host key other than the pinned one (gateway side check)', async () => {
    const other = generateSshEd25519Key();
    await expect(gw.ssh(deviceId, { hostKey: other.public })).rejects.toThrow(/host/i);
  });

  it('ends the whole session, background jobs included, when the channel closes', async () => {
    const { client } = await gw.ssh(deviceId);
    const sh = await openShell(client);
    // An interactive shell puts a background job in a process group of its own.
    sh.channel.write('sleep 1000 & echo "JOB=$!"; echo "SHELL=$$"\n');
    const job = Number((await sh.waitFor(/JOB=(\d+)/))[1]);
    const shell = Number((await sh.waitFor(/SHELL=(\d+)/))[1]);
    expect(await processGone(job)).toBe(false);
    sh.channel.close();
    await waitUntil(async () => (await processGone(job)) && (await processGone(shell)), 3_000, 'session processes to end');
    client.end();
    await waitUntil(() => agent.stats().sessions === 0, 2_000, 'session bookkeeping');
  });

  it('ends a command run without a PTY when the connection closes', async () => {
    const { client } = await gw.ssh(deviceId);
    const pid = await new Promise<number>((resolve, reject) =>
      client.exec('echo "PID=$$"; sleep 1000 & wait', (err, ch) => {
        if (err) return reject(err);
        let out = '';
        ch.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /PID=(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
      }),
    );
    expect(await processGone(pid)).toBe(false);
    client.end();
    await waitUntil(() => processGone(pid), 3_000, 'command to end');
  });

  it('kills processes that ignore SIGHUP after the grace period', async () => {
    const { client } = await gw.ssh(deviceId);
    const sh = await openShell(client);
    sh.channel.write(`sh -c 'trap "" HUP; echo "STUBBORN=$$"; exec sleep 1000'\n`);
    const pid = Number((await sh.waitFor(/STUBBORN=(\d+)/))[1]);
    const closed = Date.now();
    client.end();
    await waitUntil(() => processGone(pid), 3_000, 'stubborn process to be killed');
    // SIGHUP alone could not do it: SIGKILL came after the 300 ms grace.
    expect(Date.now() - closed).toBeGreaterThanOrEqual(250);
  });

  it('stops taking input the program does not read (back-pressure towards the gateway)', async () => {
    const { client } = await gw.ssh(deviceId);
    const channel = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec('stty raw -echo; echo READY; exec sleep 1000', { pty: { term: 'xterm', cols: 80, rows: 24 } }, (err, ch) =>
        err ? reject(err) : resolve(ch),
      ),
    );
    let out = '';
    channel.on('data', (d: Buffer) => (out += d.toString()));
    await waitUntil(() => out.includes('READY'), 3_000, 'READY');
    const total = 16 * 1024 * 1024;
    for (let sent = 0; sent < total; sent += 64 * 1024) channel.write(Buffer.alloc(64 * 1024, 0x61));
    await new Promise((r) => setTimeout(r, 1_000));
    // Bounded by the agent's input high-water mark plus SSH windows and buffers (~5 MiB),
    // not by what the gateway wanted to send.
    expect(channel.writableLength).toBeGreaterThan(total - 8 * 1024 * 1024);
    client.end();
  });

  it('stops reading the PTY while the gateway does not read (back-pressure)', async () => {
    const { client } = await gw.ssh(deviceId);
    const channel = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec('echo "PID=$$"; exec head -c 2000000000 /dev/zero', { pty: { term: 'xterm', cols: 80, rows: 24 } }, (err, ch) =>
        err ? reject(err) : resolve(ch),
      ),
    );
    let text = '';
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer) => {
        text += d.toString('latin1');
        if (/PID=\d+/.test(text)) {
          channel.off('data', onData);
          channel.pause();
          resolve();
        }
      };
      channel.on('data', onData);
    });
    const pid = Number(/PID=(\d+)/.exec(text)![1]);
    const written = async () => Number(/wchar: (\d+)/.exec(await readFile(`/proc/${pid}/io`, 'utf8'))![1]);
    // The writer fills the pipeline (PTY buffer, SSH window, socket buffers), then blocks.
    let w1 = -1;
    let w2 = await written();
    await waitUntil(async () => {
      await new Promise((r) => setTimeout(r, 300));
      [w1, w2] = [w2, await written()];
      return w1 === w2;
    }, 8_000, 'the writer to block');
    expect(w2).toBeLessThan(32 * 1024 * 1024);
    channel.resume();
    await waitUntil(async () => (await written()) > w2 + 4 * 1024 * 1024, 5_000, 'writer to continue');
    client.end();
    await waitUntil(() => processGone(pid), 3_000, 'writer to be killed');
  });
});
