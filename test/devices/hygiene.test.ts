// Tier: integration. Hostile or broken browsers and devices: bad frames and control
// messages, limits, timeouts, dead peers, and back-pressure in both directions. Real
// gateway, real agent, real shells; the `ws` client plays the browser.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enroll } from '../../src/agent/index.ts';
import { agentEndpoints } from '../../src/protocol/index.ts';
import { TerminalClient, startDevicesGateway, waitUntil, type DevicesGateway, type TestAgent } from './helpers.ts';

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

const released = () => waitUntil(() => gw.stats().terminals === 0 && gw.stats().streams === 0, 5_000, 'resources released');
const memory = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

describe('bad input from the browser', () => {
  it('an oversized frame closes the terminal with 1009', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    t.ws.send(Buffer.alloc(64 * 1024 + 1, 0x61));
    expect((await t.ended()).code).toBe(1009);
    await released();
  });

  it.each([
    ['not JSON', '{"type":"resize",', 'Invalid control message: not JSON.', 1007],
    ['not an object', '[1,2]', 'Invalid control message: not a JSON object.', 1007],
    ['non-numeric size', '{"type":"resize","cols":"80","rows":24}', 'Invalid control message: resize needs numeric cols and rows.', 1007],
    ['too large', JSON.stringify({ type: 'resize', cols: 80, rows: 24, pad: 'x'.repeat(2000) }), 'Control message too large (at most 1024 bytes).', 1009],
  ])('a control message that is %s ends the terminal with a message', async (_what, text, message, code) => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    t.control(text);
    const end = await t.ended();
    expect(end.control).toEqual({ type: 'error', message });
    expect(end.code).toBe(code);
    await released();
  });

  it('ignores unknown control types, and passes arbitrary bytes through unchanged', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    t.control({ type: 'future-feature', x: 1 });
    await t.run('stty raw -echo; head -c 8 | od -An -tx1; stty sane', /\$ |# |\r\n/);
    await sleep(200);
    const from = t.output.length;
    // Bytes a line discipline or a careless bridge would act on: ^C ^D ^Z NUL DEL, invalid UTF-8.
    t.ws.send(Buffer.from([0x03, 0x04, 0x1a, 0x00, 0x7f, 0xff, 0xc3, 0x28]));
    await t.waitFor(/03 04 1a 00 7f ff c3 28/, 5_000, from);
    t.close();
    await released();
  });
});

describe('back-pressure', () => {
  it('a browser that stops reading stops the shell, without the gateway buffering its output', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    await t.run('echo ready', /ready/);
    t.ws.pause();
    t.type('yes "$(printf %0100d 0)"\n');
    await waitUntil(() => gw.stats().pausedOutputs === 1, 5_000, 'device output paused');
    await sleep(300);
    const before = memory();
    await sleep(2_000);
    // Unthrottled, a PTY pushes ~30 MB/s: two seconds would be ~60 MB held in this process
    // (gateway and agent both live here).
    expect(memory() - before).toBeLessThan(16 * 1024 * 1024);
    expect(gw.stats()).toMatchObject({ terminals: 1, pausedOutputs: 1 });
    t.ws.resume();
    t.type('\x03');
    await t.run('echo "after=$((40+2))"', /after=42/, 15_000);
    t.close();
    await released();
  });

  it('a program that stops reading its input stops the browser, without the gateway buffering it', async () => {
    const t = await TerminalClient.open(gw.url, lab.id, admin);
    await t.run('echo ready', /ready/);
    t.type('sleep 60\n');
    await sleep(200);
    const chunk = Buffer.alloc(60 * 1024, 0x61);
    let sent = 0;
    while (sent < 96 * 1024 * 1024 && t.ws.bufferedAmount < 8 * 1024 * 1024) {
      t.ws.send(chunk);
      sent += chunk.length;
      if (sent % (1024 * 1024) < chunk.length) await sleep(1);
    }
    // The gateway stopped reading: what it could not take piles up on our side. What it
    // did take is bounded by socket buffers and the SSH window, not by what we sent.
    expect(t.ws.bufferedAmount).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(sent - t.ws.bufferedAmount).toBeLessThan(24 * 1024 * 1024);
    t.ws.terminate();
    await released();
    await waitUntil(() => lab.agent.stats().sessions === 0, 5_000, 'agent session ended');
  });
});

describe('timeouts, dead peers and limits', () => {
  let strict: DevicesGateway;
  let box: TestAgent;
  const dirs: string[] = [];

  beforeAll(async () => {
    strict = await startDevicesGateway({ config: { devices: { idleTimeout: 1, pingInterval: 200, handshakeTimeout: 500, maxSessionsPerUser: 2 } } });
    box = await strict.addAgent('box');
  });

  afterAll(async () => {
    await strict?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('closes an idle terminal with a message', async () => {
    const t = await TerminalClient.open(strict.url, box.id, { authorization: strict.adminAuth });
    const end = await t.ended(3_000);
    expect(end.control).toEqual({ type: 'error', message: 'The terminal was closed after 1 s without activity.' });
  });

  it('drops a browser that stops answering pings', async () => {
    const ws = new WebSocket(`${strict.url.replace('http', 'ws')}/api/devices/${box.id}/terminal`, { headers: { authorization: strict.adminAuth }, autoPong: false });
    ws.on('error', () => {});
    await new Promise((resolve) => ws.once('open', resolve));
    await waitUntil(() => strict.stats().terminals === 1, 2_000, 'terminal open');
    await waitUntil(() => strict.stats().terminals === 0 && strict.stats().streams === 0, 2_000, 'dead browser dropped');
    ws.terminate();
  });

  it('gives up on a device that never completes the SSH handshake', async () => {
    const { device, enrollment } = await strict.createDevice('mute');
    const stateDir = mkdtempSync(path.join(tmpdir(), 'pc-hygiene-'));
    dirs.push(stateDir);
    const creds = await enroll({ server: strict.url, token: enrollment.token, stateDir, hostname: 'mute' });
    const { audience, connectUrl } = agentEndpoints(strict.url);
    const iat = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ iss: device.id, sub: device.id, aud: audience, iat, exp: iat + 60, jti: randomUUID() })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'portcullis-agent+jwt' })
      .sign(creds.identityKey);
    // Connected, authenticated, and silent: it never answers the streams opened to it.
    const mute = new WebSocket(connectUrl, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((resolve) => mute.once('open', resolve));
    try {
      const t = await TerminalClient.open(strict.url, device.id, { authorization: strict.adminAuth });
      const end = await t.ended(3_000);
      expect(end.control).toEqual({ type: 'error', message: 'The device did not open a shell within 1 s.' });
      await waitUntil(() => strict.stats().terminals === 0 && strict.stats().streams === 0, 2_000, 'released');
    } finally {
      mute.terminate();
    }
  });

  it('limits the terminals one user may open', async () => {
    const a = await TerminalClient.open(strict.url, box.id, { authorization: strict.adminAuth });
    const b = await TerminalClient.open(strict.url, box.id, { authorization: strict.adminAuth });
    const c = await TerminalClient.open(strict.url, box.id, { authorization: strict.adminAuth });
    expect((await c.ended()).control).toEqual({ type: 'error', message: 'You already have 2 terminals open; close one first.' });
    a.close();
    b.close();
  });
});
