import type { Kysely } from 'kysely';
import type { Database } from '../store/index.ts';

/** Row shapes of the SSO tables (migration 2026-11-22-03-sso). */
export type SsoTables = {
  sso_identities: {
    provider: string;
    subject: string;
    user_name: string;
    email: string | null;
    display_name: string | null;
    picture_url: string | null;
    created_at: number;
    last_login_at: number;
  };
  sso_sessions: {
    id: string;
    provider: string;
    subject: string;
    user_name: string;
    session_id: string | null;
    sid: string | null;
    /** Sealed JSON of the token set (SecretBox, bound to the row id). */
    tokens: string;
    expires_at: number;
    version: number;
    refreshing_until: number | null;
    created_at: number;
    updated_at: number;
  };
  sso_markers: {
    key: string;
    value: string;
    created_at: number;
  };
};

export type SsoDb = Kysely<Database & SsoTables>;

export const withSsoTables = (db: Kysely<Database>): SsoDb => db.withTables<SsoTables>();
