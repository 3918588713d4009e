import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyOptions, type JWTVerifyGetKey } from 'jose';

/** Largest JWK Set accepted, bytes. */
const MAX_JWKS_BYTES = 512 * 1024;
/** Keys are fetched again after this long even if nothing failed, ms. */
const JWKS_MAX_AGE_MS = 10 * 60_000;
/** A failed verification refetches the keys at most this often, ms (a flood of bad tokens must not become a flood of fetches). */
const JWKS_REFETCH_COOLDOWN_MS = 10_000;

/** jose error codes that a fresh key set can cure: the provider rotated its keys. */
const KEY_PROBLEMS = new Set(['ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS', 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED']);

/**
 * A provider's signing keys (its `jwks_uri`), cached. When a signature does not verify
 * — unknown `kid`, or a known `kid` whose key changed — the set is fetched again once
 * and the verification retried, because providers rotate keys.
 */
export class ProviderKeys {
  readonly #uri: string;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #keys: JWTVerifyGetKey | undefined;
  #fetchedAt = 0;
  #lastForcedAt = -Infinity;
  #inflight: Promise<JWTVerifyGetKey> | undefined;

  constructor(options: { uri: string; timeoutMs: number; now?: () => number }) {
    this.#uri = options.uri;
    this.#timeoutMs = options.timeoutMs;
    this.#now = options.now ?? Date.now;
  }

  async verify(jwt: string, options: JWTVerifyOptions): Promise<JWTPayload> {
    const keys = await this.#get(false);
    try {
      return (await jwtVerify(jwt, keys, options)).payload;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (!code || !KEY_PROBLEMS.has(code)) throw error;
      const now = this.#now();
      if (now - this.#lastForcedAt < JWKS_REFETCH_COOLDOWN_MS) throw error;
      this.#lastForcedAt = now;
      const fresh = await this.#get(true);
      return (await jwtVerify(jwt, fresh, options)).payload;
    }
  }

  #get(force: boolean): Promise<JWTVerifyGetKey> {
    if (!force && this.#keys && this.#now() - this.#fetchedAt < JWKS_MAX_AGE_MS) return Promise.resolve(this.#keys);
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #fetch(): Promise<JWTVerifyGetKey> {
    const response = await fetch(this.#uri, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(this.#timeoutMs) });
    if (response.status !== 200) throw new joseErrors.JWKSInvalid(`the JWK Set endpoint answered ${response.status}`);
    const text = await readCapped(response, MAX_JWKS_BYTES);
    const jwks = JSON.parse(text) as JSONWebKeySet;
    const keys = createLocalJWKSet(jwks);
    this.#keys = keys;
    this.#fetchedAt = this.#now();
    return keys;
  }
}

async function readCapped(response: Response, max: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > max) throw new joseErrors.JWKSInvalid('the JWK Set is too large');
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel();
      throw new joseErrors.JWKSInvalid('the JWK Set is too large');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
