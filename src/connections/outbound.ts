import { isIP } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import { PrivateAddressError, guardedLookup, isPrivateAddress } from '../outbound/index.ts';
import { ConnectionErrors } from './errors.ts';

/**
 * Where the gateway may send requests on a connection's behalf. The connection URL an
 * admin declares is trusted (an internal MCP server is a normal case); every URL learned
 * from a remote document (resource metadata, authorization server metadata, endpoints)
 * on another host must use https and resolve to a public address, unless the
 * operator allows private addresses (tests). Redirects are followed only through the
 * same checks.
 */
export interface OutboundPolicy {
  readonly allowPrivateAddresses: boolean;
  /** Per request, ms. */
  readonly timeoutMs: number;
  /** Largest response body read, bytes. */
  readonly maxResponseBytes: number;
}

export interface OutboundInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | URLSearchParams | null;
  /** The admin-declared connection URL's host name: exempt from the address guard and the https rule. */
  trustedHost?: string | undefined;
  /** Whether to follow redirects (at most 3, each checked). Off for authorization URLs. */
  followRedirects?: boolean;
  signal?: AbortSignal | undefined;
}

/** Outbound HTTP for discovery, registration and token requests. */
export class Outbound {
  readonly #policy: OutboundPolicy;
  readonly #open: Agent;
  readonly #guarded: Agent;

  constructor(policy: OutboundPolicy) {
    this.#policy = policy;
    this.#open = new Agent({ connections: 16, keepAliveTimeout: 4_000 });
    this.#guarded = policy.allowPrivateAddresses ? this.#open : new Agent({ connections: 16, keepAliveTimeout: 4_000, connect: { lookup: guardedLookup } });
  }

  get policy(): OutboundPolicy {
    return this.#policy;
  }

  /** Throws unless `url` may be contacted (see the class comment). */
  check(url: URL, trustedHost: string | undefined): void {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw ConnectionErrors.forbiddenAddress(url.href, 'only http and https URLs are used');
    if (url.username || url.password) throw ConnectionErrors.forbiddenAddress(url.href, 'URLs with credentials are not used');
    if (this.#policy.allowPrivateAddresses || url.hostname === trustedHost) return;
    if (url.protocol !== 'https:') throw ConnectionErrors.forbiddenAddress(url.href, 'a URL learned from a remote server must use https');
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) && isPrivateAddress(host)) throw ConnectionErrors.forbiddenAddress(url.href, 'it is a private or loopback address');
    if (host === 'localhost' || host.endsWith('.localhost')) throw ConnectionErrors.forbiddenAddress(url.href, 'it is a loopback name');
  }

  /**
   * One request with the policy applied, a timeout, and the body read up to the size
   * limit. Network failures throw `connection_unreachable`; an oversized body throws
   * `response_too_large`. HTTP error statuses are returned, not thrown.
   */
  async fetch(target: string | URL, init: OutboundInit = {}): Promise<Response> {
    let url = typeof target === 'string' ? parseUrl(target) : target;
    for (let hop = 0; ; hop++) {
      this.check(url, init.trustedHost);
      const trusted = this.#policy.allowPrivateAddresses || url.hostname === init.trustedHost;
      const timeout = AbortSignal.timeout(this.#policy.timeoutMs);
      const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
      let response;
      try {
        response = await undiciFetch(url, {
          method: init.method ?? 'GET',
          headers: init.headers ?? {},
          body: init.body ?? null,
          redirect: 'manual',
          signal,
          dispatcher: trusted ? this.#open : this.#guarded,
        });
      } catch (error) {
        const cause = (error as { cause?: unknown }).cause;
        if (cause instanceof PrivateAddressError) throw ConnectionErrors.forbiddenAddress(url.href, cause.message);
        throw ConnectionErrors.unreachable(url.origin, error);
      }
      const location = response.headers.get('location');
      if (init.followRedirects !== false && response.status >= 300 && response.status < 400 && location && hop < 3 && (init.method ?? 'GET') === 'GET') {
        await response.body?.cancel();
        url = new URL(location, url);
        continue;
      }
      const body = await readLimited(response, this.#policy.maxResponseBytes, url.href, signal);
      const headers = new Headers();
      response.headers.forEach((value, name) => headers.append(name, value));
      const nullBody = response.status === 204 || response.status === 304 || (response.status >= 100 && response.status < 200);
      // The status of a redirect answered manually is still a real status: keep it.
      return new Response(nullBody ? null : body, { status: response.status, statusText: response.statusText, headers });
    }
  }

  /** A fetch for openid-client's `customFetch`, bound to one connection's trusted host. */
  fetchFor(trustedHost: string | undefined) {
    return (url: string, options: { method: string; headers: Record<string, string>; body?: unknown; signal?: AbortSignal }) =>
      this.fetch(url, {
        method: options.method,
        headers: options.headers,
        body: (options.body as string | URLSearchParams | null | undefined) ?? null,
        trustedHost,
        followRedirects: false,
        signal: options.signal,
      });
  }

  async close(): Promise<void> {
    await this.#open.close();
    if (this.#guarded !== this.#open) await this.#guarded.close();
  }
}

function parseUrl(text: string): URL {
  try {
    return new URL(text);
  } catch {
    throw ConnectionErrors.forbiddenAddress(text, 'it is not an absolute URL');
  }
}

async function readLimited(response: Awaited<ReturnType<typeof undiciFetch>>, limit: number, url: string, signal: AbortSignal): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await response.body?.cancel();
    throw ConnectionErrors.tooLarge(url, limit);
  }
  if (!response.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      total += chunk.length;
      if (total > limit) {
        await response.body.cancel().catch(() => {});
        throw ConnectionErrors.tooLarge(url, limit);
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if ((error as { code?: string }).code === 'response_too_large') throw error;
    throw ConnectionErrors.unreachable(new URL(url).origin, signal.aborted ? signal.reason : error);
  }
  return Buffer.concat(chunks);
}

/** Reads a JSON object from a response, or says why it is not one. */
export async function jsonObject(response: Response): Promise<{ ok: true; value: Record<string, unknown> } | { ok: false; why: string }> {
  const text = await response.text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, why: `not JSON (${response.headers.get('content-type') ?? 'no content type'})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, why: 'not a JSON object' };
  return { ok: true, value: value as Record<string, unknown> };
}
