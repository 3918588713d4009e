import { hash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { JwtIssuer } from '../tokens/index.ts';
import type { UserDirectory } from './directory.ts';
import { IdentityErrors } from './errors.ts';
import { dummyPasswordHash, verifyPassword } from './passwords.ts';
import { ANONYMOUS, UNSECURED_ANONYMOUS, makePrincipal, type Authentication } from './principal.ts';
import type { FailureLimiter } from './rate-limit.ts';
import type { SessionManager } from './sessions.ts';

/** Failed password checks counted per client address and per user name (login form and Basic alike). */
export interface PasswordLimits {
  readonly perClient: FailureLimiter;
  readonly perUser: FailureLimiter;
}

interface BasicEntry {
  readonly name: string;
  /** The hash the password was verified against: if the user's hash changes, the entry is void. */
  readonly passwordHash: string;
  readonly expiresAt: number;
}

const MAX_BASIC_CACHE = 10_000;
const MAX_AUTHORIZATION_LENGTH = 8192;

/**
 * Turns a request's credentials into an Authentication. Present-but-wrong credentials
 * always throw 401; only a request with no credentials at all is anonymous.
 */
export class Authenticator {
  readonly #users: UserDirectory;
  readonly #sessions: SessionManager;
  readonly #jwt: JwtIssuer;
  readonly #cookieName: string;
  readonly #secured: boolean;
  readonly #basicTtlMs: number;
  readonly #now: () => number;
  /** Keyed by a salted hash of the credentials (per-process salt): no password is kept in memory. */
  readonly #basic = new Map<string, BasicEntry>();
  /** Verifications in progress: concurrent requests with one credential share one hash. */
  readonly #verifying = new Map<string, Promise<Authentication['principal']>>();
  readonly #salt = randomBytes(16).toString('base64');
  readonly #anonymous: Authentication;
  readonly #limits: PasswordLimits;

  constructor(options: {
    limits: PasswordLimits;
    users: UserDirectory;
    sessions: SessionManager;
    jwt: JwtIssuer;
    cookieName: string;
    secured: boolean;
    basicCacheTtlMs: number;
    now?: () => number;
  }) {
    this.#limits = options.limits;
    this.#users = options.users;
    this.#sessions = options.sessions;
    this.#jwt = options.jwt;
    this.#cookieName = options.cookieName;
    this.#secured = options.secured;
    this.#basicTtlMs = options.basicCacheTtlMs;
    this.#now = options.now ?? Date.now;
    this.#anonymous = Object.freeze({ principal: this.#secured ? ANONYMOUS : UNSECURED_ANONYMOUS, method: 'anonymous' as const });
  }

  get cookieName(): string {
    return this.#cookieName;
  }

  /** `clientIp` keys the password-guessing limit of Basic credentials. */
  async authenticate(headers: IncomingHttpHeaders, clientIp = ''): Promise<Authentication> {
    const authorization = headers.authorization;
    if (authorization !== undefined) return this.#fromAuthorization(authorization, clientIp);
    const cookie = headers.cookie;
    if (cookie !== undefined) {
      const token = readCookie(cookie, this.#cookieName);
      if (token !== undefined) return this.#fromSession(token);
    }
    return this.#anonymous;
  }

  /** Checks a name and password (login form, Basic). Slow on a miss by design. */
  async verifyPassword(name: string, password: string): Promise<Authentication['principal']> {
    const found = await this.#users.lookup(name);
    if (!found || found.passwordHash === null) {
      await verifyPassword(password, await dummyPasswordHash());
      throw IdentityErrors.badCredentials();
    }
    if (!(await verifyPassword(password, found.passwordHash))) throw IdentityErrors.badCredentials();
    return found.principal;
  }

  /**
   * A password check under the guessing limits: refused with 429 while the client or the
   * user name has too many recent failures; a failure counts against both, a success
   * clears the user name's count.
   */
  async verifyPasswordLimited(name: string, password: string, clientIp: string): Promise<Authentication['principal']> {
    const wait = Math.max(this.#limits.perClient.retryAfter(clientIp), this.#limits.perUser.retryAfter(name));
    if (wait > 0) throw IdentityErrors.rateLimited(wait);
    try {
      const principal = await this.verifyPassword(name, password);
      this.#limits.perUser.reset(name);
      return principal;
    } catch (error) {
      this.#limits.perClient.fail(clientIp);
      this.#limits.perUser.fail(name);
      throw error;
    }
  }

  async #fromAuthorization(header: string, clientIp: string): Promise<Authentication> {
    if (header.length > MAX_AUTHORIZATION_LENGTH) throw IdentityErrors.malformedAuthorization('too long');
    const space = header.indexOf(' ');
    const scheme = space < 0 ? header : header.slice(0, space);
    const value = space < 0 ? '' : header.slice(space + 1).trim();
    switch (scheme.toLowerCase()) {
      case 'basic':
        return this.#fromBasic(value, clientIp);
      case 'bearer': {
        if (value === '') throw IdentityErrors.malformedAuthorization('empty bearer token');
        const verified = await this.#jwt.verify(value);
        return { principal: makePrincipal(verified.name, verified.roles), method: 'bearer' };
      }
      default:
        throw IdentityErrors.malformedAuthorization('unsupported scheme (use Basic or Bearer)');
    }
  }

  async #fromBasic(encoded: string, clientIp: string): Promise<Authentication> {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw IdentityErrors.malformedAuthorization('Basic credentials are not base64');
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw IdentityErrors.malformedAuthorization('Basic credentials lack a colon');
    const name = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    // One-shot hash: an HMAC object per request costs more than the rest of the check.
    const key = hash('sha256', this.#salt + decoded, 'base64url');
    const now = this.#now();
    const hit = this.#basic.get(key);
    if (hit && hit.expiresAt > now) {
      const found = await this.#users.lookup(hit.name);
      if (found && found.passwordHash === hit.passwordHash) return { principal: found.principal, method: 'basic' };
      this.#basic.delete(key);
    }
    let pending = this.#verifying.get(key);
    if (!pending) {
      pending = this.verifyPasswordLimited(name, password, clientIp).finally(() => this.#verifying.delete(key));
      this.#verifying.set(key, pending);
    }
    const principal = await pending;
    const found = await this.#users.lookup(name);
    if (found?.passwordHash) {
      if (this.#basic.size >= MAX_BASIC_CACHE) this.#basic.delete(this.#basic.keys().next().value!);
      this.#basic.set(key, { name, passwordHash: found.passwordHash, expiresAt: now + this.#basicTtlMs });
    }
    return { principal, method: 'basic' };
  }

  async #fromSession(token: string): Promise<Authentication> {
    const session = await this.#sessions.resolve(token);
    if (!session) throw IdentityErrors.sessionInvalid();
    const principal = await this.#users.principalOf(session.userName);
    if (!principal) throw IdentityErrors.sessionInvalid();
    return { principal, method: 'session', sessionId: session.id };
  }
}

/** Reads one cookie's value without parsing the whole header into an object. */
export function readCookie(header: string, name: string): string | undefined {
  let from = 0;
  while (from < header.length) {
    const at = header.indexOf(name, from);
    if (at < 0) return undefined;
    const before = at === 0 ? '' : header.slice(0, at).trimEnd();
    if ((before === '' || before.endsWith(';')) && header[at + name.length] === '=') {
      const end = header.indexOf(';', at);
      return header.slice(at + name.length + 1, end < 0 ? undefined : end).trim();
    }
    from = at + name.length;
  }
  return undefined;
}
