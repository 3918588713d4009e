import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchPicture } from '../../src/sso/picture.ts';
import { PNG, startServer } from './helpers/setup.ts';

/** Picture fetches follow a URL from a claim: they must not reach private addresses, nor fetch without bound. */
describe('picture fetch guard', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  const seen: Array<string | undefined> = [];
  beforeAll(async () => {
    server = await startServer((req, res) => {
      seen.push(req.headers.authorization);
      if (req.url === '/p.png') return void res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
      if (req.url === '/big') return void res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.concat([PNG, Buffer.alloc(10_000)]));
      if (req.url === '/svg') return void res.writeHead(200, { 'content-type': 'image/svg+xml' }).end('<svg xmlns="http://www.w3.org/2000/svg"/>');
      if (req.url === '/redirect') return void res.writeHead(302, { location: '/p.png' }).end();
      res.writeHead(404).end();
    });
  });
  afterAll(() => server.close());

  const options = (allowPrivate: boolean, extra: object = {}) => ({ allowPrivate, maxBytes: 4096, timeoutMs: 2000, ...extra });

  it('refuses loopback targets unless private addresses are allowed', async () => {
    expect(await fetchPicture(`${server.url}/p.png`, options(false))).toBeNull();
    expect(await fetchPicture(`http://localhost:${new URL(server.url).port}/p.png`, options(false))).toBeNull();
    expect(await fetchPicture(`${server.url}/p.png`, options(true))).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
  });

  it('re-checks redirects, caps the size, and accepts only raster images', async () => {
    expect(await fetchPicture(`${server.url}/redirect`, options(true))).toMatch(/^data:image\/png/);
    expect(await fetchPicture(`${server.url}/big`, options(true))).toBeNull();
    expect(await fetchPicture(`${server.url}/svg`, options(true))).toBeNull();
    expect(await fetchPicture('file:///etc/passwd', options(true))).toBeNull();
    expect(await fetchPicture(`data:image/png;base64,${PNG.toString('base64')}`, options(false))).toMatch(/^data:image\/png/);
    expect(await fetchPicture('data:image/svg+xml;base64,PHN2Zz4=', options(false))).toBeNull();
  });

  it('sends the provider token only to the provider itself', async () => {
    seen.length = 0;
    await fetchPicture(`${server.url}/p.png`, options(true, { bearer: { token: 't0k', origins: new Set(['https://idp.example']) } }));
    await fetchPicture(`${server.url}/p.png`, options(true, { bearer: { token: 't0k', origins: new Set([server.url]) } }));
    expect(seen).toEqual([undefined, 'Bearer t0k']);
  });
});
