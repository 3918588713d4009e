import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from "node:net";
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
}

let seen: Seen | undefined;

/** A target that records what it received and offers a few misbehaving paths. */
function startTarget(): Promise<Server> {
  const server = createServer((req, res) => {
    seen = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders };
    const url = new URL(req.url!, 'http://t');
    switch (url.pathname.replace(/^\/base/, '')) {
      case '/slow':
        setTimeout(() => res.end('late'), 2_000);
        return;
      case '/reset':
        res.writeHead(200, { 'content-length': '1000000' });
        res.write(Buffer.alloc(1000, 1));
        setTimeout(() => req.socket.destroy(), 20);
        return;
      case '/reset-before':
        req.socket.destroy();
        return;
      case '/hop':
        res.writeHead(200, { connection: 'x-secret, keep-alive', 'x-secret': 'hop', 'keep-alive': 'timeout=5', 'x-kept': 'yes', 'set-cookie': ['a=1', 'b=2'] });
        res.end('ok');
        return;
      case '/count': {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(String(n)));
        return;
      }
      case '/stream': {
        const total = Number(url.searchParams.get('bytes'));
        const chunk = Buffer.alloc(64 * 1024, 7);
        let sent = 0;
        res.writeHead(200, { 'content-length': String(total) });
        const pump = () => {
          while (sent < total) {
            const n = Math.min(chunk.length, total - sent);
            sent += n;
            if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      default:
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: true }));
        });
    }
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    ws.send(JSON.stringify({ path: req.url, auth: req.headers.authorization?.slice(0, 7) }));
    ws.on('message', (data, binary) => ws.send(data, { binary }));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('/proxy', () => {
  let gw: TestGateway;
  let target: Server;
  let targetUrl: string;

  beforeAll(async () => {
    target = await startTarget();
    targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
    gw = await startTestGateway({ config: { proxy: { url: `${targetUrl}/base`, headersTimeout: 500 } } });
  });
  afterAll(async () => {
    await gw.close();
    target.closeAllConnections();
    target.close();
  });

  it('maps /proxy/<path>?<query> under the target URL with its base path', async () => {
    await fetch(`${gw.url}/proxy/a/b%20c?x=1&y=%2F`);
    expect(seen!.url).toBe('/base/a/b%20c?x=1&y=%2F');
    await fetch(`${gw.url}/proxy?q=1`);
    expect(seen!.url).toBe('/base/?q=1');
  });

  it('replaces Authorization, overwrites X-Forwarded-* and strips only the session cookie', async () => {
    await fetch(`${gw.url}/proxy/h`, {
      headers: {
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'gopher',
        cookie: 'theme=dark; portcullis_session=abc; lang=fr',
        'x-custom': 'kept',
      },
    }).catch(() => undefined);
    // A session cookie that is not a live session is a wrong credential: 401, never forwarded.
    expect(seen!.url).not.toBe('/base/h');
    const response = await fetch(`${gw.url}/proxy/h2`, {
      headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'gopher', cookie: 'theme=dark; lang=fr', 'x-custom': 'kept' },
    });
    expect(response.status).toBe(200);
    expect(seen!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen!.headers['x-forwarded-host']).toBe(new URL(gw.url).host);
    expect(seen!.headers['x-forwarded-proto']).toBe('http');
    expect(seen!.headers.authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    expect(seen!.headers.cookie).toBe('theme=dark; lang=fr');
    expect(seen!.headers['x-custom']).toBe('kept');
  });

  it('removes the gateway session cookie but keeps the others', async () => {
    const login = await fetch(`${gw.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'admin', password: 'admin-password-for-tests' }),
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const response = await fetch(`${gw.url}/proxy/c`, { headers: { cookie: `theme=dark; ${cookie}; lang=fr` } });
    expect(response.status).toBe(200);
    expect(seen!.headers.cookie).toBe('theme=dark; lang=fr');
    const onlySession = await fetch(`${gw.url}/proxy/c2`, { headers: { cookie } });
    expect(onlySession.status).toBe(200);
    expect(seen!.headers.cookie).toBeUndefined();
    const [, payload] = seen!.headers.authorization!.slice(7).split('.');
    expect(JSON.parse(Buffer.from(payload!, 'base64url').toString()).sub).toBe('admin');
  });

  it('refuses wrong credentials with 401 instead of forwarding them as anonymous', async () => {
    seen = undefined;
    const response = await fetch(`${gw.url}/proxy/x`, { headers: { authorization: 'Basic ' + Buffer.from('admin:nope').toString('base64') } });
    expect(response.status).toBe(401);
    expect(seen).toBeUndefined();
  });

  it('drops hop-by-hop headers both ways and keeps repeated headers', async () => {
    // fetch() may not set Connection itself: use a raw request.
    await new Promise<void>((resolve, reject) => {
      httpRequest(`${gw.url}/proxy/hop`, { headers: { 'x-drop': '1', connection: 'x-drop', te: 'trailers' } }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
        .on('error', reject)
        .end();
    });
    expect(seen!.headers['x-drop']).toBeUndefined();
    expect(seen!.headers.te).toBeUndefined();
    const response = await fetch(`${gw.url}/proxy/hop`);
    expect(response.headers.get('x-secret')).toBeNull();
    expect(response.headers.get('keep-alive')).not.toBe('timeout=5');
    expect(response.headers.get('x-kept')).toBe('yes');
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
  });

  it('answers 504 when the target is too slow, and keeps serving', async () => {
    const response = await fetch(`${gw.url}/proxy/slow`);
    expect(response.status).toBe(504);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await response.text()).toMatch(/in time/);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });

  it('answers 502 when the target drops the connection before answering', async () => {
    const response = await fetch(`${gw.url}/proxy/reset-before`);
    expect(response.status).toBe(502);
    expect(await response.text()).toMatch(/closed the connection|unreachable/);
  });

  it('cuts the client connection when the target resets mid-body (no fake complete body)', async () => {
    const response = await fetch(`${gw.url}/proxy/reset`);
    expect(response.status).toBe(200);
    await expect(response.arrayBuffer()).rejects.toThrow();
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });

  it('answers 502 when the target is unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const put = await fetch(`${gw.url}/api/admin/proxy`, {
      method: 'PUT',
      headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `http://127.0.0.1:${port}` }),
    });
    expect(put.status).toBe(200);
    const response = await fetch(`${gw.url}/proxy/anything`);
    expect(response.status).toBe(502);
    expect(await response.text()).toBe('The proxy target is unreachable.');
    await fetch(`${gw.url}/api/admin/proxy`, {
      method: 'PUT',
      headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${targetUrl}/base` }),
    });
  });

  it('rejects invalid proxy URLs with a clear 400', async () => {
    for (const url of ['ftp://x', 'not a url', 'http://u:p@host', 42]) {
      const response = await fetch(`${gw.url}/api/admin/proxy`, {
        method: 'PUT',
        headers: { authorization: gw.adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ url }),
      });
      expect(response.status).toBe(400);
      expect((await response.json()).error).toMatch(/invalid/);
    }
    const forbidden = await fetch(`${gw.url}/api/admin/proxy`);
    expect(forbidden.status).toBe(401);
  });

  it('streams large uploads and downloads with flat memory', async () => {
    const size = 1024 * 1024 * 1024;
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      // Upload: a generated stream, counted by the target.
      const chunk = Buffer.alloc(256 * 1024, 3);
      let produced = 0;
      const body = new Readable({
        read() {
          if (produced >= size) return void this.push(null);
          produced += chunk.length;
          this.push(chunk);
        },
      });
      const uploaded = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(`${gw.url}/proxy/count`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        void pipeline(body, req).catch(reject);
      });
      expect(Number(uploaded)).toBe(size);

      // Download: counted here as it arrives.
      const received = await new Promise<number>((resolve, reject) => {
        httpRequest(`${gw.url}/proxy/stream?bytes=${size}`, (res) => {
          expect(res.headers['content-length']).toBe(String(size));
          let n = 0;
          res.on('data', (d: Buffer) => (n += d.length));
          res.on('end', () => resolve(n));
          res.on('error', reject);
        })
          .on('error', reject)
          .end();
      });
      expect(received).toBe(size);
    } finally {
      clearInterval(sampler);
    }
    // Client, target and gateway share this process: buffering a whole body would show as > 1 GiB.
    expect(peak - before).toBeLessThan(300 * 1024 * 1024);
  }, 120_000);

  it('forwards WebSocket upgrades with the caller JWT', async () => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/proxy/socket?x=1`);
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(String(d)));
      ws.once('error', reject);
    });
    expect(JSON.parse(first)).toEqual({ path: '/base/socket?x=1', auth: 'Bearer ' });
    const echo = new Promise<Buffer>((resolve) => ws.once('message', (d) => resolve(d as Buffer)));
    ws.send(Buffer.from([1, 2, 3]));
    expect([...(await echo)]).toEqual([1, 2, 3]);
    ws.close();
  });

  it('refuses oversized request headers without falling over', async () => {
    const response = await new Promise<number>((resolve) => {
      const req = httpRequest(`${gw.url}/proxy/x`, { headers: { 'x-big': 'a'.repeat(64 * 1024) } }, (res) => resolve(res.statusCode!));
      req.on('error', () => resolve(-1));
      req.end();
    });
    expect(response).toBe(431);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });
});

describe('/proxy behind a trusted proxy', () => {
  it('keeps X-Forwarded-* from a configured trusted proxy and appends to X-Forwarded-For', async () => {
    const target = await startTarget();
    const gw = await startTestGateway({
      config: { security: { trustedProxies: ['127.0.0.1'] }, proxy: { url: `http://127.0.0.1:${(target.address() as AddressInfo).port}` } },
    });
    try {
      await fetch(`${gw.url}/proxy/t`, { headers: { 'x-forwarded-for': '10.1.2.3', 'x-forwarded-host': 'gw.example', 'x-forwarded-proto': 'https' } });
      expect(seen!.headers['x-forwarded-for']).toBe('10.1.2.3, 127.0.0.1');
      expect(seen!.headers['x-forwarded-host']).toBe('gw.example');
      expect(seen!.headers['x-forwarded-proto']).toBe('https');
    } finally {
      await gw.close();
      target.close();
    }
  });
});

