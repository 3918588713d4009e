// Tier: integration. Real gateway, real agents (in-process), real shells in PTYs; a `ws`
// client is the browser. What a terminal user sees, end to end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ssh2NativeCrypto } from '../../src/protocol/index.ts';
import { basic } from '../helpers/gateway.ts';
import { TerminalClient, refusedUpgrade, startDevicesGateway, waitUntil, type DevicesGateway, type TestAgent } from './helpers.ts';

let gw: DevicesGateway;
let lab: TestAgent;
let admin: Record<string, string>;

beforeAll(async () => {
  gw = await startDevicesGateway();
  admin = { authorization: gw.adminAuth };
  lab = await gw.addAgent('lab');
});

afterAll(async () => {
  await gw?.close();
});

describe('browser terminal', () => {
  it("runs ssh2 without its native addon (which can abort the process on Node 24, see src/protocol/ssh2.ts)", () => {
    expect(ssh2NativeCrypto()).toBe(false);
  });

  it('runs a command and shows its output; the device learns the gateway user', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    const m = await t.run('echo "sum=$((6*7)) user=$PORTCULLIS_USER"', /sum=(\d+) user=(\S+)/);
    expect(m[1]).toBe('42');
    expect(m[2]).toBe('admin');
    t.close();
    await t.closed;
  });

  it('resizes the PTY (stty size follows) and clamps absurd sizes', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    t.control({ type: 'resize', cols: 132, rows: 43 });
    await waitUntil(async () => /size=43 132/.test((await t.run('echo "size=$(stty size)"', /size=\d+ \d+/))[0]), 5_000, 'resize');
    t.control({ type: 'resize', cols: 1e12, rows: -5 });
    await waitUntil(async () => /size=1 2000/.test((await t.run('echo "size=$(stty size)"', /size=\d+ \d+/))[0]), 5_000, 'clamped resize');
    t.close();
  });

  it('reports the exit code and closes', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    await t.run('echo ready', /ready/);
    t.type('exit 7\n');
    const end = await t.ended();
    expect(end.control).toEqual({ type: 'exit', code: 7 });
    expect(end.code).toBe(1000);
  });

  it('carries two concurrent sessions on one device, each its own shell', async () => {
    const [a, b] = await Promise.all([TerminalClient.open(gw.url, lab.id, admin), TerminalClient.open(gw.url, lab.id, admin)]);
    const pa = (await a.run('echo "pid=$$"', /pid=(\d+)/))[1];
    const pb = (await b.run('echo "pid=$$"', /pid=(\d+)/))[1];
    expect(pa).not.toBe(pb);
    expect(gw.stats().terminals).toBe(2);
    a.type('exit 1\n');
    expect((await a.ended()).control).toEqual({ type: 'exit', code: 1 });
    expect((await b.run('echo still=$((1+1))', /still=(\d)/))[1]).toBe('2');
    b.close();
    await waitUntil(() => gw.stats().terminals === 0 && gw.stats().streams === 0, 5_000, 'sessions released');
  });

  it('reaches a second device', async () => {
    const second = await gw.addAgent('second');
    const t = await TerminalClient.open(gw.url, second.id, admin);
    await t.run('echo "on=second"', /on=second/);
    t.close();
  });

  it('refuses a user without an allowed role (403) and a caller without credentials (401)', async () => {
    expect((await gw.api('POST', '/api/admin/users', { name: 'bob', password: 'bob-password-1' })).status).toBe(201);
    const url = `${gw.url}/api/devices/${lab.id}/terminal`;
    const forbidden = await refusedUpgrade(url, { authorization: basic('bob', 'bob-password-1') });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error).toBe('device_forbidden');
    expect((await refusedUpgrade(url, {})).status).toBe(401);
    expect((await refusedUpgrade(`${gw.url}/api/devices/no-such-device/terminal`, admin)).status).toBe(404);
  });
});
