// Tier: integration (API, enrollment) and end-to-end (CLI as a real process). Real
// gateway with an injected clock, real agents enrolling over HTTP.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, AgentError, enroll, silentLogger, type AgentRejection } from '../../src/agent/index.ts';
import type { AdminDeviceView, DeviceView } from '../../src/devices/index.ts';
import { generateSshEd25519Key } from '../../src/protocol/index.ts';
import { basic } from '../helpers/gateway.ts';
import { startDevicesGateway, waitUntil, type DevicesGateway } from './helpers.ts';

let gw: DevicesGateway;
let offset = 0;
const dirs: string[] = [];
const stateDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'pc-devices-api-'));
  dirs.push(d);
  return d;
};

beforeAll(async () => {
  gw = await startDevicesGateway({ now: () => Date.now() + offset, config: { devices: { lastSeenInterval: 1 } } });
});

afterAll(async () => {
  await gw?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function enrollError(token: string): Promise<AgentError> {
  const err = await enroll({ server: gw.url, token, stateDir: stateDir(), hostname: 'h' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

describe('admin API', () => {
  it('creates a device with a one-time enrollment command', async () => {
    const before = Date.now();
    const { device, enrollment } = await gw.createDevice('kiosk-1');
    expect(device).toMatchObject({ name: 'kiosk-1', online: false, allowedRoles: ['ROLE_ADMIN'], disabled: false, enrolled: false, hostname: null, lastSeenAt: null });
    expect(enrollment.command).toBe(`npx portcullis agent --server ${gw.url} --enroll ${enrollment.token}`);
    const expires = Date.parse(enrollment.expiresAt) - before;
    expect(expires).toBeGreaterThan(3_590_000);
    expect(expires).toBeLessThan(3_610_000);
    expect((await gw.api<AdminDeviceView>('GET', `/api/admin/devices/${device.id}`)).body.enrollment).toEqual({ expiresAt: enrollment.expiresAt, used: false });
  });

  it('validates names and roles, and refuses duplicates', async () => {
    expect((await gw.api('POST', '/api/admin/devices', { name: 'bad name!' })).status).toBe(400);
    expect((await gw.api('POST', '/api/admin/devices', { name: 'ok', allowedRoles: ['not a role'] })).status).toBe(400);
    expect((await gw.api('POST', '/api/admin/devices', { name: 'ok', extra: 1 })).status).toBe(400);
    await gw.createDevice('twin');
    expect((await gw.api<{ error: string }>('POST', '/api/admin/devices', { name: 'twin' })).body.error).toBe('device_exists');
    expect((await gw.api('GET', '/api/admin/devices/nope')).status).toBe(404);
  });

  it('is for admins only', async () => {
    expect((await gw.api('POST', '/api/admin/users', { name: 'carol', password: 'carol-password-1', roles: ['ROLE_OPS'] })).status).toBe(201);
    expect((await gw.api('GET', '/api/admin/devices', undefined, basic('carol', 'carol-password-1'))).status).toBe(403);
    expect((await fetch(`${gw.url}/api/admin/devices`)).status).toBe(401);
  });

  it('edits name, roles and state; an empty role list means ROLE_ADMIN', async () => {
    const { device } = await gw.createDevice('edit-me');
    const patched = await gw.api<AdminDeviceView>('PATCH', `/api/admin/devices/${device.id}`, { name: 'edited', allowedRoles: ['ROLE_OPS', 'ROLE_ADMIN'], disabled: true });
    expect(patched.body).toMatchObject({ name: 'edited', allowedRoles: ['ROLE_ADMIN', 'ROLE_OPS'], disabled: true });
    expect((await gw.api<AdminDeviceView>('PATCH', `/api/admin/devices/${device.id}`, { allowedRoles: [] })).body.allowedRoles).toEqual(['ROLE_ADMIN']);
    expect((await gw.api('PATCH', `/api/admin/devices/${device.id}`, {})).status).toBe(400);
    expect((await gw.api('DELETE', `/api/admin/devices/${device.id}`)).status).toBe(204);
    expect((await gw.api('DELETE', `/api/admin/devices/${device.id}`)).status).toBe(404);
  });

  it('lists for a user only the enabled devices their roles open, in the shape the UI reads', async () => {
    const ops = await gw.createDevice('ops-box', ['ROLE_OPS']);
    const hidden = await gw.createDevice('ops-hidden', ['ROLE_OPS']);
    await gw.api('PATCH', `/api/admin/devices/${hidden.device.id}`, { disabled: true });
    const list = (await gw.api<DeviceView[]>('GET', '/api/devices', undefined, basic('carol', 'carol-password-1'))).body;
    expect(list).toEqual([{ id: ops.device.id, name: 'ops-box', online: false, lastSeenAt: null, hostname: null, agentVersion: null, allowedRoles: ['ROLE_OPS'] }]);
    const adminList = (await gw.api<DeviceView[]>('GET', '/api/devices')).body.map((d) => d.name);
    expect(adminList).toContain('kiosk-1');
    expect(adminList).not.toContain('ops-box');
  });
});

describe('enrollment', () => {
  it('enrolls once: the token is then used', async () => {
    const { device, enrollment } = await gw.createDevice('once');
    const creds = await enroll({ server: gw.url, token: enrollment.token, stateDir: stateDir(), hostname: 'once-host' });
    expect(creds.state).toMatchObject({ deviceId: device.id, name: 'once' });
    const view = (await gw.api<AdminDeviceView>('GET', `/api/admin/devices/${device.id}`)).body;
    expect(view).toMatchObject({ enrolled: true, hostname: 'once-host', enrollment: { used: true } });
    expect(view.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const err = await enrollError(enrollment.token);
    expect(err.gatewayCode).toBe('enrollment_token_used');
    expect(err.message).toMatch(/already used/);
  });

  it('refuses an expired token', async () => {
    const { enrollment } = await gw.createDevice('late');
    offset = 3_601_000;
    try {
      expect((await enrollError(enrollment.token)).gatewayCode).toBe('enrollment_token_expired');
    } finally {
      offset = 0;
    }
  });

  it('refuses an unknown token, and a replaced one', async () => {
    expect((await enrollError('no-such-token')).gatewayCode).toBe('enrollment_token_invalid');
    const { device, enrollment } = await gw.createDevice('renewed');
    const fresh = await gw.api<{ enrollment: { token: string } }>('POST', `/api/admin/devices/${device.id}/enrollment`);
    expect(fresh.status).toBe(201);
    expect((await enrollError(enrollment.token)).gatewayCode).toBe('enrollment_token_invalid');
    await enroll({ server: gw.url, token: fresh.body.enrollment.token, stateDir: stateDir(), hostname: 'h' });
  });

  it('refuses a disabled device', async () => {
    const { device, enrollment } = await gw.createDevice('off');
    await gw.api('PATCH', `/api/admin/devices/${device.id}`, { disabled: true });
    const err = await enrollError(enrollment.token);
    expect(err.status).toBe(403);
    expect(err.gatewayCode).toBe('device_disabled');
  });

  it('validates the keys and bounds the body', async () => {
    const { enrollment } = await gw.createDevice('strict');
    const post = (body: unknown) =>
      fetch(`${gw.url}/api/agent/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const good = { token: enrollment.token, identityKey: { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) }, hostKey: generateSshEd25519Key().public, hostname: 'h', version: '1' };
    expect((await post({ ...good, identityKey: { kty: 'RSA', crv: 'x', x: 'y' } })).status).toBe(400);
    expect((await post({ ...good, hostKey: 'ssh-rsa AAAA' })).status).toBe(400);
    expect((await post({ ...good, hostKey: generateSshEd25519Key().private })).status).toBe(400);
    expect((await post({ ...good, hostname: 'x'.repeat(20_000) })).status).toBe(413);
    // None of these spent the token.
    expect((await gw.api<AdminDeviceView>('GET', '/api/admin/devices')).body).toBeDefined();
    expect((await post(good)).status).toBe(201);
  });

  it('enrolling again replaces the keys: the old agent is disconnected and refused', async () => {
    const first = await gw.addAgent('reinstalled');
    const rejected = new Promise<AgentRejection>((resolve) => first.agent.once('rejected', resolve));
    const { body } = await gw.api<{ enrollment: { token: string } }>('POST', `/api/admin/devices/${first.id}/enrollment`);
    const second = new Agent({ server: gw.url, stateDir: stateDir(), enrollToken: body.enrollment.token, logger: silentLogger, backoff: { baseMs: 50, capMs: 200 } });
    await second.start();
    try {
      expect((await rejected).status).toBe(401);
      await waitUntil(() => second.connected, 5_000, 'new agent connected');
    } finally {
      await second.stop();
    }
  });

  it('deleting a device disconnects its agent, which is then refused', async () => {
    const a = await gw.addAgent('doomed');
    const rejected = new Promise<AgentRejection>((resolve) => a.agent.once('rejected', resolve));
    const disconnected = new Promise<{ code: number }>((resolve) => a.agent.once('disconnected', resolve));
    expect((await gw.api('DELETE', `/api/admin/devices/${a.id}`)).status).toBe(204);
    expect((await disconnected).code).toBe(4001);
    expect(await rejected).toMatchObject({ status: 401, error: 'device_unknown' });
  });
});

describe('portcullis devices (CLI)', () => {
  const BIN = path.resolve('bin/portcullis.js');
  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const env = { ...process.env, PORTCULLIS_DATA_DIR: gw.dataDir, PORTCULLIS_URL: gw.url, PORTCULLIS_LOG_LEVEL: 'warn' };
      execFile(process.execPath, [BIN, 'devices', ...args], { env }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('adds, lists, re-issues and removes devices; a running gateway drops a removed device', async () => {
    const added = await cli(['add', 'cli-box', '--role', 'ROLE_OPS', '--role', 'ROLE_ADMIN']);
    expect(added.code).toBe(0);
    const token = /--enroll (\S+)/.exec(added.stdout)![1]!;
    expect(added.stdout).toContain(`npx portcullis agent --server ${gw.url} --enroll ${token}`);
    const agent = new Agent({ server: gw.url, stateDir: stateDir(), enrollToken: token, logger: silentLogger, backoff: { baseMs: 50, capMs: 200 } });
    const connected = new Promise<void>((resolve) => agent.once('connected', () => resolve()));
    await agent.start();
    try {
      await connected;
      const listed = await cli(['list']);
      expect(listed.stdout).toMatch(/^cli-box\t[0-9a-f-]{36}\tROLE_ADMIN,ROLE_OPS\t\S+\tlast seen \S+$/m);
      const again = await cli(['enroll', 'cli-box']);
      expect(again.stdout).toMatch(/--enroll \S+/);
      expect((await cli(['enroll', 'no-such-box'])).code).toBe(1);
      const disconnected = new Promise<{ code: number }>((resolve) => agent.once('disconnected', resolve));
      expect((await cli(['remove', 'cli-box'])).code).toBe(0);
      // No Redis here: the gateway notices at its next periodic check (1 s in this test).
      expect((await disconnected).code).toBe(4001);
    } finally {
      await agent.stop();
    }
    expect((await cli(['frobnicate'])).code).toBe(2);
  });
});
