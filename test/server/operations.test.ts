import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { createGateway } from '../../src/server/index.ts';
import { UI_DIR } from '../../src/web/index.ts';
import { startTestGateway } from '../helpers/gateway.ts';

describe('operations', () => {
  it('answers /healthz and /readyz, and /readyz turns 503 when the store is gone', async () => {
    const gw = await startTestGateway();
    try {
      expect(await (await fetch(`${gw.url}/healthz`)).json()).toEqual({ status: 'ok' });
      expect(await (await fetch(`${gw.url}/readyz`)).json()).toEqual({ status: 'ready' });
      await gw.gateway.store.close();
      const response = await fetch(`${gw.url}/readyz`);
      expect(response.status).toBe(503);
      expect((await response.json()).error).toBe('store_unreachable');
    } finally {
      await gw.gateway.app.close();
    }
  });

  it('refuses to start unsecured on a non-loopback address without the override', async () => {
    const config = loadConfig({ overrides: { listen: '0.0.0.0:0', security: { enabled: false }, dataDir: path.join(process.cwd(), 'data-never-created') } });
    await expect(createGateway(config, { logger: pino({ level: 'silent' }) })).rejects.toMatchObject({ code: 'unsecured_bind_refused' });
    expect(existsSync('data-never-created')).toBe(false);
  });

  it('drains an in-flight proxied request on shutdown before closing', async () => {
    const target = createServer((_req, res) => setTimeout(() => res.end('finished'), 300));
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const gw = await startTestGateway({ config: { proxy: { url: `http://127.0.0.1:${(target.address() as AddressInfo).port}` } } });
    try {
      const pending = fetch(`${gw.url}/proxy/slow`);
      await new Promise((r) => setTimeout(r, 50));
      const closing = gw.close();
      const response = await pending;
      expect(response.status).toBe(200);
      expect(await response.text()).toBe('finished');
      await closing;
    } finally {
      target.close();
    }
  });

  it('serves the web UI with cache headers, and index.html for client-side routes', async (context) => {
    if (!existsSync(path.join(UI_DIR, 'index.html'))) {
      if (process.env.CI === 'true') throw new Error('the web UI is not built (npm ci runs the build)');
      context.skip();
    }
    const gw = await startTestGateway();
    try {
      const index = await fetch(`${gw.url}/`);
      expect(index.status).toBe(200);
      expect(index.headers.get('cache-control')).toBe('no-cache');
      const html = await index.text();
      const asset = /(?:src|href)="(\/assets\/[^"]+)"/.exec(html)![1]!;
      const assetResponse = await fetch(`${gw.url}${asset}`);
      expect(assetResponse.status).toBe(200);
      expect(assetResponse.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      const deep = await fetch(`${gw.url}/admin/users`, { headers: { accept: 'text/html' } });
      expect(deep.status).toBe(200);
      expect(await deep.text()).toBe(html);
      const api = await fetch(`${gw.url}/api/nope`, { headers: { accept: 'text/html' } });
      expect(api.status).toBe(404);
    } finally {
      await gw.close();
    }
  });
});
