// Tier: integration, conformance. Every refusal of `GET /api/agent/connect` that
// docs/DEVICE-PROTOCOL.md requires, one test each, asserting the status and error code;
// then what a connected agent may not do. Real gateway; assertions made by hand with
// jose from a really enrolled identity key.
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enroll } from '../../src/agent/index.ts';
import { FrameType, agentEndpoints, encodeFrame } from '../../src/protocol/index.ts';
import { refusedUpgrade, startDevicesGateway, waitUntil, type DevicesGateway } from './helpers.ts';

let gw: DevicesGateway;
let deviceId: string;
let key: KeyObject;
let audience: string;
let connectUrl: string;
const dirs: string[] = [];

beforeAll(async () => {
  gw = await startDevicesGateway();
  const { device, enrollment } = await gw.createDevice('conformance');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'pc-connect-'));
  dirs.push(stateDir);
  const creds = await enroll({ server: gw.url, token: enrollment.token, stateDir, hostname: 'conformance-host' });
  deviceId = device.id;
  key = creds.identityKey;
  ({ audience, connectUrl } = agentEndpoints(gw.url));
});

afterAll(async () => {
  await gw?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Claims {
  iss?: string;
  sub?: string;
  aud?: string;
  iat?: number;
  exp?: number;
  jti?: string;
}

async function assertion(claims: Claims = {}, options: { key?: KeyObject; typ?: string; alg?: string } = {}): Promise<string> {
  const iat = claims.iat ?? Math.floor(Date.now() / 1000);
  const body = { iss: deviceId, sub: deviceId, aud: audience, iat, exp: iat + 60, jti: randomUUID(), ...claims };
  return new SignJWT(body).setProtectedHeader({ alg: options.alg ?? 'EdDSA', typ: options.typ ?? 'portcullis-agent+jwt' }).sign(options.key ?? key);
}

const refused = (token: string | undefined) => refusedUpgrade(connectUrl, token === undefined ? {} : { authorization: `Bearer ${token}` });

function connect(token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(connectUrl, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

const closed = (ws: WebSocket) => new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

describe('agent connect refusals', () => {
  it('no assertion → 401 device_assertion_missing', async () => {
    expect(await refused(undefined)).toMatchObject({ status: 401, body: { error: 'device_assertion_missing' } });
  });

  it('not a JWT → 401 device_assertion_invalid', async () => {
    expect(await refused('garbage.garbage.garbage')).toMatchObject({ status: 401, body: { error: 'device_assertion_invalid' } });
  });

  it('a gateway-issued JWT (wrong alg and typ) → 401', async () => {
    const res = await refusedUpgrade(connectUrl, { authorization: `Bearer ${await gw.gateway.jwt.issue({ name: 'admin', roles: ['ROLE_ADMIN'] })}` });
    expect(res.status).toBe(401);
  });

  it('typ other than portcullis-agent+jwt → 401', async () => {
    expect(await refused(await assertion({}, { typ: 'JWT' }))).toMatchObject({ status: 401, body: { error: 'device_assertion_invalid' } });
  });

  it('alg none → 401', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'portcullis-agent+jwt' })).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const payload = Buffer.from(JSON.stringify({ iss: deviceId, sub: deviceId, aud: audience, iat: now, exp: now + 60, jti: randomUUID() })).toString('base64url');
    expect(await refused(`${header}.${payload}.`)).toMatchObject({ status: 401 });
  });

  it('unknown device → 401 device_unknown', async () => {
    const other = randomUUID();
    expect(await refused(await assertion({ iss: other, sub: other }))).toMatchObject({ status: 401, body: { error: 'device_unknown' } });
  });

  it('forged: signed by another key → 401 device_assertion_invalid', async () => {
    const forger = generateKeyPairSync('ed25519').privateKey;
    const res = await refused(await assertion({}, { key: forger }));
    expect(res).toMatchObject({ status: 401, body: { error: 'device_assertion_invalid' } });
    expect(res.body.message).toMatch(/signature/);
  });

  it('sub other than iss → 401', async () => {
    expect(await refused(await assertion({ sub: 'someone-else' }))).toMatchObject({ status: 401, body: { error: 'device_assertion_invalid' } });
  });

  it('wrong audience (another gateway) → 401', async () => {
    const res = await refused(await assertion({ aud: 'https://other.example/api/agent/connect' }));
    expect(res).toMatchObject({ status: 401, body: { error: 'device_assertion_invalid' } });
    expect(res.body.message).toMatch(/aud/);
  });

  it('expired → 401 device_assertion_expired', async () => {
    const iat = Math.floor(Date.now() / 1000) - 600;
    expect(await refused(await assertion({ iat, exp: iat + 60 }))).toMatchObject({ status: 401, body: { error: 'device_assertion_expired' } });
  });

  it('issued in the future → 401', async () => {
    const iat = Math.floor(Date.now() / 1000) + 600;
    expect(await refused(await assertion({ iat, exp: iat + 60 }))).toMatchObject({ status: 401 });
  });

  it('a lifetime beyond the protocol limit → 401', async () => {
    const iat = Math.floor(Date.now() / 1000);
    expect(await refused(await assertion({ iat, exp: iat + 3600 }))).toMatchObject({ status: 401, body: { error: 'device_assertion_invalid' } });
  });

  it('missing jti → 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ iss: deviceId, sub: deviceId, aud: audience, iat: now, exp: now + 60 })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'portcullis-agent+jwt' })
      .sign(key);
    expect(await refused(token)).toMatchObject({ status: 401, body: { error: 'device_assertion_invalid' } });
  });

  it('replayed assertion → 401 device_assertion_replayed', async () => {
    const token = await assertion();
    const ws = await connect(token);
    expect(await refused(token)).toMatchObject({ status: 401, body: { error: 'device_assertion_replayed' } });
    ws.close();
    await closed(ws);
  });

  it('disabled device → 403 device_disabled, and it may connect again once enabled', async () => {
    expect((await gw.api('PATCH', `/api/admin/devices/${deviceId}`, { disabled: true })).status).toBe(200);
    expect(await refused(await assertion())).toMatchObject({ status: 403, body: { error: 'device_disabled' } });
    expect((await gw.api('PATCH', `/api/admin/devices/${deviceId}`, { disabled: false })).status).toBe(200);
    const ws = await connect(await assertion());
    ws.close();
    await closed(ws);
  });
});

