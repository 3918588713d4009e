import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { Agent } from 'undici';
import type { PortcullisError } from '../errors.ts';
import { describeUpstreamError, downstreamResponseHeaders, upstreamRequestHeaders } from '../proxy/index.ts';

export interface ConnectionForwarderOptions {
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
  poolSize: number;
  /** Bodies up to this size are read first, so the request can be replayed once after a refresh. */
  replayBodyBytes: number;
  cookieName: string;
}

export interface ForwardTarget {
  readonly origin: string;
  readonly path: string;
}

export interface ForwardAuth {
  /** The access token to inject, or null for none. */
  readonly token: string | null;
  /**
   * The resource answered 401 to `token`: returns a new token to retry with once (if
   * the request can be replayed), or null. Called at most once per request.
   */
  readonly onRejected?: (token: string) => Promise<string | null>;
  /**
   * The error to answer when the resource refused the user's token and the request
   * cannot be replayed: `renewed` says whether a new token is ready for the next attempt.
   */
  readonly rejectedError?: (renewed: boolean) => PortcullisError;
}

const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE', 'TRACE']);

/**
 * Forwards `/connections/{name}/…` to the resource through undici's pool. The client's
 * Authorization and cookies never leave the gateway (the cookies belong to this gateway's
 * origin, not to the resource), and the resource cannot set cookies on it either. Response
 * bodies are piped as they arrive (server-sent events, chunked) with back-pressure.
 */
export class ConnectionForwarder {
  readonly #agent: Agent;
  readonly #o: ConnectionForwarderOptions;

  constructor(options: ConnectionForwarderOptions) {
    this.#o = options;
    this.#agent = new Agent({
      connections: options.poolSize,
      connectTimeout: options.connectTimeout,
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
      keepAliveTimeout: 4_000,
      pipelining: 1,
    });
  }

  /**
   * Sends one request upstream and its answer back. A 401 to the user's token is not
   * passed on: the request is replayed once with a refreshed token when its body was kept,
   * otherwise the client gets the gateway's own 401 (with the authorize link).
   */
  async forward(req: IncomingMessage, res: ServerResponse, target: ForwardTarget, auth: ForwardAuth, clientIp: string, trusted: boolean): Promise<void> {
    const method = req.method ?? 'GET';
    const declared = req.headers['content-length'];
    const hasBody = !BODYLESS.has(method) || declared !== undefined || req.headers['transfer-encoding'] !== undefined;
    let body: Buffer | IncomingMessage | null = null;
    let replayable = !hasBody;
    if (hasBody) {
      const length = declared === undefined ? NaN : Number(declared);
      if (req.headers['transfer-encoding'] === undefined && Number.isSafeInteger(length) && length <= this.#o.replayBodyBytes) {
        body = await readBody(req, length);
        if (body === null) return void res.destroy();
        replayable = true;
      } else {
        body = req;
      }
    }
    // undici takes an EventEmitter as its abort signal: cheaper than an AbortController per request.
    const abort = new EventEmitter();
    let aborted = false;
    const onClose = () => {
      if (res.writableFinished) return;
      aborted = true;
      abort.emit('abort');
    };
    res.once('close', onClose);
    try {
      let token = auth.token;
      for (let attempt = 0; ; attempt++) {
        let refused = false;
        // stream(): undici writes the body straight into the response as it arrives.
        await this.#agent.stream(
          { origin: target.origin, path: target.path, method: method as 'GET', headers: this.#headers(req, token, clientIp, trusted), body, signal: abort },
          ({ statusCode, headers }) => {
            if (statusCode === 401 && token !== null && auth.onRejected) {
              refused = true;
              return discard();
            }
            const out = downstreamResponseHeaders(headers);
            delete out['set-cookie'];
            res.writeHead(statusCode, out);
            return res;
          },
        );
        if (!refused) return;
        const next = attempt === 0 ? await auth.onRejected!(token!) : null;
        if (next !== null && replayable) {
          token = next;
          continue;
        }
        const error = auth.rejectedError?.(next !== null);
        if (error) sendJson(res, error.status, { error: error.code, message: error.message, ...error.details }, error.status === 503 ? { 'retry-after': '0' } : {});
        else sendJson(res, 401, { error: 'connection_token_refused', message: 'The resource refused the access token.' });
        return;
      }
    } catch (error) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (aborted || res.destroyed) return;
      const [status, reason] = describeUpstreamError(error);
      const code = status === 504 ? 'connection_timeout' : status === 400 ? 'bad_request' : 'connection_unreachable';
      sendJson(res, status, { error: code, message: reason.replace('The proxy target', 'The connection') });
      if (!req.complete) req.resume();
    } finally {
      res.off('close', onClose);
    }
  }

  /** The proxy's header rules, then: our token (or none), and no cookies either way. */
  #headers(req: IncomingMessage, token: string | null, clientIp: string, trusted: boolean): string[] {
    const flat = upstreamRequestHeaders(req, { jwt: token ?? '', cookieName: this.#o.cookieName, trusted, clientIp });
    const out: string[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!;
      if (name === 'cookie' || (token === null && name === 'authorization')) continue;
      out.push(name, flat[i + 1]!);
    }
    return out;
  }

  /** Lets in-flight requests finish for up to `graceMs`, then cuts them (event streams never end on their own). */
  async close(graceMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([this.#agent.close(), grace]);
    clearTimeout(timer);
    await this.#agent.destroy().catch(() => {});
  }
}

/** Where a refused answer's body goes before the request is replayed. */
function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra });
  res.end(text);
}

/** Reads a small declared-length body; null if the client went away or sent a different length. */
function readBody(req: IncomingMessage, length: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const done = (value: Buffer | null) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > length) return done(null);
      chunks.push(chunk);
    };
    const onEnd = () => done(total === length ? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total)) : null);
    const onError = () => done(null);
    const onClose = () => {
      if (!req.complete) done(null);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
