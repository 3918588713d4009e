/**
 * Row shapes of every table. Timestamps are milliseconds since the epoch (BIGINT),
 * booleans are 0/1 integers and lists are JSON text, so one shape fits SQLite and PostgreSQL.
 */
export interface Database {
  users: UsersTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  sessions: SessionsTable;
  settings: SettingsTable;
  signing_keys: SigningKeysTable;
}

export interface UsersTable {
  name: string;
  password_hash: string | null;
  /** JSON array of role names granted individually. */
  roles: string;
  disabled: number;
  email: string | null;
  picture: string | null;
  created_at: number;
  updated_at: number;
}

export interface GroupsTable {
  name: string;
  roles: string;
  created_at: number;
}

export interface GroupMembersTable {
  group_name: string;
  user_name: string;
}

export interface SessionsTable {
  /** SHA-256 of the cookie value: a stolen database cannot be replayed as cookies. */
  id: string;
  user_name: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  user_agent: string | null;
  ip: string | null;
  /** SSO provider id and its session id (`sid`), for back-channel logout. */
  sso_provider: string | null;
  sso_sid: string | null;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface SigningKeysTable {
  kid: string;
  algorithm: string;
  /** PKCS#8 PEM, encrypted with the secret box. */
  private_key: string;
  /** Public JWK as JSON. */
  public_jwk: string;
  created_at: number;
  /** When it stopped signing; published until retired_at + JWT ttl. */
  retired_at: number | null;
}
