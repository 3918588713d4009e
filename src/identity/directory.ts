import type { Kysely } from 'kysely';
import type { Bus } from '../cluster/index.ts';
import type { Database } from '../store/index.ts';
import { IdentityErrors } from './errors.ts';
import { hashPassword } from './passwords.ts';
import { ROLE_NAME, ROLE_USER, makePrincipal, sortedRoles, type Principal } from './principal.ts';

export interface UserView {
  name: string;
  /** Roles granted to the user directly (always including ROLE_USER), sorted. */
  roles: string[];
  /** Groups the user belongs to, sorted. */
  groups: string[];
  disabled: boolean;
  email: string | null;
  picture: string | null;
  createdAt: string;
}

export interface GroupView {
  name: string;
  roles: string[];
  members: string[];
  createdAt: string;
}

export interface NewUser {
  name: string;
  password?: string | undefined;
  roles?: readonly string[] | undefined;
  email?: string | null | undefined;
  picture?: string | null | undefined;
  disabled?: boolean | undefined;
}

export interface UserPatch {
  password?: string | null | undefined;
  roles?: readonly string[] | undefined;
  disabled?: boolean | undefined;
  email?: string | null | undefined;
  picture?: string | null | undefined;
}

export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}$/;

function checkRoles(roles: readonly string[]): void {
  for (const role of roles) if (!ROLE_NAME.test(role)) throw IdentityErrors.invalidRole(role);
}

const parseRoles = (json: string): string[] => {
  const value: unknown = JSON.parse(json);
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
};

interface CachedPrincipal {
  principal: Principal | null;
  passwordHash: string | null;
  expiresAt: number;
}

/**
 * Users and groups: the store's rows, and each user's effective principal (own roles +
 * group roles + ROLE_USER), cached briefly because it is needed on every request.
 * Changes made here invalidate the cache on every node through the bus.
 */
export class UserDirectory {
  readonly #db: Kysely<Database>;
  readonly #bus: Bus;
  readonly #cacheTtlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CachedPrincipal>();
  readonly #unsubscribe: () => void;

