import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PortcullisError } from '../errors.ts';

const VERSION = 'v1';

/**
 * Encrypts secrets at rest (provider tokens, client secrets, private keys) with
 * AES-256-GCM under the gateway's secret key. Output: `v1.<iv>.<tag>.<ciphertext>` in
 * base64url. `context` is bound as additional data so a ciphertext copied into another
 * row or column fails to decrypt.
 */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new TypeError('SecretBox needs a 32-byte key');
    this.#key = key;
  }

  /**
   * A MAC under a subkey of the secret key derived for `purpose` (HKDF), so nodes that
   * share the secret key can authenticate messages to each other without a new secret.
   */
  mac(purpose: string, data: string): string {
    const key = Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), `portcullis ${purpose}`, 32));
    return createHmac('sha256', key).update(data).digest('base64url');
  }

  seal(plaintext: string, context = ''): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join('.');
  }

  open(sealed: string, context = ''): string {
    const [version, iv, tag, body] = sealed.split('.');
    if (version !== VERSION || !iv || !tag || body === undefined) {
      throw new PortcullisError(500, 'secret_corrupt', 'a stored secret has an unknown format');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch (cause) {
      throw new PortcullisError(500, 'secret_undecryptable', 'a stored secret cannot be decrypted (wrong secret key?)', { cause });
    }
  }
}

/**
 * The secret key comes from configuration, else from `<dataDir>/secret.key`, created
 * with 0600 permissions on first start.
 */
export function loadSecretKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured) return Buffer.from(configured, 'base64');
  const file = path.join(dataDir, 'secret.key');
  try {
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new PortcullisError(500, 'secret_key_invalid', `${file} does not hold a 32-byte base64 key`);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  // 'wx' so two processes starting at once cannot both write different keys.
  try {
    writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return loadSecretKey(undefined, dataDir);
    throw error;
  }
  chmodSync(file, 0o600);
  return key;
}
