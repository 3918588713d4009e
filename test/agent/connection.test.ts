// Tier: integration. A real agent against the stand-in gateway over real WebSockets:
// authentication of the connect, reconnection, dead peers, and hostile frames.
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_VERSION, Agent, silentLogger, type AgentOptions } from '../../src/agent/index.ts';
import { DeviceLimits, FrameType, MAX_MESSAGE_SIZE, agentEndpoints, encodeFrame, type MuxStream } from '../../src/protocol/index.ts';
import { FakeGateway, execCommand, openShell, processGone, waitUntil, type FakeDevice } from './harness.ts';

let gw: FakeGateway;
let root: string;
const agents: Agent[] = [];

beforeAll(async () => {
  gw = await FakeGateway.start();
  root = await mkdtemp(path.join(os.tmpdir(), 'pc-conn-'));
});

afterEach(async () => {
  gw.rejectConnects = undefined;
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

afterAll(async () => {
  await gw.stop();
  await rm(root, { recursive: true, force: true });
});

async function startAgent(options: Partial<AgentOptions> = {}): Promise<{ agent: Agent; device: FakeDevice }> {
  const agent = new Agent({
    server: gw.url,
    enrollToken: gw.addToken(`dev-${agents.length}`),
    stateDir: await mkdtemp(path.join(root, 'state-')),
    logger: silentLogger,
    backoff: { baseMs: 10, capMs: 100 },
    killGraceMs: 300,
    ...options,
  });
  agents.push(agent);
  await agent.start();
  const device = await gw.waitForAgent(agent.deviceId!);
  return { agent, device };
}

/** Resolves with the CLOSE frame the agent sends for `streamId`. */
async function closeFrameFor(device: FakeDevice, streamId: number): Promise<string> {
  let frame;
  await waitUntil(() => (frame = device.frames.find((f) => f.type === FrameType.CLOSE && f.streamId === streamId)) !== undefined, 3_000, `CLOSE for stream ${streamId}`);
  return frame!.payload.toString('utf8');
}

describe('connect authentication', () => {
  it('proves possession of the identity key with a short-lived, audience-bound assertion', async () => {
    const { agent, device } = await startAgent({ hostname: 'edge-7' });
    const { claims, headers } = device.lastConnect!;
    expect(claims).toMatchObject({
      iss: agent.deviceId,
      sub: agent.deviceId,
      aud: agentEndpoints(gw.url).audience,
      alg: 'EdDSA',
      typ: 'portcullis-agent+jwt',
    });
    expect(claims.aud).toBe(`${gw.url}/api/agent/connect`);
    expect(Number(claims.exp) - Number(claims.iat)).toBe(60);
    expect(typeof claims.jti).toBe('string');
    expect(headers['x-portcullis-agent-version']).toBe(AGENT_VERSION);
    expect(headers['x-portcullis-hostname']).toBe('edge-7');
    expect(headers['sec-websocket-extensions']).toBeUndefined();
  });

  it('uses a fresh assertion on every connect', async () => {
    const { agent, device } = await startAgent();
    const first = device.lastConnect!.claims.jti;
    device.ws!.terminate();
    await gw.waitForAgent(agent.deviceId!, 2);
    expect(device.lastConnect!.claims.jti).not.toBe(first);
  });

  it('reports a refused upgrade with the gateway message and keeps retrying', async () => {
    const { agent, device } = await startAgent();
    gw.rejectConnects = { status: 403, error: 'device_disabled', message: 'this device is disabled' };
    const rejected = once(agent, 'rejected');
    device.ws!.close(4000, 'device disabled');
    const [r] = await rejected;
    expect(r).toEqual({ status: 403, error: 'device_disabled', message: 'this device is disabled' });
    gw.rejectConnects = undefined;
    await gw.waitForAgent(agent.deviceId!, 2);
  });
});

describe('reconnection', () => {
  it('reconnects by itself after the gateway restarts, and sessions work again', async () => {
    const { agent } = await startAgent();
    const disconnected = once(agent, 'disconnected');
    await gw.stop();
    await disconnected;
    await new Promise((r) => setTimeout(r, 150));
    await gw.listen();
    await gw.waitForAgent(agent.deviceId!, 2);
    const { client } = await gw.ssh(agent.deviceId!);
    expect((await execCommand(client, 'echo back')).stdout.trim()).toBe('back');
    client.end();
  });

  it('drops a gateway that stops answering pings', async () => {
    const { agent, device } = await startAgent({ pingIntervalMs: 100 });
    const disconnected = once(agent, 'disconnected');
    // A paused socket reads nothing, so it never answers a ping: a dead peer.
    device.ws!.pause();
    const started = Date.now();
    const [info] = await disconnected;
    expect(info.code).toBe(1006);
    expect(Date.now() - started).toBeLessThan(1_000);
    await gw.waitForAgent(agent.deviceId!, 2);
  });

  it('ends the sessions when the connection is lost', async () => {
    const { agent, device } = await startAgent();
    const { client } = await gw.ssh(agent.deviceId!);
    const sh = await openShell(client);
    sh.channel.write('echo "SHELL=$$"\n');
    const pid = Number((await sh.waitFor(/SHELL=(\d+)/))[1]);
    device.ws!.terminate();
    await waitUntil(() => processGone(pid), 3_000, 'shell to end');
    await waitUntil(() => agent.stats().sessions === 0 && agent.stats().connections === 0, 2_000, 'agent bookkeeping');
  });
});

describe('hostile frames from the gateway', () => {
  const connectionErrors: Array<[string, () => Buffer | string, number, RegExp]> = [
    ['garbage shorter than a header', () => Buffer.from([0xde, 0xad]), 1002, /shorter than/],
    ['an unknown protocol version', () => Buffer.from([9, FrameType.DATA, 0, 0, 0, 1, 0x41]), 1002, /unsupported device protocol version 9/],
    // ws enforces maxPayload itself and closes with 1009 without a reason text.
    ['an oversized frame', () => Buffer.alloc(MAX_MESSAGE_SIZE + 1), 1009, /^$/],
    ['a text message', () => 'hello', 1003, /text messages/],
  ];

  for (const [what, payload, code, reason] of connectionErrors) {
    it(`closes the connection on ${what}, then reconnects`, async () => {
      const { agent, device } = await startAgent();
      const ws = device.ws!;
      const closed = once(ws, 'close');
      ws.send(payload());
      const [closeCode, closeReason] = (await closed) as [number, Buffer];
      expect(closeCode).toBe(code);
      expect(closeReason.toString()).toMatch(reason);
      await gw.waitForAgent(agent.deviceId!, 2);
      await waitUntil(() => agent.stats().connected, 1_000, 'agent to see the new connection');
    });
  }

  it('closes only the stream on an unknown frame type', async () => {
    const { agent, device } = await startAgent({ handshakeTimeoutMs: 5_000 });
    const stream = device.mux!.open();
    stream.on('error', () => {});
    device.ws!.send(encodeFrame(7 as FrameType, stream.id, Buffer.from('x')));
    expect(await closeFrameFor(device, stream.id)).toBe('unknown frame type 7');
    await waitUntil(() => stream.destroyed, 1_000, 'stream closed at the gateway');
    expect(stream.closeReason).toBe('unknown frame type 7');
    // The connection itself is unharmed.
    const { client } = await gw.ssh(agent.deviceId!);
    expect((await execCommand(client, 'echo still')).stdout.trim()).toBe('still');
    client.end();
  });

  it('answers DATA for an unknown stream with CLOSE', async () => {
    const { device } = await startAgent();
    device.ws!.send(encodeFrame(FrameType.DATA, 4242, Buffer.from('SSH-2.0-x\r\n')));
    expect(await closeFrameFor(device, 4242)).toBe('unknown stream');
  });

  it('treats a duplicate OPEN as a protocol error', async () => {
    const { device } = await startAgent({ handshakeTimeoutMs: 5_000 });
    const stream = device.mux!.open();
    stream.on('error', () => {});
    const closed = once(device.ws!, 'close');
    device.ws!.send(encodeFrame(FrameType.OPEN, stream.id));
    const [code, reason] = (await closed) as [number, Buffer];
    expect(code).toBe(1002);
    expect(reason.toString()).toMatch(/already open/);
  });

  it('refuses streams beyond the limit', async () => {
    const { device } = await startAgent({ maxStreams: 2, handshakeTimeoutMs: 5_000 });
    const streams: MuxStream[] = [];
    for (let i = 0; i < 3; i++) {
      const s = device.mux!.open();
      s.on('error', () => {});
      streams.push(s);
    }
    expect(await closeFrameFor(device, streams[2]!.id)).toMatch(/stream limit reached \(2 open sessions\)/);
    expect(streams[0]!.destroyed).toBe(false);
  });

  it('sends CLOSE reasons no longer than the limit', async () => {
    expect(DeviceLimits.maxCloseReason).toBeLessThan(DeviceLimits.maxFramePayload);
  });
});

describe('SSH timeouts', () => {
  it('closes a stream that never completes the SSH handshake', async () => {
    const { agent, device } = await startAgent({ handshakeTimeoutMs: 200 });
    const stream = device.mux!.open();
    stream.on('error', () => {});
    stream.resume();
    expect(await closeFrameFor(device, stream.id)).toBe('SSH handshake timeout');
    await waitUntil(() => agent.stats().connections === 0, 1_000, 'connection released');
  });

  it('closes an authenticated connection that opens no session', async () => {
    const { agent, device } = await startAgent({ handshakeTimeoutMs: 300 });
    const { stream } = await gw.ssh(agent.deviceId!);
    expect(await closeFrameFor(device, stream.id)).toBe('no session opened in time');
  });

  it('closes an idle session and ends its processes', async () => {
    const { agent, device } = await startAgent({ idleTimeoutMs: 300 });
    const { client, stream } = await gw.ssh(agent.deviceId!);
    let out = '';
    client.exec('echo "SHELL=$$"; exec sleep 1000', { pty: { term: 'xterm', cols: 80, rows: 24 } }, (err, ch) => {
      if (err) throw err;
      ch.on('data', (d: Buffer) => (out += d.toString()));
    });
    await waitUntil(() => /SHELL=\d+/.test(out), 3_000, 'the command to start');
    const pid = Number(/SHELL=(\d+)/.exec(out)![1]);
    expect(await closeFrameFor(device, stream.id)).toBe('idle timeout');
    await waitUntil(() => processGone(pid), 3_000, 'idle shell to end');
  });
});

describe('stop', () => {
  it('releases every handle it opened', async () => {
    const count = () => {
      const byType = new Map<string, number>();
      for (const t of process.getActiveResourcesInfo()) byType.set(t, (byType.get(t) ?? 0) + 1);
      return byType;
    };
    const before = count();
    const { agent } = await startAgent();
    const { client } = await gw.ssh(agent.deviceId!);
    expect((await execCommand(client, 'echo hi', { pty: { term: 'xterm', cols: 80, rows: 24 } })).stdout).toMatch(/hi/);
    client.end();
    await agent.stop();
    await new Promise((r) => setTimeout(r, 100));
    const after = count();
    // Other tests' timers may have expired meanwhile, so "no more than before".
    for (const type of ['TCPSocketWrap', 'TTYWrap', 'PipeWrap', 'ProcessWrap', 'Timeout']) {
      expect({ type, n: after.get(type) ?? 0 }).toEqual({ type, n: Math.min(after.get(type) ?? 0, before.get(type) ?? 0) });
    }
  });

  it('ends sessions, closes the connection and does not reconnect', async () => {
    const { agent, device } = await startAgent();
    const { client } = await gw.ssh(agent.deviceId!);
    const sh = await openShell(client);
    sh.channel.write('echo "SHELL=$$"\n');
    const pid = Number((await sh.waitFor(/SHELL=(\d+)/))[1]);
    const wsClosed = once(device.ws!, 'close');
    await agent.stop();
    const [code] = (await wsClosed) as [number];
    expect(code).toBe(1001);
    expect(await processGone(pid)).toBe(true);
    expect(agent.stats()).toEqual({ connected: false, streams: 0, connections: 0, sessions: 0 });
    const connects = device.connects;
    await new Promise((r) => setTimeout(r, 200));
    expect(device.connects).toBe(connects);
  });
});
