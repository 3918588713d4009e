import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { upstreamRequestHeaders, type ForwardContext } from './headers.ts';
import type { ProxyTargetUrl } from './target.ts';

/**
 * Forwards a WebSocket (or any HTTP/1.1 Upgrade) request to the target and, once the
 * target switches protocols, splices the two sockets together.
 */
export function forwardUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: ProxyTargetUrl,
  subPath: string,
  ctx: ForwardContext,
  timeoutMs: number,
): void {
  const url = new URL(target.origin);
  const flat = upstreamRequestHeaders(req, ctx, true);
  const headers: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) headers.push([flat[i]!, flat[i + 1]!]);
  const upstream = (url.protocol === 'https:' ? httpsRequest : httpRequest)({
    host: url.hostname,
    port: url.port || (url.protocol === 'https:' ? 443 : 80),
    method: req.method,
    path: target.basePath + subPath,
    headers: Object.fromEntries(headers.map(([k, v]) => [k, v])),
    timeout: timeoutMs,
  });
  const fail = (status: number, reason: string) => {
    if (socket.writable) {
      socket.end(`HTTP/1.1 ${status} ${status === 504 ? 'Gateway Timeout' : 'Bad Gateway'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(reason)}\r\nconnection: close\r\n\r\n${reason}`);
    }
    socket.destroy();
  };
  socket.on('error', () => upstream.destroy());
  upstream.on('timeout', () => {
    upstream.destroy();
    fail(504, 'The proxy target did not answer in time.');
  });
  upstream.on('error', () => fail(502, 'The proxy target is unreachable.'));
  upstream.on('response', (res) => {
    // The target declined to upgrade: relay its answer as a normal response.
    const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
    for (let i = 0; i < res.rawHeaders.length; i += 2) {
      const name = res.rawHeaders[i]!.toLowerCase();
      if (name !== 'connection' && name !== 'transfer-encoding' && name !== 'keep-alive') lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
    }
    lines.push('connection: close');
    socket.write(lines.join('\r\n') + '\r\n\r\n');
    res.pipe(socket);
  });
  upstream.on('upgrade', (res, upstreamSocket, upstreamHead) => {
    upstream.setTimeout(0);
    const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`];
    for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
    socket.write(lines.join('\r\n') + '\r\n\r\n');
    if (upstreamHead.length > 0) socket.write(upstreamHead);
    if (head.length > 0) upstreamSocket.write(head);
    upstreamSocket.on('error', () => socket.destroy());
    socket.on('error', () => upstreamSocket.destroy());
    socket.on('close', () => upstreamSocket.destroy());
    upstreamSocket.on('close', () => socket.destroy());
    upstreamSocket.pipe(socket);
    socket.pipe(upstreamSocket);
  });
  upstream.end();
}
