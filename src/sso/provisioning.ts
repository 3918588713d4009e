import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ROLE_ADMIN, isUniqueViolation, type UserDirectory, type UserView } from '../identity/index.ts';
import { PortcullisError } from '../errors.ts';
import { compileGroupPatterns, domainAllowed, listClaim, stringClaim, userNameFrom, validGroupName, type Claims } from './claims.ts';
import { SsoErrors } from './errors.ts';
import { fetchPicture } from './picture.ts';
import { claimDefaults, type ProviderClient } from './providers.ts';
import { withSsoTables, type SsoDb } from './tables.ts';

export interface ProvisioningOptions {
  db: SsoDb;
  users: UserDirectory;
  logger: Logger;
  firstUserAdmin: boolean;
  webhookUrl: string | undefined;
  defaultPicture: string;
  picture: { allowPrivate: boolean; maxBytes: number; timeoutMs: number };
  now?: () => number;
}

export interface SignedInUser {
  userName: string;
  subject: string;
  created: boolean;
}

const FIRST_ADMIN_MARKER = 'first-admin';
const LINK_TAKEN = 'sso_link_taken';
const EMAIL = /^[^\s@]{1,200}@[^\s@]{1,255}$/;

/**
 * Turns a provider's verified claims into a gateway user: found by (provider, subject),
 * else merged by email, else created (if sign-up is on); roles and groups follow the
 * claims when their management is on. Every refusal is a catalogue error with a status.
 */
export class Provisioner {
  readonly #o: ProvisioningOptions;
  readonly #now: () => number;
  readonly #blocked = new Map<string, (group: string) => boolean>();

  constructor(options: ProvisioningOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  async signIn(client: ProviderClient, claims: Claims, accessToken: string): Promise<SignedInUser> {
    const p = client.config;
    const defaults = claimDefaults(p);
    const subject = stringClaim(claims, defaults.subject);
    if (!subject || subject.length > 255) throw SsoErrors.noSubject();

    // Email: the claim, lower-cased; else the fallback address; else refused.
    let email = stringClaim(claims, p.claims.email)?.toLowerCase();
    let fallbackEmail = false;
    if (!email || !EMAIL.test(email)) {
      if (!p.emailFallback) throw SsoErrors.noEmail();
      email = `${p.id}@${subject.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 200)}.local`;
      fallbackEmail = true;
    }
    if (!domainAllowed(email, p.allowedDomains)) throw SsoErrors.domainRefused();
    // An address the provider says it has not verified must not take over an account.
    const trustedEmail = !fallbackEmail && claims.email_verified !== false && claims.email_verified !== 'false';

    const wantAdmin = this.#roleDecision(client, claims);
    const displayName = stringClaim(claims, p.claims.name)?.slice(0, 300);
    const pictureUrl = stringClaim(claims, defaults.picture);

    const identity = await this.#o.db
      .selectFrom('sso_identities')
      .selectAll()
      .where('provider', '=', p.id)
      .where('subject', '=', subject)
      .executeTakeFirst();

    let user: UserView | undefined;
    let created = false;
    if (identity) {
      user = await this.#o.users.get(identity.user_name);
    } else if (p.mergeByEmail && trustedEmail) {
      user = await this.#merge(client, subject, email, displayName, pictureUrl);
    }
    if (!user) {
      if (!p.signUp) throw SsoErrors.signUpDisabled();
      const made = await this.#create(client, claims, { subject, email, displayName, pictureUrl, wantAdmin, accessToken });
      user = made.user;
      created = made.created;
    } else {
      if (user.disabled) throw SsoErrors.userDisabled();
      user = await this.#update(client, user, { subject, email: trustedEmail ? email : undefined, displayName, pictureUrl, wantAdmin, accessToken, known: identity });
    }
    if (p.groups.enabled) await this.#syncGroups(client, user, claims);
    return { userName: user.name, subject, created };
  }

  /**
   * Role management: an admin role in the claim → ROLE_ADMIN, an allowed role → ROLE_USER,
   * roles present but none matching → 403. Returns undefined when management is off.
   */
  #roleDecision(client: ProviderClient, claims: Claims): boolean | undefined {
    const { roles, claims: names } = client.config;
    if (!roles.enabled) return undefined;
    const held = listClaim(claims, names.roles, names.rolesSeparator) ?? [];
    if (held.length === 0) return false;
    const admin = roles.admin.some((r) => held.includes(r));
    const allowed = roles.allowed.some((r) => held.includes(r));
    if (!admin && !allowed) throw SsoErrors.roleRefused();
    return admin;
  }