  constructor(options: { db: Kysely<Database>; bus: Bus; cacheTtlMs: number; now?: () => number }) {
    this.#db = options.db;
    this.#bus = options.bus;
    this.#cacheTtlMs = options.cacheTtlMs;
    this.#now = options.now ?? Date.now;
    this.#unsubscribe = this.#bus.subscribe((message) => {
      if (message.type === 'user-changed' || message.type === 'user-ended') this.#cache.delete(message.userName);
      // A group change touches many users: start afresh.
      if (message.type === 'custom' && message.channel === 'groups-changed') this.#cache.clear();
    });
  }

  close(): void {
    this.#unsubscribe();
  }

  /**
   * The principal of an enabled user, with its password hash (for Basic auth), or null
   * if the user does not exist or is disabled.
   */
  async lookup(name: string): Promise<{ principal: Principal; passwordHash: string | null } | null> {
    const now = this.#now();
    const hit = this.#cache.get(name);
    if (hit && hit.expiresAt > now) return hit.principal ? { principal: hit.principal, passwordHash: hit.passwordHash } : null;
    const row = await this.#db.selectFrom('users').select(['name', 'roles', 'disabled', 'password_hash']).where('name', '=', name).executeTakeFirst();
    let entry: CachedPrincipal;
    if (!row || row.disabled) {
      entry = { principal: null, passwordHash: null, expiresAt: now + this.#cacheTtlMs };
    } else {
      const groups = await this.#db
        .selectFrom('group_members')
        .innerJoin('groups', 'groups.name', 'group_members.group_name')
        .select('groups.roles')
        .where('group_members.user_name', '=', name)
        .execute();
      const roles = [ROLE_USER, ...parseRoles(row.roles), ...groups.flatMap((g) => parseRoles(g.roles))];
      entry = { principal: makePrincipal(row.name, roles), passwordHash: row.password_hash, expiresAt: now + this.#cacheTtlMs };
    }
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(name, entry);
    return entry.principal ? { principal: entry.principal, passwordHash: entry.passwordHash } : null;
  }

  async principalOf(name: string): Promise<Principal | null> {
    return (await this.lookup(name))?.principal ?? null;
  }

  async countUsers(): Promise<number> {
    const row = await this.#db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async list(): Promise<UserView[]> {
    const rows = await this.#db.selectFrom('users').selectAll().orderBy('name').execute();
    const members = await this.#db.selectFrom('group_members').selectAll().execute();
    return rows.map((row) => this.#view(row, members.filter((m) => m.user_name === row.name).map((m) => m.group_name)));
  }

  async get(name: string): Promise<UserView> {
    const row = await this.#db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw IdentityErrors.userNotFound(name);
    const members = await this.#db.selectFrom('group_members').select('group_name').where('user_name', '=', name).execute();
    return this.#view(row, members.map((m) => m.group_name));
  }

  async findByEmail(email: string): Promise<UserView | null> {
    const row = await this.#db.selectFrom('users').select('name').where('email', '=', email.toLowerCase()).executeTakeFirst();
    return row ? this.get(row.name) : null;
  }

  #view(row: Database['users'], groups: string[]): UserView {
    return {
      name: row.name,
      roles: sortedRoles([ROLE_USER, ...parseRoles(row.roles)]),
      groups: groups.sort(),
      disabled: Boolean(row.disabled),
      email: row.email,
      picture: row.picture,
      createdAt: new Date(Number(row.created_at)).toISOString(),
    };
  }

  /**
   * Creates a user. `inTransaction` runs in the same transaction as the insert (SSO links
   * its identity row there, so a concurrent login never sees a user without its link).
   */
  async create(user: NewUser, options: { inTransaction?: (tx: Kysely<Database>) => Promise<void> } = {}): Promise<UserView> {
    if (!USER_NAME.test(user.name)) throw IdentityErrors.invalidName('user', user.name);
    const roles = sortedRoles([ROLE_USER, ...(user.roles ?? [])]);
    checkRoles(roles);
    const now = this.#now();
    const passwordHash = user.password ? await hashPassword(user.password) : null;
    const insert = (db: Kysely<Database>) =>
      db
        .insertInto('users')
        .values({
          name: user.name,
          password_hash: passwordHash,
          roles: JSON.stringify(roles),
          disabled: user.disabled ? 1 : 0,
          email: user.email ? user.email.toLowerCase() : null,
          picture: user.picture ?? null,
          created_at: now,
          updated_at: now,
        })
        .execute();
    try {
      const extra = options.inTransaction;
      if (extra) {
        await this.#db.transaction().execute(async (tx) => {
          await insert(tx);
          await extra(tx);
        });
      } else {
        await insert(this.#db);
      }
    } catch (error) {
      if (isUniqueViolation(error)) {
        if (await this.#db.selectFrom('users').select('name').where('name', '=', user.name).executeTakeFirst()) throw IdentityErrors.userExists(user.name);
        throw IdentityErrors.emailTaken();
      }
      throw error;
    }
    await this.#bus.publish({ type: 'user-changed', userName: user.name });
    return this.get(user.name);
  }

  async update(name: string, patch: UserPatch): Promise<UserView> {
    const values: Partial<Database['users']> = { updated_at: this.#now() };
    if (patch.roles !== undefined) {
      const roles = sortedRoles([ROLE_USER, ...patch.roles]);
      checkRoles(roles);
      values.roles = JSON.stringify(roles);
    }
    if (patch.password !== undefined) values.password_hash = patch.password === null ? null : await hashPassword(patch.password);
    if (patch.disabled !== undefined) values.disabled = patch.disabled ? 1 : 0;
    if (patch.email !== undefined) values.email = patch.email === null ? null : patch.email.toLowerCase();
    if (patch.picture !== undefined) values.picture = patch.picture;
    const result = await this.#db.updateTable('users').set(values).where('name', '=', name).executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw IdentityErrors.userNotFound(name);
    if (patch.disabled === true) {
      await this.#bus.publish({ type: 'user-ended', userName: name, reason: 'your account was disabled' });
    } else {
      await this.#bus.publish({ type: 'user-changed', userName: name });
    }
    return this.get(name);
  }

  async remove(name: string): Promise<void> {
    const result = await this.#db.deleteFrom('users').where('name', '=', name).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw IdentityErrors.userNotFound(name);
    await this.#bus.publish({ type: 'user-ended', userName: name, reason: 'your account was deleted' });
  }

  // Groups ------------------------------------------------------------------------

  async listGroups(): Promise<GroupView[]> {
    const rows = await this.#db.selectFrom('groups').selectAll().orderBy('name').execute();
    const members = await this.#db.selectFrom('group_members').selectAll().execute();
    return rows.map((row) => ({
      name: row.name,
      roles: sortedRoles(parseRoles(row.roles)),
      members: members.filter((m) => m.group_name === row.name).map((m) => m.user_name).sort(),
      createdAt: new Date(Number(row.created_at)).toISOString(),
    }));
  }

  async getGroup(name: string): Promise<GroupView> {
    const group = (await this.listGroups()).find((g) => g.name === name);
    if (!group) throw IdentityErrors.groupNotFound(name);
    return group;
  }

  async createGroup(group: { name: string; roles?: readonly string[] | undefined; members?: readonly string[] | undefined }): Promise<GroupView> {
    if (!USER_NAME.test(group.name)) throw IdentityErrors.invalidName('group', group.name);
    const roles = sortedRoles(group.roles ?? []);
    checkRoles(roles);
    await this.#db.transaction().execute(async (tx) => {
      const exists = await tx.selectFrom('groups').select('name').where('name', '=', group.name).executeTakeFirst();
      if (exists) throw IdentityErrors.groupExists(group.name);
      await tx.insertInto('groups').values({ name: group.name, roles: JSON.stringify(roles), created_at: this.#now() }).execute();
      await setMembers(tx, group.name, group.members ?? []);
    });
    await this.#groupsChanged();
    return this.getGroup(group.name);
  }

  async updateGroup(name: string, patch: { roles?: readonly string[] | undefined; members?: readonly string[] | undefined }): Promise<GroupView> {
    await this.#db.transaction().execute(async (tx) => {
      const exists = await tx.selectFrom('groups').select('name').where('name', '=', name).executeTakeFirst();
      if (!exists) throw IdentityErrors.groupNotFound(name);
      if (patch.roles !== undefined) {
        const roles = sortedRoles(patch.roles);
        checkRoles(roles);
        await tx.updateTable('groups').set({ roles: JSON.stringify(roles) }).where('name', '=', name).execute();
      }
      if (patch.members !== undefined) {
        await tx.deleteFrom('group_members').where('group_name', '=', name).execute();
        await setMembers(tx, name, patch.members);
      }
    });
    await this.#groupsChanged();
    return this.getGroup(name);
  }

  async removeGroup(name: string): Promise<void> {
    const result = await this.#db.deleteFrom('groups').where('name', '=', name).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw IdentityErrors.groupNotFound(name);
    await this.#groupsChanged();
  }

  /** Adds or removes one membership (used by SSO group sync). */
  async setMembership(groupName: string, userName: string, member: boolean): Promise<void> {
    if (member) {
      await this.#db.insertInto('group_members').values({ group_name: groupName, user_name: userName }).onConflict((oc) => oc.doNothing()).execute();
    } else {
      await this.#db.deleteFrom('group_members').where('group_name', '=', groupName).where('user_name', '=', userName).execute();
    }
    await this.#bus.publish({ type: 'user-changed', userName });
  }

  async #groupsChanged(): Promise<void> {
    await this.#bus.publish({ type: 'custom', channel: 'groups-changed', payload: null });
  }
}

async function setMembers(tx: Kysely<Database>, group: string, members: readonly string[]): Promise<void> {
  const unique = [...new Set(members)];
  if (unique.length === 0) return;
  const known = await tx.selectFrom('users').select('name').where('name', 'in', unique).execute();
  const missing = unique.filter((m) => !known.some((k) => k.name === m));
  if (missing.length > 0) throw IdentityErrors.userNotFound(missing[0]!);
  await tx.insertInto('group_members').values(unique.map((user_name) => ({ group_name: group, user_name }))).execute();
}

/** Unique-constraint violation, by the drivers' error codes (never by message text). */
export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; errcode?: number; errstr?: string };
  // PostgreSQL unique_violation; SQLite SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY.
  return e?.code === '23505' || e?.errcode === 2067 || e?.errcode === 1555;
}
