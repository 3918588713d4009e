import type { Kysely } from 'kysely';
import type { Database, SecretBox } from '../store/index.ts';

/** Row shapes of the connection tables (migration 2026-11-22-05-connections). */
export type ConnectionTables = {
  connections: {
    name: string;
    url: string;
    auth: string;
    scope: string | null;
    secret: string | null;
    client: string | null;
    revision: number;
    created_at: number;
    updated_at: number;
  };
  connection_tokens: {
    connection_name: string;
    user_name: string;
    tokens: string;
    expires_at: number;
    has_refresh: number;
    version: number;
    updated_at: number;
  };
  connection_authorizations: {
    id: string;
    connection_name: string;
    user_name: string;
    secret: string;
    return_to: string;
    expires_at: number;
  };
};

export type ConnectionRow = ConnectionTables['connections'];
export type TokenRow = ConnectionTables['connection_tokens'];
export type AuthorizationRow = ConnectionTables['connection_authorizations'];

/**
 * The connection tables, nothing else: queries only, no policy. Sealing contexts bind
 * each ciphertext to its row and column, so a value copied elsewhere does not open.
 */
export class ConnectionStore {
  readonly db: Kysely<Database & ConnectionTables>;
  readonly secrets: SecretBox;

  constructor(db: Kysely<Database>, secrets: SecretBox) {
    this.db = db.$extendTables<ConnectionTables>() as unknown as Kysely<Database & ConnectionTables>;
    this.secrets = secrets;
  }

  static secretContext = (name: string) => `connections:${name}:secret`;
  static clientContext = (name: string) => `connections:${name}:client`;
  static tokenContext = (name: string, user: string) => `connections:${name}:tokens:${user}`;
  static authorizationContext = (id: string) => `connections:authorization:${id}`;

  list(): Promise<ConnectionRow[]> {
    return this.db.selectFrom('connections').selectAll().orderBy('name').execute();
  }

  get(name: string): Promise<ConnectionRow | undefined> {
    return this.db.selectFrom('connections').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /** The revision only: a cheap check whether a cached connection is still current. */
  async revision(name: string): Promise<{ revision: number; updated_at: number } | undefined> {
    return this.db.selectFrom('connections').select(['revision', 'updated_at']).where('name', '=', name).executeTakeFirst();
  }

  async insert(row: ConnectionRow): Promise<void> {
    await this.db.insertInto('connections').values(row).execute();
  }

  /** Updates if the row is still at `revision`; false when someone else changed it first. */
  async update(name: string, revision: number, values: Partial<ConnectionRow>): Promise<boolean> {
    const result = await this.db
      .updateTable('connections')
      .set({ ...values, revision: revision + 1 })
      .where('name', '=', name)
      .where('revision', '=', revision)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async remove(name: string): Promise<boolean> {
    // Explicit child deletes: SQLite enforces the foreign keys, but this keeps both stores alike.
    await this.db.deleteFrom('connection_tokens').where('connection_name', '=', name).execute();
    await this.db.deleteFrom('connection_authorizations').where('connection_name', '=', name).execute();
    const result = await this.db.deleteFrom('connections').where('name', '=', name).executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }

  token(name: string, user: string): Promise<TokenRow | undefined> {
    return this.db.selectFrom('connection_tokens').selectAll().where('connection_name', '=', name).where('user_name', '=', user).executeTakeFirst();
  }

  tokenStates(user: string): Promise<Array<Pick<TokenRow, 'connection_name' | 'expires_at' | 'has_refresh'>>> {
    return this.db.selectFrom('connection_tokens').select(['connection_name', 'expires_at', 'has_refresh']).where('user_name', '=', user).execute();
  }

  /** Stores a user's tokens, replacing earlier ones. */
  async putToken(row: TokenRow): Promise<void> {
    await this.db
      .insertInto('connection_tokens')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['connection_name', 'user_name']).doUpdateSet({
          tokens: row.tokens,
          expires_at: row.expires_at,
          has_refresh: row.has_refresh,
          version: row.version,
          updated_at: row.updated_at,
        }),
      )
      .execute();
  }

  /** Replaces tokens only if still at `version` (refresh races between nodes). */
  async replaceToken(name: string, user: string, version: number, values: Omit<TokenRow, 'connection_name' | 'user_name'>): Promise<boolean> {
    const result = await this.db
      .updateTable('connection_tokens')
      .set(values)
      .where('connection_name', '=', name)
      .where('user_name', '=', user)
      .where('version', '=', version)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async deleteToken(name: string, user: string, version?: number): Promise<void> {
    let query = this.db.deleteFrom('connection_tokens').where('connection_name', '=', name).where('user_name', '=', user);
    if (version !== undefined) query = query.where('version', '=', version);
    await query.execute();
  }

  async deleteTokens(name: string): Promise<void> {
    await this.db.deleteFrom('connection_tokens').where('connection_name', '=', name).execute();
  }

  async putAuthorization(row: AuthorizationRow, now: number): Promise<void> {
    // Expired authorizations are swept whenever a new one starts: the table stays small.
    await this.db.deleteFrom('connection_authorizations').where('expires_at', '<', now).execute();
    await this.db.insertInto('connection_authorizations').values(row).execute();
  }

  authorization(id: string): Promise<AuthorizationRow | undefined> {
    return this.db.selectFrom('connection_authorizations').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Consumes an authorization: true only for the one caller that deleted it. */
  async takeAuthorization(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('connection_authorizations').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }
}
