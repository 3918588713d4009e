import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Addresses a fetch driven by a claim (a picture URL chosen by whoever controls the
 * provider account) must not reach: loopback, private, link-local, carrier-grade NAT,
 * multicast, reserved, documentation and unspecified ranges, for IPv4 and IPv6
 * (IPv4-mapped IPv6 addresses are checked as IPv4).
 */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv6');
}

/** Whether an IP address literal is private, loopback or otherwise not public. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

export class OutboundRefused extends Error {
  readonly code = 'ERR_OUTBOUND_REFUSED';
}

/**
 * A DNS lookup that refuses private addresses. It is the lookup the socket connects
 * with, so the address checked is the address used (no DNS-rebinding window).
 */
function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const list = addresses as unknown as LookupAddress[];
      if (!allowPrivate && (list.length === 0 || list.some((a) => isPrivateAddress(a.address)))) {
        return callback(new OutboundRefused(`${hostname} resolves to a private address`), '', 0);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      return callback(null, list[0]!.address, list[0]!.family);
    });
  };
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
      { lookup: guardedLookup(options.allowPrivate), signal, headers: { accept: 'image/*', ...headers }, agent: false },
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
