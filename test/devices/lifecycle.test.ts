// Tier: integration, plus one agent as its own OS process. Every way a terminal ends —
// either side going away, the user's access ending, the device changing, the gateway
// stopping — says why, and leaves nothing behind on the gateway or the device.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/index.ts';
import type { AdminDeviceView } from '../../src/devices/index.ts';
import { generateSshEd25519Key } from '../../src/protocol/index.ts';
import { basic } from '../helpers/gateway.ts';
import { TerminalClient, processGone, startDevicesGateway, waitUntil, type DevicesGateway, type TestAgent } from './helpers.ts';

let gw: DevicesGateway;
let lab: TestAgent;
let admin: Record<string, string>;
const dirs: string[] = [];

beforeAll(async () => {
  gw = await startDevicesGateway();
  admin = { authorization: gw.adminAuth };
  lab = await gw.addAgent('lab', { allowedRoles: ['ROLE_ADMIN', 'ROLE_OPS'] });
});

afterAll(async () => {
  await gw?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const released = () =>
  waitUntil(() => {
    const s = gw.stats();
    return s.terminals === 0 && s.streams === 0;
  }, 5_000, 'gateway resources released');

async function login(name: string, password: string): Promise<Record<string, string>> {
  const res = await fetch(`${gw.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: gw.url },
    body: JSON.stringify({ name, password }),
  });
  expect(res.status).toBe(200);
  return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, origin: gw.url };
}

describe('a terminal ends cleanly', () => {
  it('when the browser goes away: the shell and every gateway and agent resource are released', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    const pid = Number((await t.run('echo "pid=$$"', /pid=(\d+)/))[1]);
    expect(gw.stats()).toMatchObject({ terminals: 1, streams: 1 });
    t.ws.terminate();
    await released();
    await waitUntil(() => processGone(pid), 5_000, 'shell gone');
    await waitUntil(() => lab.agent.stats().sessions === 0 && lab.agent.stats().streams === 0, 5_000, 'agent sessions released');
  });

  it('when the device is offline: a clear error at once, never a hang', async () => {
    const { device } = await gw.createDevice('never-connected');
    const t = await TerminalClient.open(gw.url, device.id, admin);
    expect((await t.ended(2_000)).control).toEqual({ type: 'error', message: 'The device "never-connected" has not enrolled yet: run its enrollment command on it.' });
    const stopped = await gw.addAgent('stopped');
    await stopped.agent.stop();
    await waitUntil(async () => !(await gw.api<AdminDeviceView>('GET', `/api/admin/devices/${stopped.id}`)).body.online, 2_000, 'agent gone');
    const t2 = await TerminalClient.open(gw.url, stopped.id, admin);
    const end = await t2.ended(2_000);
    expect(end.control).toEqual({ type: 'error', message: 'The device "stopped" is offline: its agent is not connected to the gateway.' });
  });

  it('when the pinned host key does not match: refused with a clear message', async () => {
    const devices = gw.gateway.store.db.withTables<{ devices: { id: string; host_key: string | null } }>();
    const pinned = await devices.selectFrom('devices').select('host_key').where('id', '=', lab.id).executeTakeFirstOrThrow();
    // As if someone else answered for the device (or it was reinstalled without enrolling again).
    await devices.updateTable('devices').set({ host_key: generateSshEd25519Key().public }).where('id', '=', lab.id).execute();
    try {
      const t = await TerminalClient.open(gw.url, lab.id, admin);
      const end = await t.ended();
      expect(end.control).toMatchObject({ type: 'error' });
      expect((end.control as { message: string }).message).toMatch(/host key does not match the key pinned when it enrolled/);
      expect(t.output).toBe('');
      await released();
    } finally {
      await devices.updateTable('devices').set({ host_key: pinned.host_key }).where('id', '=', lab.id).execute();
    }
  });

  it('when the agent is killed mid-session: the browser is told, the gateway releases everything', async () => {
    const { device, enrollment } = await gw.createDevice('killed');
    const stateDir = mkdtempSync(path.join(tmpdir(), 'pc-life-'));
    dirs.push(stateDir);
    const child = spawn(process.execPath, [path.resolve('bin/portcullis.js'), 'agent', '--server', gw.url, '--enroll', enrollment.token, '--state-dir', stateDir], {
      stdio: 'ignore',
    });
    try {
      await waitUntil(async () => (await gw.api<AdminDeviceView>('GET', `/api/admin/devices/${device.id}`)).body.online, 15_000, 'agent process online');
      const t = await TerminalClient.open(gw.url, device.id, admin);
      const pid = Number((await t.run('echo "pid=$$"', /pid=(\d+)/))[1]);
      const before = gw.stats();
      expect(before.streams).toBeGreaterThanOrEqual(1);
      child.kill('SIGKILL');
      const end = await t.ended(3_000);
      expect(end.control).toMatchObject({ type: 'error' });
      expect((end.control as { message: string }).message).toMatch(/^The device went offline: its agent disconnected/);
      await released();
      expect(gw.stats().agents).toBe(before.agents - 1);
      // The PTY's master died with the agent: the kernel hangs up the shell.
      await waitUntil(() => processGone(pid), 5_000, 'orphaned shell gone');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe("a user's terminals close within 1 s when their access ends", () => {
  it('on logout, with the reason', async () => {
    expect((await gw.api('POST', '/api/admin/users', { name: 'olga', password: 'olga-password-1', roles: ['ROLE_OPS'] })).status).toBe(201);
    const cookie = await login('olga', 'olga-password-1');
    const t = await TerminalClient.open(gw.url, lab.id, cookie);
    await t.run('echo "who=$PORTCULLIS_USER"', /who=olga/);
    const res = await fetch(`${gw.url}/api/auth/logout`, { method: 'POST', headers: cookie });
    const at = Date.now();
    expect(res.status).toBe(204);
    const end = await t.ended(1_000);
    expect(end.at - at).toBeLessThan(1_000);
    expect(end.control).toEqual({ type: 'error', message: 'Your session ended: you signed out.' });
    await released();
  });

  it('when the user is deleted', async () => {
    expect((await gw.api('POST', '/api/admin/users', { name: 'dan', password: 'dan-password-1', roles: ['ROLE_OPS'] })).status).toBe(201);
    const t = await TerminalClient.open(gw.url, lab.id, { authorization: basic('dan', 'dan-password-1') });
    await t.run('echo up', /up/);
    const at = Date.now();
    expect((await gw.api('DELETE', '/api/admin/users/dan')).status).toBe(204);
    const end = await t.ended(1_000);
    expect(end.at - at).toBeLessThan(1_000);
    expect(end.control).toEqual({ type: 'error', message: 'Your access ended: your account was deleted.' });
  });

  it('when the user loses the role the device requires', async () => {
    expect((await gw.api('POST', '/api/admin/users', { name: 'rita', password: 'rita-password-1', roles: ['ROLE_OPS'] })).status).toBe(201);
    const t = await TerminalClient.open(gw.url, lab.id, { authorization: basic('rita', 'rita-password-1') });
    await t.run('echo up', /up/);
    expect((await gw.api('PATCH', '/api/admin/users/rita', { roles: [] })).status).toBe(200);
    expect((await t.ended(1_000)).control).toEqual({ type: 'error', message: 'You are no longer allowed to open this device.' });
  });

  it('when the device is disabled (and its agent disconnected)', async () => {
    const d = await gw.addAgent('disable-me');
    const t = await TerminalClient.open(gw.url, d.id, admin);
    await t.run('echo up', /up/);
    const disconnected = new Promise<{ code: number }>((resolve) => d.agent.once('disconnected', resolve));
    expect((await gw.api('PATCH', `/api/admin/devices/${d.id}`, { disabled: true })).status).toBe(200);
    expect((await t.ended(1_000)).control).toEqual({ type: 'error', message: 'The device was disabled by an administrator.' });
    expect((await disconnected).code).toBe(4000);
  });
});

describe('gateway restart', () => {
  it('tells open terminals why they close; the agent reconnects by itself', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    await t.run('echo up', /up/);
    const port = new URL(gw.url).port;
    const dataDir = gw.dataDir;
    const agent: Agent = lab.agent;
    const reconnected = new Promise<void>((resolve) => {
      agent.once('disconnected', () => agent.once('connected', () => resolve()));
    });
    await gw.gateway.close();
    const end = await t.ended(2_000);
    expect(end.control).toEqual({ type: 'error', message: 'The gateway is shutting down; reconnect in a moment.' });
    expect(end.code).toBe(1001);

    const again = await startDevicesGateway({ dataDir, config: { listen: `127.0.0.1:${port}` } });
    try {
      await reconnected;
      const t2 = await TerminalClient.open(again.url, lab.id, admin);
      await t2.run('echo "back=$((20+22))"', /back=42/);
      t2.close();
      await t2.closed;
    } finally {
      await again.close({ keepData: true });
    }
  });
});
