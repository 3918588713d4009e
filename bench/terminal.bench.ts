// `npm run bench:terminal`: the browser terminal's whole path (PTY → SSH over the device
// WebSocket → gateway → browser WebSocket) against plain `ssh -tt` to a local OpenSSH
// server, on the same machine in the same run:
//   - output throughput of `head -c 200000000 /dev/zero | base64`;
//   - keystroke echo latency (500 single keystrokes to `cat`), p50/p99;
//   - time from opening a terminal to the first prompt byte;
//   - gateway RSS with 1,000 connected idle agents (simulated in this process), and with
//     100 open sessions (two real agents).
// The gateway and the agents run as their own processes (`portcullis serve`,
// `portcullis agent`); this process plays the browsers. sshd runs on a loopback port with
// its own configuration and keys in a temporary directory, in a private mount namespace
// (its privilege-separation directory is bind-mounted from there), so the system's SSH
// setup is never touched. Environment: BENCH_ROUNDS (3), BENCH_BYTES (200000000),
// BENCH_AGENTS (1000), BENCH_SESSIONS (100).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { agentEndpoints, generateSshEd25519Key } from '../src/protocol/index.ts';
import { median, percentile, rssBytes } from './lib/procs.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BYTES = Number(process.env.BENCH_BYTES ?? 200_000_000);
const IDLE_AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 100);
const KEYSTROKES = 500;
const OPENS = 20;
const PASSWORD = 'bench-terminal-password';
const SSHD = '/usr/sbin/sshd';
/** Set to a directory to write CPU profiles of the gateway and the agents there. */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
const nodeFlags = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];

const here = path.dirname(new URL(import.meta.url).pathname);
const BIN = path.resolve(here, '../bin/portcullis.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'portcullis-bench-terminal-'));
// Both paths start the same login shell with the same clean HOME, so the machine's own
// shell start-up files (which can take half a second) do not swamp the open-to-prompt time.
const home = path.join(tmp, 'home');
mkdirSync(home);
const children: ChildProcess[] = [];
const auth = 'Basic ' + Buffer.from(`admin:${PASSWORD}`).toString('base64');
const COMMAND = `head -c ${BYTES} /dev/zero | base64`;

// ---------------------------------------------------------------- helpers

/** Busy CPU time of the whole machine so far (ms, all cores). */
function machineCpu(): { busy: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3]! + fields[4]!;
  return { busy: ((fields.reduce((a, b) => a + b, 0) - idle) * 1000) / 100 };
}

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  return port;
}

function start(args: string[], env: NodeJS.ProcessEnv, stderr: 'ignore' | 'inherit' = 'inherit'): ChildProcess {
  const child = spawn(args[0]!, args.slice(1), { env, stdio: ['ignore', 'ignore', stderr] });
  children.push(child);
  return child;
}

