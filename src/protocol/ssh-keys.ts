import { generateKeyPairSync, randomBytes } from 'node:crypto';

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function sshString(data: Buffer | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return Buffer.concat([u32(b.length), b]);
}

/**
 * A new Ed25519 SSH key pair: the private key in OpenSSH format (unencrypted) and the
 * public key as an OpenSSH line. Both the agent (host key) and the gateway (client key)
 * use it.
 *
 * Not `ssh2.utils.generateKeyPairSync('ed25519')`: ssh2 1.17 strips leading zero bytes
 * from the 32-byte public key, so about one key in 256 comes out malformed and
 * unparseable (by ssh2 itself and by OpenSSH).
 */
export function generateSshEd25519Key(comment = ''): { private: string; public: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = Buffer.from(String(publicKey.export({ format: 'jwk' }).x), 'base64url');
  const seed = Buffer.from(String(privateKey.export({ format: 'jwk' }).d), 'base64url');
  const type = 'ssh-ed25519';
  const publicBlob = Buffer.concat([sshString(type), sshString(pub)]);
  // PROTOCOL.key in OpenSSH: check ints, then the key, then padding 1, 2, 3… to the block size.
  const check = randomBytes(4);
  const section = Buffer.concat([check, check, sshString(type), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  const padLength = (8 - (section.length % 8)) % 8;
  const padding = Buffer.from(Array.from({ length: padLength }, (_, i) => i + 1));
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    u32(1),
    sshString(publicBlob),
    sshString(Buffer.concat([section, padding])),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g)!.join('\n');
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines}\n-----END OPENSSH PRIVATE KEY-----\n`,
    public: `${type} ${publicBlob.toString('base64')}${comment === '' ? '' : ` ${comment}`}`,
  };
}
