import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/index.ts';
import { enrollDemoDevice } from '../devices/index.ts';
import { generatePassword } from '../identity/index.ts';
import { createGateway } from '../server/index.ts';
import { startDemoApp } from './demo-app.ts';
import { closeOnSignals } from './serve.ts';

/**
 * `portcullis demo`: a gateway on a throw-away SQLite database, a demo app behind /proxy,
 * and the admin password printed. Listens on PORTCULLIS_LISTEN or 127.0.0.1:8080.
 */
export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' }, listen: { type: 'string' } }, strict: true });
  if (values.help) {
    console.log('Usage: portcullis demo [--listen HOST:PORT]\nStarts a throw-away gateway with this machine enrolled as device "local" and a demo app behind /proxy.');
    return 0;
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), 'portcullis-demo-'));
  const password = process.env.PORTCULLIS_ADMIN_PASSWORD ?? generatePassword();
  let jwksUrl = '';
  const app = await startDemoApp(() => jwksUrl);
  const config = loadConfig({
    env: { ...process.env, PORTCULLIS_DATA_DIR: dataDir, PORTCULLIS_DATABASE: `sqlite:${path.join(dataDir, 'portcullis.db')}` },
    overrides: { proxy: { url: app.url }, ...(values.listen ? { listen: values.listen } : {}) },
  });
  const gateway = await createGateway(config, { adminPassword: password });
  const listening = await gateway.listen();
  jwksUrl = `${listening}/.well-known/jwks.json`;
  let device;
  try {
    // This machine, enrolled as device "local" by an agent in a child process.
    device = await enrollDemoDevice({
      url: gateway.publicUrl(),
      adminAuthorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`,
      stateDir: path.join(dataDir, 'agent'),
    });
  } catch (error) {
    await gateway.close();
    app.server.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  process.stdout.write(
    [
      '',
      '  Portcullis demo is running.',
      `    Open      ${gateway.publicUrl()}/`,
      `    Sign in   admin / ${password}`,
      `    Device    local (this machine): open it from the device list for a shell`,
      `    Demo app  ${gateway.publicUrl()}/proxy/`,
      '  Press Ctrl+C to stop (the demo data is deleted).',
      '',
    ].join('\n') + '\n',
  );
  await closeOnSignals(gateway, async () => {
    await device.stop();
    app.server.close();
  });
  rmSync(dataDir, { recursive: true, force: true });
  return 0;
}