describe('a connected agent', () => {
  it('is replaced by a newer connection of the same device (4002)', async () => {
    const first = await connect(await assertion());
    const firstClosed = closed(first);
    const second = await connect(await assertion());
    expect(await firstClosed).toMatchObject({ code: 4002 });
    await waitUntil(() => gw.stats().agents === 1, 2_000, 'one connection');
    second.close();
    await closed(second);
    await waitUntil(() => gw.stats().agents === 0, 2_000, 'no connection');
  });

  it('is disconnected for a text message (1003), an unknown version (1002), an OPEN (1002) and an oversized frame (1009)', async () => {
    const cases: Array<[string, (ws: WebSocket) => void, number]> = [
      ['text', (ws) => ws.send('hello'), 1003],
      ['version', (ws) => ws.send(Buffer.from([9, 2, 0, 0, 0, 1, 65])), 1002],
      ['short', (ws) => ws.send(Buffer.from([1, 2])), 1002],
      ['open', (ws) => ws.send(encodeFrame(FrameType.OPEN, 7)), 1002],
      ['oversized', (ws) => ws.send(Buffer.alloc(6 + 256 * 1024 + 1, 2)), 1009],
    ];
    for (const [what, send, code] of cases) {
      const ws = await connect(await assertion());
      const c = closed(ws);
      send(ws);
      expect((await c).code, what).toBe(code);
    }
    await waitUntil(() => gw.stats().agents === 0, 2_000, 'connections released');
  });

  it('gets CLOSE for data on a stream nobody opened, and stays connected', async () => {
    const ws = await connect(await assertion());
    const frames: Buffer[] = [];
    ws.on('message', (d) => frames.push(d as Buffer));
    ws.send(encodeFrame(FrameType.DATA, 99, Buffer.from('x')));
    await waitUntil(() => frames.length > 0, 2_000, 'CLOSE frame');
    expect(frames[0]![1]).toBe(FrameType.CLOSE);
    expect(frames[0]!.readUInt32BE(2)).toBe(99);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
    await closed(ws);
  });
});