async function until(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function api<T>(base: string, method: string, p: string, body?: unknown): Promise<T> {
  const res = await fetch(base + p, {
    method,
    headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const sshVersion = execFileSync('sh', ['-c', 'ssh -V 2>&1'], { encoding: 'utf8' }).trim();
  return `${cpu}, ${cpus().length} cores, ${Math.round(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) / 1024 / 1024)} GiB, Linux, Node ${process.version}, ${sshVersion}`;
}

/** A terminal as a browser holds it: binary frames are bytes, text frames control. */
class Browser {
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  onBytes: ((data: Buffer) => void) | undefined;
  readonly t0 = performance.now();
  firstByteAt: number | undefined;

  constructor(base: string, deviceId: string) {
    this.ws = new WebSocket(`${base.replace('http', 'ws')}/api/devices/${deviceId}/terminal`, { headers: { authorization: auth }, perMessageDeflate: false });
    this.ws.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_q, res) => reject(new Error(`terminal refused: ${res.statusCode}`)));
    });
    this.ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        const control = JSON.parse(String(data)) as { type: string; message?: string };
        if (control.type === 'error') console.error(`terminal error: ${control.message}`);
        return;
      }
      this.firstByteAt ??= performance.now();
      this.onBytes?.(data as Buffer);
    });
  }

  /** Resolves once `pattern` shows up in the output (scanning only a sliding tail). */
  waitFor(pattern: string, ms = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      let tail = '';
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}`)), ms);
      this.onBytes = (data) => {
        tail = (tail + data.toString('latin1')).slice(-(pattern.length + 4096));
        if (tail.includes(pattern)) {
          clearTimeout(timer);
          this.onBytes = undefined;
          resolve();
        }
      };
    });
  }

  send(text: string): void {
    this.ws.send(Buffer.from(text));
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = once(this.ws, 'close');
    this.ws.close();
    await closed;
  }
}

async function openShell(base: string, deviceId: string): Promise<Browser> {
  const b = new Browser(base, deviceId);
  await b.opened;
  b.send('PS1=READY-$((1+1))" "\n');
  await b.waitFor('READY-2 ');
  return b;
}

// ---------------------------------------------------------------- sshd

async function startSshd(): Promise<{ port: number; ssh: (args: string[]) => string[] }> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} not found: apt-get install -y openssh-server`);
  const dir = path.join(tmp, 'sshd');
  mkdirSync(path.join(dir, 'run'), { recursive: true });
  for (const name of ['host_key', 'client_key']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, name)]);
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'client_key.pub')));
  chmodSync(path.join(dir, 'client_key'), 0o600);
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${dir}/host_key`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'PrintMotd no',
      'PrintLastLog no',
      // The cipher the gateway negotiates with its agents.
      'Ciphers aes128-gcm@openssh.com',
      '',
    ].join('\n'),
  );
  // sshd insists on /run/sshd: give it one from our directory, in a mount namespace of its own.
  start(['unshare', '-m', 'sh', '-c', `mount --bind '${dir}/run' /run && mkdir -p /run/sshd && exec ${SSHD} -D -f '${dir}/sshd_config'`], process.env, 'ignore');
  const ssh = (args: string[]) => [
    '-i', `${dir}/client_key`, '-p', String(port),
    '-o', 'StrictHostKeyChecking=no', '-o', `UserKnownHostsFile=${dir}/known_hosts`, '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
    '-c', 'aes128-gcm@openssh.com',
    ...args,
  ];
  await until(() => {
    execFileSync('ssh', ssh(['127.0.0.1', 'true']), { stdio: 'ignore', timeout: 5_000 });
    return true;
  }, 10_000, 'sshd');
  return { port, ssh };
}

// ---------------------------------------------------------------- measurements

async function throughputGateway(base: string, deviceId: string): Promise<{ mbps: number; bytes: number }> {
  const b = await openShell(base, deviceId);
  let bytes = 0;
  let first = 0;
  let last = 0;
  const done = new Promise<void>((resolve) => {
    let tail = '';
    b.onBytes = (data) => {
      const now = performance.now();
      if (first === 0) first = now;
      last = now;
      bytes += data.length;
      tail = (tail + data.toString('latin1', Math.max(0, data.length - 64))).slice(-64);
      if (tail.includes('END-OF-RUN')) resolve();
    };
  });
  b.send(`${COMMAND}; echo END-OF-""RUN\n`);
  await done;
  await b.close();
  return { mbps: bytes / ((last - first) / 1000) / 1e6, bytes };
}

async function throughputSsh(ssh: (args: string[]) => string[]): Promise<{ mbps: number; bytes: number }> {
  const child = spawn('ssh', ssh(['-tt', '127.0.0.1', COMMAND]), { stdio: ['pipe', 'pipe', 'ignore'] });
  let bytes = 0;
  let first = 0;
  let last = 0;
  child.stdout!.on('data', (d: Buffer) => {
    const now = performance.now();
    if (first === 0) first = now;
    last = now;
    bytes += d.length;
  });
  await once(child, 'exit');
  return { mbps: bytes / ((last - first) / 1000) / 1e6, bytes };
}

/** Sends one keystroke at a time and waits for its echo; returns the round trips in ms. */
async function echoGateway(base: string, deviceId: string): Promise<number[]> {
  const b = await openShell(base, deviceId);
  b.send('cat\n');
  await sleep(300);
  const times: number[] = [];
  for (let i = 0; i < KEYSTROKES; i++) {
    const echoed = new Promise<void>((resolve) => {
      b.onBytes = (data) => {
        if (data.includes(0x78)) resolve();
      };
    });
    const t0 = performance.now();
    b.send('x');
    await echoed;
    times.push(performance.now() - t0);
  }
  b.onBytes = undefined;
  b.send('\x03');
  await b.close();
  return times;
}

async function echoSsh(ssh: (args: string[]) => string[]): Promise<number[]> {
  const child = spawn('ssh', ssh(['-tt', '127.0.0.1', 'cat']), { stdio: ['pipe', 'pipe', 'ignore'] });
  let onData: ((d: Buffer) => void) | undefined;
  child.stdout!.on('data', (d: Buffer) => onData?.(d));
  // Wait until cat runs: its echo of a first keystroke comes back.
  await new Promise<void>((resolve) => {
    onData = () => resolve();
    child.stdin!.write('x');
  });
  await sleep(300);
  const times: number[] = [];
  for (let i = 0; i < KEYSTROKES; i++) {
    const echoed = new Promise<void>((resolve) => {
      onData = (d) => {
        if (d.includes(0x78)) resolve();
      };
    });
    const t0 = performance.now();
    child.stdin!.write('x');
    await echoed;
    times.push(performance.now() - t0);
  }
  child.stdin!.write('\x03');
  child.kill();
  await once(child, 'exit');
  return times;
}

async function openToPromptGateway(base: string, deviceId: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < OPENS; i++) {
    const b = new Browser(base, deviceId);
    await b.opened;
    await until(() => b.firstByteAt !== undefined, 10_000, 'first byte');
    times.push(b.firstByteAt! - b.t0);
    await b.close();
  }
  return times;
}

async function openToPromptSsh(ssh: (args: string[]) => string[]): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < OPENS / 2; i++) {
    const t0 = performance.now();
    const child = spawn('ssh', ssh(['-tt', '127.0.0.1', `HOME='${home}' exec bash -l`]), { stdio: ['pipe', 'pipe', 'ignore'] });
    await once(child.stdout!, 'data');
    times.push(performance.now() - t0);
    child.kill();
    await once(child, 'exit');
  }
  return times;
}

/** Devices enrolled as agents would be, for the simulated idle agents. */
async function enrollSimulated(base: string, n: number): Promise<Array<{ id: string; key: KeyObject }>> {
  const devices: Array<{ id: string; key: KeyObject }> = [];
  const hostKey = generateSshEd25519Key().public;
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, async (_, j) => {
        const { enrollment } = await api<{ enrollment: { token: string } }>(base, 'POST', '/api/admin/devices', { name: `sim-${i + j}` });
        const { publicKey, privateKey } = generateKeyPairSync('ed25519');
        const res = await fetch(`${base}/api/agent/enroll`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: enrollment.token, identityKey: publicKey.export({ format: 'jwk' }), hostKey, hostname: `sim-${i + j}`, version: 'bench' }),
        });
        const { deviceId } = (await res.json()) as { deviceId: string };
        devices.push({ id: deviceId, key: privateKey });
      }),
    );
  }
  return devices;
}

/** Idle agents as the gateway sees them: connected with a signed assertion, answering pings. */
async function connectSimulated(base: string, devices: Array<{ id: string; key: KeyObject }>): Promise<WebSocket[]> {
  const { audience, connectUrl } = agentEndpoints(base);
  const sockets: WebSocket[] = [];
  for (let i = 0; i < devices.length; i += 50) {
    await Promise.all(
      devices.slice(i, i + 50).map(async ({ id, key }) => {
        const iat = Math.floor(Date.now() / 1000);
        const token = await new SignJWT({ iss: id, sub: id, aud: audience, iat, exp: iat + 60, jti: randomUUID() })
          .setProtectedHeader({ alg: 'EdDSA', typ: 'portcullis-agent+jwt' })
          .sign(key);
        const ws = new WebSocket(connectUrl, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
        ws.on('error', () => {});
        await once(ws, 'open');
        sockets.push(ws);
      }),
    );
  }
  return sockets;
}

/** A gateway process of its own (fresh heap, own data directory) on a free port. */
async function startGatewayProcess(name: string, port?: number): Promise<{ base: string; pid: number; stop: () => Promise<void> }> {
  port ??= await freePort();
  const config = path.join(tmp, `${name}.yaml`);
  writeFileSync(
    config,
    [`listen: 127.0.0.1:${port}`, `dataDir: ${tmp}/${name}-data`, 'log:', '  level: warn', 'devices:', `  maxSessionsPerUser: ${SESSIONS + 10}`, ''].join('\n'),
  );
  const child = start([process.execPath, ...nodeFlags, BIN, 'serve', '--config', config], { ...process.env, PORTCULLIS_ADMIN_PASSWORD: PASSWORD });
  const base = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${base}/healthz`)).ok, 20_000, `gateway ${name}`);
  const stop = async () => {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  };
  return { base, pid: child.pid!, stop };
}

