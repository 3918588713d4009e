import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, type JWK } from 'jose';
import type { Kysely } from 'kysely';
import { PortcullisError } from '../errors.ts';
import type { Database, SecretBox } from '../store/index.ts';

export type JwtAlgorithm = 'RS512' | 'RS256' | 'ES256' | 'EdDSA';

export interface SigningKey {
  readonly kid: string;
  readonly algorithm: JwtAlgorithm;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: JWK;
  readonly retiredAt: number | null;
}

export interface KeyRingOptions {
  db: Kysely<Database>;
  secrets: SecretBox;
  algorithm: JwtAlgorithm;
  /** PEM pair from configuration: when given, the store's keys are not used. */
  privateKeyPem?: string | undefined;
  publicKeyPem?: string | undefined;
  /** JWT lifetime, ms: a retired key stays published this long (plus slack). */
  ttlMs: number;
  now?: () => number;
}

const SECRET_CONTEXT = 'signing_keys.private_key';
/** Clock skew allowed to verifiers: retired keys stay published a bit longer than the last JWT they signed. */
const PUBLISH_SLACK_MS = 60_000;

/**
 * The gateway's JWT signing keys: the current one, and retired ones that are still
 * published (and accepted) until every JWT they signed has expired.
 */
export class KeyRing {
  readonly #options: KeyRingOptions;
  readonly #now: () => number;
  #current!: SigningKey;
  #all: SigningKey[] = [];
  readonly #fromConfig: boolean;

  constructor(options: KeyRingOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#fromConfig = options.privateKeyPem !== undefined;
  }

  get current(): SigningKey {
    return this.#current;
  }

  get fromConfig(): boolean {
    return this.#fromConfig;
  }

  /** Loads keys (creating the first one if the store has none). */
  async load(): Promise<void> {
    if (this.#fromConfig) {
      const key = await keyFromPem(this.#options.algorithm, this.#options.privateKeyPem!, this.#options.publicKeyPem!);
      this.#current = key;
      this.#all = [key];
      return;
    }
    let rows = await this.#rows();
    const current = rows.find((r) => r.retired_at === null && r.algorithm === this.#options.algorithm);
    if (!current) {
      await this.rotate();
      rows = await this.#rows();
    }
    this.#all = rows.map((row) => this.#fromRow(row));
    this.#current = this.#all.find((k) => k.retiredAt === null && k.algorithm === this.#options.algorithm)!;
  }

  /** Keys that verify JWTs now: the current one and retired ones within their grace period. */
  verificationKeys(): SigningKey[] {
    const horizon = this.#now() - this.#options.ttlMs - PUBLISH_SLACK_MS;
    return this.#all.filter((k) => k.retiredAt === null || k.retiredAt > horizon);
  }

  findKey(kid: string): SigningKey | undefined {
    return this.verificationKeys().find((k) => k.kid === kid);
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.verificationKeys().map((k) => k.publicJwk) };
  }

  /**
   * Makes a new current key and retires the others (they stay published for one JWT
   * lifetime). Keys too old to matter are deleted. Returns the new key id.
   */
  async rotate(): Promise<string> {
    if (this.#fromConfig) {
      throw new PortcullisError(409, 'keys_from_config', 'The signing key pair comes from configuration (jwt.privateKey): replace it there.');
    }
    const algorithm = this.#options.algorithm;
    const { privateKey, publicKey } = await generateKeyPair(algorithm, {
      extractable: true,
      ...(algorithm.startsWith('RS') ? { modulusLength: 2048 } : {}),
    });
    const jwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(jwk);
    const now = this.#now();
    const pem = await exportPKCS8(privateKey);
    const db = this.#options.db;
    await db.transaction().execute(async (tx) => {
      await tx.updateTable('signing_keys').set({ retired_at: now }).where('retired_at', 'is', null).execute();
      await tx
        .deleteFrom('signing_keys')
        .where('retired_at', '<', now - this.#options.ttlMs - 10 * PUBLISH_SLACK_MS)
        .execute();
      await tx
        .insertInto('signing_keys')
        .values({
          kid,
          algorithm,
          private_key: this.#options.secrets.seal(pem, SECRET_CONTEXT),
          public_jwk: JSON.stringify({ ...jwk, kid, alg: algorithm, use: 'sig' }),
          created_at: now,
          retired_at: null,
        })
        .execute();
    });
    if (this.#all.length > 0) await this.load();
    return kid;
  }

  async #rows() {
    return this.#options.db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'desc').execute();
  }

  #fromRow(row: Database['signing_keys']): SigningKey {
    const pem = this.#options.secrets.open(row.private_key, SECRET_CONTEXT);
    const privateKey = createPrivateKey(pem);
    return {
      kid: row.kid,
      algorithm: row.algorithm as JwtAlgorithm,
      privateKey,
      publicKey: createPublicKey(privateKey),
      publicJwk: JSON.parse(row.public_jwk) as JWK,
      retiredAt: row.retired_at === null ? null : Number(row.retired_at),
    };
  }
}

/** The key ring the `jwt` configuration section describes, over a store. */
export function keyRingFor(
  store: { db: Kysely<Database>; secrets: SecretBox },
  jwt: { algorithm: JwtAlgorithm; privateKey?: string | undefined; publicKey?: string | undefined; ttl: number },
  now?: () => number,
): KeyRing {
  return new KeyRing({
    db: store.db,
    secrets: store.secrets,
    algorithm: jwt.algorithm,
    privateKeyPem: jwt.privateKey,
    publicKeyPem: jwt.publicKey,
    ttlMs: jwt.ttl * 1000,
    ...(now ? { now } : {}),
  });
}

async function keyFromPem(algorithm: JwtAlgorithm, privatePem: string, publicPem: string): Promise<SigningKey> {
  let privateKey: KeyObject;
  let publicKey: KeyObject;
  try {
    privateKey = createPrivateKey(privatePem);
    publicKey = createPublicKey(publicPem);
  } catch (cause) {
    throw new PortcullisError(500, 'jwt_key_invalid', 'jwt.privateKey / jwt.publicKey is not a valid PEM key', { cause });
  }
  const expected = algorithm.startsWith('RS') ? 'rsa' : algorithm === 'ES256' ? 'ec' : 'ed25519';
  if (privateKey.asymmetricKeyType !== expected) {
    throw new PortcullisError(500, 'jwt_key_invalid', `jwt.algorithm ${algorithm} needs a ${expected} key, got ${privateKey.asymmetricKeyType}`);
  }
  const derived = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  if (!derived.equals(publicKey.export({ format: 'der', type: 'spki' }))) {
    throw new PortcullisError(500, 'jwt_key_mismatch', 'jwt.publicKey is not the public half of jwt.privateKey');
  }
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, algorithm, privateKey, publicKey, publicJwk: { ...jwk, kid, alg: algorithm, use: 'sig' }, retiredAt: null };
}
