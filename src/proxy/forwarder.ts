import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, errors as undiciErrors } from 'undici';
import { downstreamResponseHeaders, upstreamRequestHeaders, type ForwardContext } from './headers.ts';
import type { ProxyTargetUrl } from './target.ts';

export interface ForwarderOptions {
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
  connections: number;
}

const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE', 'TRACE']);

/**
 * Streams one request to the target and its response back, through undici's connection
 * pool. Nothing is buffered: bodies flow with back-pressure both ways. Failures before
 * the response starts become 502/504 with a short plain-text reason; after it has
 * started, the client connection is cut (a truncated body must not look complete).
 */
export class Forwarder {
  readonly #agent: Agent;
  readonly #options: ForwarderOptions;

  constructor(options: ForwarderOptions) {
    this.#options = options;
    this.#agent = new Agent({
      connections: options.connections,
      connectTimeout: options.connectTimeout,
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
      keepAliveTimeout: 4_000,
      pipelining: 1,
    });
  }

  forward(req: IncomingMessage, res: ServerResponse, target: ProxyTargetUrl, subPath: string, ctx: ForwardContext): Promise<void> {
    const method = req.method ?? 'GET';
    const hasBody = !BODYLESS.has(method) || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.once('close', onClose);
    return this.#agent
      .stream(
        {
          origin: target.origin,
          path: target.basePath + subPath,
          method: method as 'GET',
          headers: upstreamRequestHeaders(req, ctx),
          body: hasBody ? req : null,
          signal: abort.signal,
          headersTimeout: this.#options.headersTimeout,
          bodyTimeout: this.#options.bodyTimeout,
        },
        ({ statusCode, headers }) => {
          res.writeHead(statusCode, downstreamResponseHeaders(headers));
          return res;
        },
      )
      .then(
        () => undefined,
        (error: unknown) => {
          if (res.headersSent) {
            res.destroy();
            return;
          }
          const [status, reason] = describeUpstreamError(error);
          if (abort.signal.aborted || res.destroyed) return;
          res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(reason) });
          res.end(reason);
          // The request body may be unread (target refused before reading): don't wait for it.
          if (!req.complete) req.resume();
        },
      )
      .finally(() => res.off('close', onClose));
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** Maps an upstream failure to 502 (unreachable, broken) or 504 (too slow), by error code. */
export function describeUpstreamError(error: unknown): [number, string] {
  const code = (error as { code?: string })?.code ?? '';
  if (error instanceof undiciErrors.HeadersTimeoutError || code === 'UND_ERR_HEADERS_TIMEOUT') {
    return [504, 'The proxy target did not answer in time.'];
  }
  if (error instanceof undiciErrors.ConnectTimeoutError || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
    return [504, 'The proxy target did not accept the connection in time.'];
  }
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EAI_AGAIN') {
    return [502, 'The proxy target is unreachable.'];
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return [400, 'The request body does not match its Content-Length.'];
  return [502, 'The proxy target closed the connection or sent an invalid response.'];
}
