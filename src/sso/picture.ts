import { guardedGet } from './outbound.ts';

/** Image formats accepted as pictures, recognised by their first bytes (the Content-Type is not trusted). */
function sniffImage(body: Buffer): string | undefined {
  if (body.length >= 8 && body.readUInt32BE(0) === 0x89504e47) return 'image/png';
  if (body.length >= 3 && body[0] === 0xff && body[1] === 0xd8 && body[2] === 0xff) return 'image/jpeg';
  if (body.length >= 6 && body.toString('latin1', 0, 4) === 'GIF8') return 'image/gif';
  if (body.length >= 12 && body.toString('latin1', 0, 4) === 'RIFF' && body.toString('latin1', 8, 12) === 'WEBP') return 'image/webp';
  if (body.length >= 12 && body.toString('latin1', 4, 12) === 'ftypavif') return 'image/avif';
  return undefined;
}

const DATA_URL = /^data:(image\/(?:png|jpeg|gif|webp|avif));base64,([A-Za-z0-9+/]+={0,2})$/;

export interface PictureOptions {
  allowPrivate: boolean;
  maxBytes: number;
  timeoutMs: number;
  /** Sent only to the provider's own origin (e.g. Microsoft Graph's photo endpoint needs it). */
  bearer?: { token: string; origins: ReadonlySet<string> } | undefined;
}

/**
 * A picture URL from a claim → a `data:` URL the gateway stores and serves itself, or
 * null when it cannot be had (not an image, too large, private address, unreachable).
 * SVG is refused: it can carry script.
 */
export async function fetchPicture(url: string, options: PictureOptions): Promise<string | null> {
  if (url.startsWith('data:')) {
    const match = DATA_URL.exec(url);
    if (!match) return null;
    const body = Buffer.from(match[2]!, 'base64');
    const type = sniffImage(body);
    return type && body.length <= options.maxBytes ? `data:${type};base64,${body.toString('base64')}` : null;
  }
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return null;
  }
  const headers = options.bearer && options.bearer.origins.has(target.origin) ? { authorization: `Bearer ${options.bearer.token}` } : undefined;
  try {
    const fetched = await guardedGet(target.href, { allowPrivate: options.allowPrivate, maxBytes: options.maxBytes, timeoutMs: options.timeoutMs, ...(headers ? { headers } : {}) });
    if (fetched.status !== 200) return null;
    const type = sniffImage(fetched.body);
    return type ? `data:${type};base64,${fetched.body.toString('base64')}` : null;
  } catch {
    return null;
  }
}
