// Scale-out for terminals (SPEC §9): a browser terminal opened on one node reaches a
// device whose agent is connected to another node. SSH runs end to end from the
// terminal's node; the agent's node relays opaque bytes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_URL, dropPgSchema, freshPgSchema, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { TerminalClient, refusedUpgrade, startDevicesGateway, waitUntil, type DevicesGateway } from '../devices/helpers.ts';

describe('devices across two nodes on PostgreSQL + Redis', () => {
  const schema = freshPgSchema();
  let a: DevicesGateway;
  let b: TestGateway;

  beforeAll(async () => {
    const config = { database: `${PG_URL}?schema=${schema}`, redis: 'redis://127.0.0.1:6379', secretKey: Buffer.alloc(32, 9).toString('base64') };
    a = await startDevicesGateway({ config });
    b = await startTestGateway({ config });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await dropPgSchema(schema);
  });

  const onlineOnB = async (id: string) => {
    const devices = await (await fetch(`${b.url}/api/devices`, { headers: { authorization: b.adminAuth } })).json();
    return devices.find((d: { id: string }) => d.id === id)?.online === true;
  };

  it('opens a shell through the node that holds the agent', async () => {
    const device = await a.addAgent('far-away');
    await waitUntil(() => onlineOnB(device.id), 5_000, 'device online on the other node');
    const terminal = await TerminalClient.open(b.url, device.id, { authorization: b.adminAuth });
    const [, user] = await terminal.run('echo "relay-$((40+2)) $PORTCULLIS_USER"', /relay-42 (\S+)/);
    expect(user).toBe('admin');
    terminal.type('exit 3\n');
    const end = await terminal.ended();
    expect(end.control).toEqual({ type: 'exit', code: 3 });
  });

  it('refuses relay requests that do not carry a valid node credential', async () => {
    const devices = await (await fetch(`${a.url}/api/devices`, { headers: { authorization: a.adminAuth } })).json();
    const id = devices[0].id as string;
    const forged = await refusedUpgrade(`${a.url}/api/internal/devices/${id}/relay`, { 'x-portcullis-relay': 'eyJpZCI6IngifQ.forged' });
    expect(forged.status).toBe(401);
    expect(forged.body.error).toBe('relay_refused');
    const none = await refusedUpgrade(`${a.url}/api/internal/devices/${id}/relay`, {});
    expect(none.status).toBe(401);
  });

  it('shows the device offline on every node once its agent leaves', async () => {
    const device = await a.addAgent('leaving');
    await waitUntil(() => onlineOnB(device.id), 5_000, 'device online on the other node');
    await device.agent.stop();
    await waitUntil(async () => !(await onlineOnB(device.id)), 5_000, 'device offline on the other node');
    const terminal = new TerminalClient(b.url, device.id, { authorization: b.adminAuth });
    await terminal.opened;
    const end = await terminal.ended();
    expect(end.control).toMatchObject({ type: 'error', message: expect.stringMatching(/offline/) });
  });
});
