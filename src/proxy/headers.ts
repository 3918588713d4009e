import type { IncomingMessage } from 'node:http';

/** RFC 9110 §7.6.1 hop-by-hop headers, plus ones undici manages itself. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Request headers the gateway sets itself, never copied from the client. */
const REPLACED = new Set(['host', 'authorization', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'expect', 'cookie']);

export interface ForwardContext {
  readonly jwt: string;
  readonly cookieName: string;
  /** Whether the direct peer is a trusted proxy whose X-Forwarded-* may be kept. */
  readonly trusted: boolean;
  readonly clientIp: string;
}

/** Names listed in a Connection header are hop-by-hop for this message too. */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (!value) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  const tokens = text
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade');
  return tokens.length > 0 ? new Set(tokens) : undefined;
}

/**
 * The headers to send upstream, as a flat [name, value, …] list (undici's cheapest form,
 * and it keeps repeated headers as the client sent them).
 */
export function upstreamRequestHeaders(req: IncomingMessage, ctx: ForwardContext, keepUpgrade = false): string[] {
  const raw = req.rawHeaders;
  const extra = connectionTokens(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (REPLACED.has(lower)) continue;
    if (HOP_BY_HOP.has(lower) && !(keepUpgrade && (lower === 'upgrade' || lower === 'connection'))) continue;
    if (extra?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  const cookie = req.headers.cookie;
  if (cookie !== undefined) {
    const kept = stripCookie(cookie, ctx.cookieName);
    if (kept !== undefined) out.push('cookie', kept);
  }
  out.push('authorization', `Bearer ${ctx.jwt}`);
  const host = req.headers.host ?? '';
  if (ctx.trusted) {
    const prior = req.headers['x-forwarded-for'];
    out.push('x-forwarded-for', prior ? `${prior}, ${ctx.clientIp}` : ctx.clientIp);
    out.push('x-forwarded-proto', firstValue(req.headers['x-forwarded-proto']) ?? 'http');
    out.push('x-forwarded-host', firstValue(req.headers['x-forwarded-host']) ?? host);
  } else {
    out.push('x-forwarded-for', ctx.clientIp, 'x-forwarded-proto', 'http', 'x-forwarded-host', host);
  }
  return out;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v?.split(',')[0]?.trim() || undefined;
}

/** The Cookie header without the gateway's session cookie (undefined if nothing is left). */
export function stripCookie(header: string, name: string): string | undefined {
  if (!header.includes(name + '=')) return header;
  const kept = header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '' && !part.startsWith(name + '='));
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/** Response headers from upstream without hop-by-hop ones, ready for writeHead. */
export function downstreamResponseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const extra = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    out[name] = value;
  }
  return out;
}
