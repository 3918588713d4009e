// Tier: integration. Real enrollment over HTTP against the stand-in gateway, real files.
import { createPublicKey } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Agent, AgentError, enroll, loadCredentials, main, silentLogger } from '../../src/agent/index.ts';
import { FakeGateway } from './harness.ts';

let gw: FakeGateway;
let root: string;
let n = 0;
const freshDir = () => path.join(root, `state-${++n}`);

beforeAll(async () => {
  gw = await FakeGateway.start();
  root = await mkdtemp(path.join(os.tmpdir(), 'pc-enroll-'));
});

afterAll(async () => {
  await gw.stop();
  await rm(root, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<AgentError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

describe('enrollment', () => {
  it('stores the credentials 0600 in a 0700 directory and registers the public halves', async () => {
    const dir = freshDir();
    const creds = await enroll({ server: gw.url, token: gw.addToken('kiosk'), stateDir: dir, hostname: 'kiosk-1' });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(['identity.pem', 'ssh_host_ed25519_key', 'state.json']);
    for (const f of files) expect((await stat(path.join(dir, f))).mode & 0o777).toBe(0o600);

    const device = gw.device(creds.state.deviceId);
    expect(device.name).toBe('kiosk');
    expect(device.hostname).toBe('kiosk-1');
    expect(device.hostKey).toBe(creds.hostPublicKey);
    expect(device.identityKey).toEqual(createPublicKey(creds.identityKey).export({ format: 'jwk' }));
    // The gateway learns no private key: the request carried public halves only.
    expect(JSON.stringify(device)).not.toMatch(/PRIVATE/);

    const state = JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8'));
    expect(state).toMatchObject({ version: 1, server: gw.url, deviceId: creds.state.deviceId, name: 'kiosk', gatewayKey: gw.gatewayKey.public });

    const loaded = await loadCredentials(dir);
    expect(loaded.hostPublicKey).toBe(creds.hostPublicKey);
    expect(loaded.state).toEqual(creds.state);
  });

  it('refuses an expired token with the gateway message and leaves no keys behind', async () => {
    const dir = freshDir();
    const err = await rejection(enroll({ server: gw.url, token: gw.addToken('old', -1), stateDir: dir }));
    expect(err.code).toBe('AGENT_ENROLL_REJECTED');
    expect(err.status).toBe(401);
    expect(err.gatewayCode).toBe('enrollment_token_expired');
    expect(err.message).toMatch(/expired/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a token that was already used', async () => {
    const token = gw.addToken('once');
    await enroll({ server: gw.url, token, stateDir: freshDir() });
    const err = await rejection(enroll({ server: gw.url, token, stateDir: freshDir() }));
    expect(err.code).toBe('AGENT_ENROLL_REJECTED');
    expect(err.gatewayCode).toBe('enrollment_token_used');
  });

  it('refuses an unknown token', async () => {
    const err = await rejection(enroll({ server: gw.url, token: 'nope', stateDir: freshDir() }));
    expect(err.gatewayCode).toBe('enrollment_token_invalid');
  });

  it('refuses a malformed token before contacting the gateway', async () => {
    const err = await rejection(enroll({ server: gw.url, token: 'has spaces\n', stateDir: freshDir() }));
    expect(err.code).toBe('AGENT_BAD_OPTION');
  });

  it('reports an unreachable gateway', async () => {
    const err = await rejection(enroll({ server: 'http://127.0.0.1:1', token: 'abc', stateDir: freshDir() }));
    expect(err.code).toBe('AGENT_ENROLL_FAILED');
    expect(err.message).toMatch(/cannot reach the gateway/);
  });

  it('refuses to enroll twice into the same state directory', async () => {
    const dir = freshDir();
    await enroll({ server: gw.url, token: gw.addToken('a'), stateDir: dir });
    const err = await rejection(enroll({ server: gw.url, token: gw.addToken('b'), stateDir: dir }));
    expect(err.code).toBe('AGENT_ALREADY_ENROLLED');
  });

  it('refuses credentials others can read', async () => {
    const dir = freshDir();
    await enroll({ server: gw.url, token: gw.addToken('a'), stateDir: dir });
    await chmod(path.join(dir, 'identity.pem'), 0o644);
    expect((await rejection(loadCredentials(dir))).code).toBe('AGENT_STATE_INSECURE');
    await chmod(path.join(dir, 'identity.pem'), 0o600);
    await chmod(dir, 0o755);
    const err = await rejection(loadCredentials(dir));
    expect(err.code).toBe('AGENT_STATE_INSECURE');
    expect(err.message).toMatch(/chmod 700/);
  });

  it('needs a token when the state directory is empty', async () => {
    const dir = freshDir();
    await mkdir(dir, { mode: 0o700 });
    const agent = new Agent({ server: gw.url, stateDir: dir, logger: silentLogger });
    expect((await rejection(agent.start())).code).toBe('AGENT_NOT_ENROLLED');
  });
});

describe('portcullis agent (CLI entry)', () => {
  it('prints a clear error and exits non-zero on a refused token', async () => {
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void errors.push(a.join(' ')));
    try {
      const code = await main(['--server', gw.url, '--enroll', gw.addToken('late', -1), '--state-dir', freshDir(), '--log-level', 'error']);
      expect(code).toBe(1);
      expect(errors.join('\n')).toMatch(/refused the enrollment: this enrollment token has expired/);
    } finally {
      spy.mockRestore();
    }
  });

  it('rejects unknown options with usage (exit 2)', async () => {
    const spy = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      expect(await main(['--sever', 'http://x'])).toBe(2);
      expect(await main(['--log-level', 'loud'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });
});
