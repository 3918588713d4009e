const BASE = 'http://gateway.invalid';

/**
 * A same-origin relative path to send the browser back to (after signing in, after
 * authorizing a connection), or undefined when `value` could lead elsewhere. The check
 * runs on the path as the URL parser normalises it too: `/.//evil.example` and
 * `/a/..//evil.example` normalise to the protocol-relative `//evil.example`.
 */
export function safeReturnPath(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return undefined;
  // eslint-disable-next-line no-control-regex
  if (!value.startsWith('/') || /[\\\u0000-\u001f\u007f]/.test(value)) return undefined;
  let url: URL;
  try {
    url = new URL(value, BASE);
  } catch {
    return undefined;
  }
  if (url.origin !== BASE) return undefined;
  const path = url.pathname + url.search + url.hash;
  return path.startsWith('//') || path.startsWith('/\\') ? undefined : path;
}
