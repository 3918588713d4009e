// Benchmark upstream: ~100 bytes on /small, 64 KiB on /big, a byte counter for uploads on
// /upload, and N bytes streamed on /download?bytes=N. Prints its URL on stdout.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const small = Buffer.from(JSON.stringify({ ok: true, message: 'hello from the upstream', padding: 'x'.repeat(40) }));
const big = Buffer.alloc(64 * 1024, 97);
const chunk = Buffer.alloc(64 * 1024, 98);

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/upload')) {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.end(String(n)));
    return;
  }
  if (url.startsWith('/download')) {
    const total = Number(new URL(url, 'http://x').searchParams.get('bytes'));
    let sent = 0;
    res.writeHead(200, { 'content-length': String(total), 'content-type': 'application/octet-stream' });
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
  req.resume();
  const body = url.startsWith('/big') ? big : small;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
