import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { guardedLookup, isPrivateAddress } from '../outbound/index.ts';

export class OutboundRefused extends Error {
  readonly code = 'ERR_OUTBOUND_REFUSED';
}

export interface FetchedBody {
  status: number;
  contentType: string;
  body: Buffer;
}

/**
 * GET a URL for a claim-driven purpose: http(s) only, private addresses refused unless
 * allowed, at most `maxBytes` of body, `timeoutMs` in all, and up to 3 redirects, each
 * checked again.
 */
export async function guardedGet(
  url: string,
  options: { allowPrivate: boolean; maxBytes: number; timeoutMs: number; headers?: Record<string, string> },
): Promise<FetchedBody> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  let current = new URL(url);
  for (let hop = 0; hop <= 3; hop++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') throw new OutboundRefused('only http and https URLs are fetched');
    const host = current.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) && !options.allowPrivate && isPrivateAddress(host)) throw new OutboundRefused('a private address');
    const result = await getOnce(current, options, deadline, hop === 0 ? options.headers : undefined);
    if (result.redirect) {
      current = new URL(result.redirect, current);
      continue;
    }
    return result.fetched!;
  }
  throw new OutboundRefused('too many redirects');
}

function getOnce(
  url: URL,
  options: { allowPrivate: boolean; maxBytes: number },
  signal: AbortSignal,
  headers: Record<string, string> | undefined,
): Promise<{ redirect?: string; fetched?: FetchedBody }> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).get(
      url,
      { ...(options.allowPrivate ? {} : { lookup: guardedLookup }), signal, headers: { accept: 'image/*', ...headers }, agent: false },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400 && response.headers.location) {
          response.resume();
          resolve({ redirect: response.headers.location });
          return;
        }
        const declared = Number(response.headers['content-length'] ?? '0');
        if (declared > options.maxBytes) {
          response.destroy();
          reject(new OutboundRefused(`larger than ${options.maxBytes} bytes`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            response.destroy();
            reject(new OutboundRefused(`larger than ${options.maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () =>
          resolve({ fetched: { status, contentType: String(response.headers['content-type'] ?? ''), body: Buffer.concat(chunks) } }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });
}
