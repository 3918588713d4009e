import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ssh2 } from '../protocol/index.ts';
import { AgentError } from './errors.ts';

/** What `state.json` holds: who this device is and whom it trusts. No secrets. */
export interface AgentState {
  version: 1;
  /** The gateway URL the device enrolled with (used when `--server` is omitted). */
  server: string;
  deviceId: string;
  name: string;
  /** OpenSSH public key line of the gateway's SSH client key: the only key allowed in. */
  gatewayKey: string;
  enrolledAt: string;
}

/** Everything the agent needs to run, loaded from (or just written to) the state directory. */
export interface AgentCredentials {
  state: AgentState;
  /** Ed25519 private key that signs connect assertions. */
  identityKey: KeyObject;
  /** SSH host private key (OpenSSH format), as ssh2 takes it. */
  hostKey: string;
  /** OpenSSH public key line of the host key, as pinned by the gateway. */
  hostPublicKey: string;
}

export const STATE_FILE = 'state.json';
export const IDENTITY_KEY_FILE = 'identity.pem';
export const HOST_KEY_FILE = 'ssh_host_ed25519_key';

/** Credential files larger than this are not ours (bytes). */
const MAX_STATE_FILE_SIZE = 64 * 1024;

export function defaultStateDir(): string {
  return path.join(os.homedir(), '.portcullis-agent');
}

/**
 * Creates the state directory (0700) or checks an existing one. Like OpenSSH with
 * `~/.ssh`, credentials in a directory others can write to (or read) are refused rather
 * than silently fixed, because the directory may not be ours to chmod (`--state-dir /tmp`).
 */
export async function ensureStateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new AgentError('AGENT_STATE_INVALID', `cannot create the state directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const st = await stat(dir);
  if (!st.isDirectory()) throw new AgentError('AGENT_STATE_INVALID', `state directory ${dir} is not a directory`);
  checkOwnership(dir, st.mode, st.uid, 'directory');
}

function checkOwnership(file: string, mode: number, uid: number, what: string): void {
  const uidNow = process.getuid?.();
  if (uidNow !== undefined && uid !== uidNow) {
    throw new AgentError('AGENT_STATE_INSECURE', `state ${what} ${file} belongs to uid ${uid}, not to the agent's user (uid ${uidNow})`);
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(3, '0');
    const fix = what === 'directory' ? 'chmod 700' : 'chmod 600';
    throw new AgentError('AGENT_STATE_INSECURE', `state ${what} ${file} is accessible by other users (mode ${octal}); run: ${fix} ${file}`);
  }
}

/** Writes a file readable only by its owner, atomically (a crash leaves the old file or none). */
export async function writeSecretFile(file: string, content: string): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function readSecretFile(file: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    throw new AgentError('AGENT_STATE_INVALID', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.size > MAX_STATE_FILE_SIZE) throw new AgentError('AGENT_STATE_INVALID', `${file} is not a credential file`);
    checkOwnership(file, st.mode, st.uid, 'file');
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

export async function isEnrolled(dir: string): Promise<boolean> {
  try {
    await stat(path.join(dir, STATE_FILE));
    return true;
  } catch {
    return false;
  }
}

/** OpenSSH public line (`type base64`) of a private or public key, or an AgentError. */
export function publicKeyLine(keyText: string, what: string): string {
  const parsed = ssh2.utils.parseKey(keyText);
  if (parsed instanceof Error || Array.isArray(parsed)) {
    throw new AgentError('AGENT_STATE_INVALID', `${what} is not a usable SSH key`, { cause: parsed instanceof Error ? parsed : undefined });
  }
  return `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`;
}

function parseState(text: string, file: string): AgentState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AgentError('AGENT_STATE_INVALID', `${file} is not valid JSON`, { cause: err });
  }
  const o = raw as Record<string, unknown>;
  const str = (k: string) => {
    const v = o?.[k];
    if (typeof v !== 'string' || v.length === 0 || v.length > 4096) throw new AgentError('AGENT_STATE_INVALID', `${file}: field "${k}" is missing or invalid`);
    return v;
  };
  if (o === null || typeof o !== 'object' || o.version !== 1) throw new AgentError('AGENT_STATE_INVALID', `${file}: unsupported state version`);
  return { version: 1, server: str('server'), deviceId: str('deviceId'), name: str('name'), gatewayKey: str('gatewayKey'), enrolledAt: str('enrolledAt') };
}

/** Loads the credentials of an enrolled device, checking every file's permissions. */
export async function loadCredentials(dir: string): Promise<AgentCredentials> {
  await ensureStateDir(dir);
  if (!(await isEnrolled(dir))) {
    throw new AgentError('AGENT_NOT_ENROLLED', `no device credentials in ${dir}; enroll first with --enroll TOKEN`);
  }
  const stateFile = path.join(dir, STATE_FILE);
  const state = parseState(await readSecretFile(stateFile), stateFile);
  const identityPem = await readSecretFile(path.join(dir, IDENTITY_KEY_FILE));
  const hostKey = await readSecretFile(path.join(dir, HOST_KEY_FILE));
  let identityKey: KeyObject;
  try {
    identityKey = createPrivateKey(identityPem);
  } catch (err) {
    throw new AgentError('AGENT_STATE_INVALID', `${IDENTITY_KEY_FILE} is not a private key`, { cause: err });
  }
  if (identityKey.asymmetricKeyType !== 'ed25519') throw new AgentError('AGENT_STATE_INVALID', `${IDENTITY_KEY_FILE} is not an Ed25519 key`);
  const hostPublicKey = publicKeyLine(hostKey, HOST_KEY_FILE);
  publicKeyLine(state.gatewayKey, 'the gateway key in state.json');
  return { state, identityKey, hostKey, hostPublicKey };
}