  async #merge(client: ProviderClient, subject: string, email: string, displayName: string | undefined, pictureUrl: string | undefined): Promise<UserView | undefined> {
    const existing = await this.#o.users.findByEmail(email);
    if (!existing) return undefined;
    // The provider says this is another person than the one already linked: no merge.
    const linked = await this.#o.db
      .selectFrom('sso_identities')
      .select('subject')
      .where('provider', '=', client.id)
      .where('user_name', '=', existing.name)
      .executeTakeFirst();
    if (linked) return undefined;
    const inserted = await this.#link(this.#o.db, client.id, subject, existing.name, email, displayName, pictureUrl);
    if (!inserted) return this.#userOf(client.id, subject);
    this.#o.logger.info({ provider: client.id, user: existing.name }, 'linked a provider account to an existing user by email');
    return existing;
  }

  async #create(
    client: ProviderClient,
    claims: Claims,
    c: { subject: string; email: string; displayName: string | undefined; pictureUrl: string | undefined; wantAdmin: boolean | undefined; accessToken: string },
  ): Promise<{ user: UserView; created: boolean }> {
    const p = client.config;
    if (await this.#o.users.findByEmail(c.email)) {
      // The same person's other tab may have just created the account: use it.
      const winner = await this.#userOf(p.id, c.subject);
      if (winner) return { user: winner, created: false };
      throw SsoErrors.emailTaken();
    }
    const picture = c.pictureUrl ? ((await this.#picture(client, c.pictureUrl, c.accessToken)) ?? this.#o.defaultPicture) : this.#o.defaultPicture;
    const roles = [...p.defaultRoles, ...(c.wantAdmin ? [ROLE_ADMIN] : [])];
    const base =
      userNameFrom(stringClaim(claims, claimDefaults(p).userName)) ?? userNameFrom(c.email) ?? userNameFrom(`${p.id}-${c.subject}`) ?? `${p.id}-user`;

    let user: UserView | undefined;
    for (let attempt = 1; attempt <= 20 && !user; attempt++) {
      const name = attempt === 1 ? base : attempt < 20 ? `${base}-${attempt}` : `${base}-${randomBytes(4).toString('hex')}`;
      try {
        // The user and its (provider, subject) link are written in one transaction: a
        // concurrent login of the same account sees both or neither.
        user = await this.#o.users.create(
          { name, email: c.email, picture, roles },
          { inTransaction: async (tx) => void (await this.#link(withSsoTables(tx), p.id, c.subject, name, c.email, c.displayName, c.pictureUrl, true)) },
        );
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === 'email_taken' || code === LINK_TAKEN) {
          const winner = await this.#userOf(p.id, c.subject);
          if (winner) return { user: winner, created: false };
          throw SsoErrors.emailTaken();
        }
        if (code !== 'user_exists') throw error;
      }
    }
    if (!user) throw new PortcullisError(500, 'sso_no_user_name', 'No free user name could be found.');

    // Decided after the insert, through a primary key: of two first logins at once,
    // exactly one inserts the marker and becomes admin.
    // The marker is claimed by the first SSO user whatever their roles or the setting, so
    // "first" never moves on to a later user (an admin by roles claim, or after a change).
    if ((await this.#claimFirstAdmin(user.name)) && this.#o.firstUserAdmin && !user.roles.includes(ROLE_ADMIN)) {
      user = await this.#o.users.update(user.name, { roles: [...user.roles, ROLE_ADMIN] });
      this.#o.logger.info({ provider: p.id, user: user.name }, 'the first SSO user was made an administrator');
    }
    this.#o.logger.info({ provider: p.id, user: user.name }, 'created a user through single sign-on');
    this.#notifySignUp(p.id, user);
    return { user, created: true };
  }

  async #claimFirstAdmin(userName: string): Promise<boolean> {
    try {
      const result = await this.#o.db
        .insertInto('sso_markers')
        .values({ key: FIRST_ADMIN_MARKER, value: userName, created_at: this.#now() })
        .onConflict((oc) => oc.column('key').doNothing())
        .returning('key')
        .executeTakeFirst();
      return result !== undefined;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }

  async #update(
    client: ProviderClient,
    user: UserView,
    c: {
      subject: string;
      email: string | undefined;
      displayName: string | undefined;
      pictureUrl: string | undefined;
      wantAdmin: boolean | undefined;
      accessToken: string;
      known: { email: string | null; display_name: string | null; picture_url: string | null } | undefined;
    },
  ): Promise<UserView> {
    const p = client.config;
    const patch: { roles?: string[]; email?: string; picture?: string } = {};
    if (c.wantAdmin !== undefined && c.wantAdmin !== user.roles.includes(ROLE_ADMIN)) {
      patch.roles = c.wantAdmin ? [...user.roles, ROLE_ADMIN] : user.roles.filter((r) => r !== ROLE_ADMIN);
    }
    if (p.updateOnLogin.email && c.email && c.email !== user.email) {
      const other = await this.#o.users.findByEmail(c.email);
      if (!other) patch.email = c.email;
      else this.#o.logger.info({ provider: p.id, user: user.name }, 'not updating the email: another user has it');
    }
    let pictureUrl = c.known?.picture_url ?? null;
    if (p.updateOnLogin.picture && c.pictureUrl && c.pictureUrl !== c.known?.picture_url) {
      patch.picture = (await this.#picture(client, c.pictureUrl, c.accessToken)) ?? this.#o.defaultPicture;
      pictureUrl = c.pictureUrl;
    }
    if (Object.keys(patch).length > 0) {
      try {
        user = await this.#o.users.update(user.name, patch);
      } catch (error) {
        if ((error as { code?: string }).code !== 'email_taken' && !isUniqueViolation(error)) throw error;
        delete patch.email;
        user = await this.#o.users.update(user.name, patch);
      }
    }
    await this.#o.db
      .updateTable('sso_identities')
      .set({
        last_login_at: this.#now(),
        email: c.email ?? c.known?.email ?? null,
        display_name: p.updateOnLogin.name && c.displayName ? c.displayName : (c.known?.display_name ?? c.displayName ?? null),
        picture_url: pictureUrl,
      })
      .where('provider', '=', p.id)
      .where('subject', '=', c.subject)
      .execute();
    return user;
  }

  /**
   * Inserts the (provider, subject) link; false when it already exists (a concurrent
   * login won), or, inside a user's creation, throws LINK_TAKEN so the insert rolls back.
   */
  async #link(
    db: SsoDb,
    provider: string,
    subject: string,
    userName: string,
    email: string,
    displayName: string | undefined,
    pictureUrl: string | undefined,
    throwIfTaken = false,
  ): Promise<boolean> {
    const now = this.#now();
    try {
      await db
        .insertInto('sso_identities')
        .values({ provider, subject, user_name: userName, email, display_name: displayName ?? null, picture_url: pictureUrl ?? null, created_at: now, last_login_at: now })
        .execute();
      return true;
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      if (throwIfTaken) throw Object.assign(new Error('the provider account is already linked'), { code: LINK_TAKEN });
      return false;
    }
  }

  async #userOf(provider: string, subject: string): Promise<UserView | undefined> {
    const row = await this.#o.db.selectFrom('sso_identities').select('user_name').where('provider', '=', provider).where('subject', '=', subject).executeTakeFirst();
    return row ? this.#o.users.get(row.user_name) : undefined;
  }

  /**
   * Group management: memberships follow the groups claim (missing groups created if
   * enabled); blocked groups are never joined, left or created. An absent claim changes
   * nothing; an empty one leaves every unblocked group.
   */
  async #syncGroups(client: ProviderClient, user: UserView, claims: Claims): Promise<void> {
    const p = client.config;
    const wanted = listClaim(claims, p.claims.groups, p.claims.groupsSeparator);
    if (wanted === undefined) return;
    let blocked = this.#blocked.get(p.id);
    if (!blocked) {
      blocked = compileGroupPatterns(p.groups.blocked);
      this.#blocked.set(p.id, blocked);
    }
    const target = wanted.filter((g) => validGroupName(g) && !blocked(g));
    const existing = new Set((await this.#o.db.selectFrom('groups').select('name').execute()).map((r) => r.name));
    if (p.groups.create) {
      for (const group of target) {
        if (existing.has(group)) continue;
        try {
          await this.#o.users.createGroup({ name: group });
          this.#o.logger.info({ provider: p.id, group }, 'created a group from a groups claim');
        } catch (error) {
          if ((error as { code?: string }).code !== 'group_exists') throw error;
        }
        existing.add(group);
      }
    }
    for (const group of user.groups) {
      if (!target.includes(group) && !blocked(group)) await this.#o.users.setMembership(group, user.name, false);
    }
    for (const group of target) {
      if (existing.has(group) && !user.groups.includes(group)) await this.#o.users.setMembership(group, user.name, true);
    }
  }

  async #picture(client: ProviderClient, url: string, accessToken: string): Promise<string | null> {
    let origins: Set<string>;
    try {
      origins = await client.ownOrigins();
    } catch {
      origins = new Set();
    }
    return fetchPicture(url, { ...this.#o.picture, bearer: { token: accessToken, origins } });
  }

  /** The sign-up webhook: fire and forget, so a slow receiver never slows a login. */
  #notifySignUp(provider: string, user: UserView): void {
    const url = this.#o.webhookUrl;
    if (!url) return;
    const message = `New user signed up through ${provider}: ${user.name}`;
    const body = JSON.stringify({ action: 'signup', message, user: { name: user.name, email: user.email, provider, createdAt: user.createdAt } });
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, redirect: 'error', signal: AbortSignal.timeout(this.#o.picture.timeoutMs) })
      .then(async (response) => {
        await response.body?.cancel();
        if (!response.ok) this.#o.logger.warn({ status: response.status, to: new URL(url).origin }, 'the sign-up webhook failed');
      })
      .catch((error: unknown) => this.#o.logger.warn({ to: new URL(url).origin, err: { code: (error as { code?: string }).code } }, 'the sign-up webhook failed'));
  }
}
