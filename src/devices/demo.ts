import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ROLE_ADMIN } from '../identity/index.ts';
import type { AdminDeviceView, EnrollmentView } from './service.ts';

const BIN = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
/** How long the demo waits for its agent to come online (ms). */
const ONLINE_TIMEOUT_MS = 30_000;
/** How long the agent may take to end its sessions on stop (ms). */
const STOP_TIMEOUT_MS = 5_000;

export interface DemoDevice {
  id: string;
  agent: ChildProcess;
  /** Stops the agent (SIGTERM, then SIGKILL); resolves when it has exited. */
  stop(): Promise<void>;
}

/**
 * `portcullis demo`: creates device `local` through the admin API and enrolls this
 * machine with an agent in a child process (`portcullis agent`, exactly what an operator
 * runs on a device), then waits until it is online.
 */
export async function enrollDemoDevice(options: { url: string; adminAuthorization: string; stateDir: string }): Promise<DemoDevice> {
  const headers = { authorization: options.adminAuthorization, 'content-type': 'application/json' };
  const res = await fetch(`${options.url}/api/admin/devices`, { method: 'POST', headers, body: JSON.stringify({ name: 'local', allowedRoles: [ROLE_ADMIN] }) });
  if (res.status !== 201) throw new Error(`cannot create the demo device: HTTP ${res.status} ${await res.text()}`);
  const { device, enrollment } = (await res.json()) as { device: AdminDeviceView; enrollment: EnrollmentView };

  const agent = spawn(process.execPath, [BIN, 'agent', '--server', options.url, '--enroll', enrollment.token, '--state-dir', options.stateDir, '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = once(agent, 'exit');
  let gone = false;
  void exited.then(() => (gone = true));

  const deadline = Date.now() + ONLINE_TIMEOUT_MS;
  for (;;) {
    if (gone) throw new Error(`the demo agent exited early (code ${agent.exitCode})`);
    const view = await fetch(`${options.url}/api/admin/devices/${device.id}`, { headers: { authorization: options.adminAuthorization } });
    if (view.ok && ((await view.json()) as AdminDeviceView).online) break;
    if (Date.now() > deadline) {
      agent.kill('SIGKILL');
      throw new Error(`the demo agent did not come online within ${ONLINE_TIMEOUT_MS / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    id: device.id,
    agent,
    async stop() {
      if (gone) return;
      agent.kill('SIGTERM');
      const timer = setTimeout(() => agent.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
