import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { Logger } from 'pino';
import type { SessionManager } from '../identity/index.ts';
import type { ProviderClient } from './providers.ts';
import type { SsoDb } from './tables.ts';
import type { ProviderSessions } from './tokens.ts';

/** The event a logout token must carry (OpenID Connect Back-Channel Logout 1.0, §2.4). */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** Longest logout token accepted, characters. */
const MAX_LOGOUT_TOKEN = 16 * 1024;
/** Remembered `jti`s (replays are refused, §2.6 step 10); oldest forgotten first. */
const MAX_SEEN_JTI = 10_000;
const CLOCK_TOLERANCE_S = 60;

export type BackchannelResult = { status: 200; body: Record<string, never> } | { status: 400; body: { error: 'invalid_request'; error_description: string } };

const invalid = (description: string): BackchannelResult => ({ status: 400, body: { error: 'invalid_request', error_description: description } });

/**
 * OIDC Back-Channel Logout 1.0: validates a logout token (§2.6) and ends the matching
 * gateway sessions (on every node, through the bus) and provider tokens.
 */
export class BackchannelLogout {
  readonly #clients: ReadonlyMap<string, ProviderClient>;
  readonly #db: SsoDb;
  readonly #sessions: SessionManager;
  readonly #tokens: ProviderSessions;
  readonly #logger: Logger;
  readonly #maxAgeSeconds: number;
  readonly #seen = new Map<string, number>();

  constructor(options: { clients: ReadonlyMap<string, ProviderClient>; db: SsoDb; sessions: SessionManager; tokens: ProviderSessions; logger: Logger; maxAgeSeconds: number }) {
    this.#clients = options.clients;
    this.#db = options.db;
    this.#sessions = options.sessions;
    this.#tokens = options.tokens;
    this.#logger = options.logger;
    this.#maxAgeSeconds = options.maxAgeSeconds;
  }

  async handle(logoutToken: unknown): Promise<BackchannelResult> {
    const result = await this.#handle(logoutToken);
    if (result.status === 400) this.#logger.info({ reason: result.body.error_description }, 'refused a back-channel logout token');
    return result;
  }

  async #handle(logoutToken: unknown): Promise<BackchannelResult> {
    if (typeof logoutToken !== 'string' || logoutToken === '') return invalid('Missing logout_token parameter');
    if (logoutToken.length > MAX_LOGOUT_TOKEN) return invalid('logout_token is too long');
    let unverified: Record<string, unknown>;
    try {
      const header = decodeProtectedHeader(logoutToken);
      if (header.alg === undefined || header.alg === 'none') return invalid('logout_token must be signed');
      unverified = decodeJwt(logoutToken) as Record<string, unknown>;
    } catch {
      return invalid('Malformed logout_token');
    }

    // §2.6 steps 3-4: the issuer is a configured provider and we are the audience.
    const iss = unverified.iss;
    if (typeof iss !== 'string') return invalid('logout_token missing iss claim');
    const candidates = [...this.#clients.values()].filter((c) => c.issuer === iss && c.config.backchannelLogout);
    if (candidates.length === 0) return invalid('No configured provider matches the token issuer');
    const audiences = typeof unverified.aud === 'string' ? [unverified.aud] : Array.isArray(unverified.aud) ? unverified.aud : [];
    const client = candidates.find((c) => audiences.includes(c.config.clientId));
    if (!client) return invalid('logout_token audience is not this client');

    // §2.6 step 3: signature through the provider's JWKS; iss, aud, iat (and exp when present).
    let claims: Record<string, unknown>;
    try {
      claims = await client.verifyProviderJwt(logoutToken, {
        issuer: iss,
        audience: client.config.clientId,
        requiredClaims: ['iat', 'jti'],
        maxTokenAge: this.#maxAgeSeconds,
        clockTolerance: CLOCK_TOLERANCE_S,
      });
    } catch (error) {
      return invalid(`Invalid logout_token: ${reasonOf(error)}`);
    }

    // §2.6 step 5: the back-channel logout event, whose value is a JSON object.
    const events = claims.events;
    const event = typeof events === 'object' && events !== null ? (events as Record<string, unknown>)[BACKCHANNEL_LOGOUT_EVENT] : undefined;
    if (typeof event !== 'object' || event === null || Array.isArray(event)) return invalid('logout_token lacks the back-channel logout event');
    // §2.6 step 6: sub, sid, or both.
    const sub = typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : undefined;
    const sid = typeof claims.sid === 'string' && claims.sid !== '' ? claims.sid : undefined;
    if (sub === undefined && sid === undefined) return invalid('logout_token must contain sub or sid');
    // §2.6 step 7: a nonce is forbidden (an ID token must not pass as a logout token).
    if (Object.hasOwn(claims, 'nonce')) return invalid('logout_token must not contain a nonce');
    // §2.6 step 10 (optional): refuse a replay.
    const jti = `${client.id}:${String(claims.jti)}`;
    if (this.#seen.has(jti)) return invalid('logout_token was already used');
    this.#remember(jti);

    const ended = await this.#revoke(client, sub, sid);
    this.#logger.info({ provider: client.id, sessions: ended }, 'back-channel logout');
    return { status: 200, body: {} };
  }

  /** Ends the sessions the token names: by `sid` when present (only that user's if `sub` is too), else every session of `sub` from this provider. */
  async #revoke(client: ProviderClient, sub: string | undefined, sid: string | undefined): Promise<number> {
    const reason = 'you signed out at the identity provider';
    const userName = sub === undefined ? undefined : await this.#userOf(client.id, sub);
    if (sid !== undefined) {
      let ended = 0;
      for (const record of await this.#sessions.findBySsoSid(client.id, sid)) {
        if (sub !== undefined && record.userName !== userName) continue;
        if (await this.#sessions.end(record.id, reason)) ended++;
      }
      await this.#tokens.deleteForSid(client.id, sid);
      return ended;
    }
    if (userName === undefined) return 0;
    const ended = await this.#sessions.endAllForUser(userName, reason, { ssoProvider: client.id });
    await this.#tokens.deleteForUser(userName, client.id);
    return ended;
  }

  async #userOf(provider: string, subject: string): Promise<string | undefined> {
    const row = await this.#db.selectFrom('sso_identities').select('user_name').where('provider', '=', provider).where('subject', '=', subject).executeTakeFirst();
    return row?.user_name;
  }

  #remember(jti: string): void {
    if (this.#seen.size >= MAX_SEEN_JTI) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(jti, Date.now());
  }
}

/** A short reason from a jose error code (never the token). */
function reasonOf(error: unknown): string {
  const e = error as { code?: string; claim?: string };
  switch (e.code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'signature verification failed';
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'signing algorithm not allowed';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `${e.claim ?? 'a'} claim check failed`;
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'malformed';
    default:
      return 'the provider keys could not be used';
  }
}