// ---------------------------------------------------------------- run

const fmt = (n: number, digits = 1) => n.toFixed(digits);

async function main(): Promise<void> {
  console.error(`terminal benchmark: ${machine()}`);
  const { base, pid: gatewayPid } = await startGatewayProcess('gateway');

  // Two real agents (the device protocol carries at most 64 sessions per agent).
  const agents: Array<{ id: string; pid: number }> = [];
  for (const name of ['bench-a', 'bench-b']) {
    const { device, enrollment } = await api<{ device: { id: string }; enrollment: { token: string } }>(base, 'POST', '/api/admin/devices', { name });
    const child = start([process.execPath, ...nodeFlags, BIN, 'agent', '--server', base, '--enroll', enrollment.token, '--state-dir', path.join(tmp, name), '--log-level', 'warn'], { ...process.env, HOME: home });
    agents.push({ id: device.id, pid: child.pid! });
  }
  for (const a of agents) await until(async () => (await api<{ online: boolean }>(base, 'GET', `/api/admin/devices/${a.id}`)).online, 20_000, 'agent online');
  const device = agents[0]!.id;
  for (const a of agents) await (await openShell(base, a.id)).close();
  const { ssh } = await startSshd();
  const results: string[] = [];

  // Memory first, while the gateway has done little else: the growth is what the
  // sessions (or connections) hold, not heap left over from throughput runs.
  await sleep(2_000);
  const rssBeforeSessions = rssBytes(gatewayPid);
  const browsers: Browser[] = [];
  for (let i = 0; i < SESSIONS; i += 10) {
    browsers.push(...(await Promise.all(Array.from({ length: Math.min(10, SESSIONS - i) }, (_, j) => openShell(base, agents[(i + j) % 2]!.id)))));
  }
  await sleep(2_000);
  const rssSessions = rssBytes(gatewayPid);
  const perSession = (rssSessions - rssBeforeSessions) / SESSIONS;
  console.error(`open sessions: ${SESSIONS}, gateway RSS ${fmt(rssBeforeSessions / 2 ** 20)} → ${fmt(rssSessions / 2 ** 20)} MiB`);
  await Promise.all(browsers.map((b) => b.close()));

  // Idle agents on a gateway process of their own. The devices are enrolled first, by an
  // earlier process on the same store, so the baseline is a fresh heap and the growth is
  // what the connections hold.
  const enrolling = await startGatewayProcess('idle-agents');
  const simulated = await enrollSimulated(enrolling.base, IDLE_AGENTS);
  await enrolling.stop();
  const idle = await startGatewayProcess('idle-agents', Number(new URL(enrolling.base).port));
  await connectSimulated(idle.base, simulated.slice(0, 1)).then((warm) => warm.forEach((ws) => ws.terminate()));
  await sleep(2_000);
  const rssBase = rssBytes(idle.pid);
  const sockets = await connectSimulated(idle.base, simulated.slice(1));
  await sleep(3_000);
  const rssAgents = rssBytes(idle.pid);
  const perAgent = (rssAgents - rssBase) / sockets.length;
  console.error(`idle agents: ${IDLE_AGENTS} connected, gateway RSS ${fmt(rssBase / 2 ** 20)} → ${fmt(rssAgents / 2 ** 20)} MiB`);
  for (const ws of sockets) ws.terminate();

  const openGw = await openToPromptGateway(base, device);
  const openSsh = await openToPromptSsh(ssh);
  console.error(`open to prompt: gateway p50 ${fmt(median(openGw))} ms, ssh p50 ${fmt(median(openSsh))} ms`);

  const echoGw = await echoGateway(base, device);
  const echoPlain = await echoSsh(ssh);
  console.error(`echo p50: gateway ${fmt(median(echoGw), 3)} ms, ssh ${fmt(median(echoPlain), 3)} ms`);

  const tpGw: number[] = [];
  const tpSsh: number[] = [];
  let gwCpu = 0;
  let agentCpu = 0;
  let outBytes = 0;
  let sshBytes = 0;
  let machineBusy = 0;
  let machineBusySsh = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const g0 = cpuMs(gatewayPid);
    const a0 = cpuMs(agents[0]!.pid);
    const m0 = machineCpu();
    const round = await throughputGateway(base, device);
    machineBusy += machineCpu().busy - m0.busy;
    tpGw.push(round.mbps);
    outBytes += round.bytes;
    gwCpu += cpuMs(gatewayPid) - g0;
    agentCpu += cpuMs(agents[0]!.pid) - a0;
    const m1 = machineCpu();
    const plain = await throughputSsh(ssh);
    tpSsh.push(plain.mbps);
    sshBytes += plain.bytes;
    machineBusySsh += machineCpu().busy - m1.busy;
    console.error(`round ${r + 1}: gateway ${fmt(tpGw.at(-1)!)} MB/s, ssh -tt ${fmt(tpSsh.at(-1)!)} MB/s`);
  }

  results.push(
    '| measure | through the gateway | plain `ssh -tt` | ratio / difference | target |',
    '| --- | --- | --- | --- | --- |',
    `| output throughput, \`${COMMAND.replace('|', '\\|')}\` (median of ${ROUNDS}) | ${fmt(median(tpGw))} MB/s | ${fmt(median(tpSsh))} MB/s | ${fmt(median(tpGw) / median(tpSsh), 2)}× | ≥ 0.8× |`,
    `| keystroke echo p50 (${KEYSTROKES} keys to \`cat\`) | ${fmt(median(echoGw), 3)} ms | ${fmt(median(echoPlain), 3)} ms | +${fmt(median(echoGw) - median(echoPlain), 3)} ms | ≤ +0.5 ms |`,
    `| keystroke echo p99 | ${fmt(percentile(echoGw, 99), 3)} ms | ${fmt(percentile(echoPlain, 99), 3)} ms | +${fmt(percentile(echoGw, 99) - percentile(echoPlain, 99), 3)} ms | |`,
    `| open to first prompt byte, p50 (p95) | ${fmt(median(openGw))} (${fmt(percentile(openGw, 95))}) ms | ${fmt(median(openSsh))} (${fmt(percentile(openSsh, 95))}) ms, connect included | | ≤ 150 ms |`,
    `| gateway RSS per idle connected agent (${IDLE_AGENTS}) | ${fmt(perAgent / 1024)} KiB | | | ≤ 40 KiB |`,
    `| gateway RSS per open session (${SESSIONS}) | ${fmt(perSession / 1024)} KiB | | | |`,
    '',
    `CPU per MB of output through the gateway: gateway ${fmt(gwCpu / (outBytes / 1e6), 2)} ms, agent ${fmt(agentCpu / (outBytes / 1e6), 2)} ms, whole machine ${fmt(machineBusy / (outBytes / 1e6), 2)} ms (plain \`ssh -tt\`: whole machine ${fmt(machineBusySsh / (sshBytes / 1e6), 2)} ms).`,
  );
  console.log(`\nMachine: ${machine()}; ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(results.join('\n'));
}

try {
  await main();
} finally {
  for (const child of children.reverse()) child.kill('SIGTERM');
  await sleep(PROFILE_DIR ? 3_000 : 500);
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
}
