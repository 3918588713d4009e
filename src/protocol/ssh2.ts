import { createSecretKey } from 'node:crypto';
import { Module, createRequire } from 'node:module';
import type * as Ssh2 from 'ssh2';

const require = createRequire(import.meta.url);

/**
 * ssh2 with its optional native crypto addon masked, for the gateway and the agent alike.
 *
 * The addon (`sshcrypto.node`, rebuilt for Node 24 at install) wraps its ciphers in
 * `node::ObjectWrap`, whose destructor on Node ≥ 23 unregisters an environment cleanup
 * hook and aborts the whole process ("Assertion failed: (env) != nullptr") when V8
 * collects the object while no JavaScript context is entered — an idle-time GC after
 * SSH connections closed is enough. Seen here under the terminal tests; the same class
 * of crash is why other addons stopped deriving from node::ObjectWrap.
 *
 * Masked, ssh2 uses node:crypto instead: AES-GCM still runs in OpenSSL, only the
 * per-packet glue is JavaScript (about 94 instead of 155 MB/s for one stream here,
 * against the ~30 MB/s a PTY produces). Import ssh2 only through this module, so the
 * mask is in place before ssh2 first loads its crypto.
 */
function maskNativeCrypto(): void {
  let file: string;
  try {
    file = require.resolve('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
  } catch {
    return; // not built: ssh2 falls back by itself
  }
  if (require.cache[file] !== undefined) return;
  const stub = new Module(file);
  stub.filename = file;
  stub.loaded = true;
  // ssh2 destructures the binding inside a try: null makes it take the node:crypto path.
  stub.exports = null;
  require.cache[file] = stub;
}

/**
 * ssh2's node:crypto AES-GCM path builds a new cipher per packet from the raw key
 * Buffer, and Node re-imports that key every time: a third of the CPU the gateway and
 * the agent spend per packet under load (profiled with the terminal benchmark). Handing
 * it a KeyObject made once per key makes each packet's cipher cheap. ssh2's crypto
 * module is patched before the rest of ssh2 loads, so its key exchange takes the wrapped
 * factories; if ssh2's internals ever differ, nothing is changed.
 */
function cacheCipherKeys(): void {
  type Factory = (config: unknown) => Record<string, unknown>;
  let crypto: { createCipher?: Factory; createDecipher?: Factory };
  try {
    crypto = require('ssh2/lib/protocol/crypto.js') as typeof crypto;
  } catch {
    return;
  }
  const wrap = (factory: Factory | undefined, keyField: string, nameField: string): Factory | undefined => {
    if (typeof factory !== 'function') return factory;
    return (config) => {
      const instance = factory(config);
      const key = instance[keyField];
      const name = instance[nameField];
      if (Buffer.isBuffer(key) && typeof name === 'string' && /-gcm$/.test(name)) instance[keyField] = createSecretKey(key);
      return instance;
    };
  };
  crypto.createCipher = wrap(crypto.createCipher, '_encKey', '_encSSLName');
  crypto.createDecipher = wrap(crypto.createDecipher, '_decipherKey', '_decipherSSLName');
}

maskNativeCrypto();
cacheCipherKeys();

export const ssh2 = require('ssh2') as typeof Ssh2;

/** Whether ssh2 runs its ciphers through the native addon (false once masked). */
export function ssh2NativeCrypto(): boolean {
  return (require('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean }).bindingAvailable;
}
