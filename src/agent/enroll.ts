import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { agentEndpoints, generateSshEd25519Key, ssh2, type EnrollRequest, type EnrollResponse } from '../protocol/index.ts';
import { AgentError } from './errors.ts';
import {
  HOST_KEY_FILE,
  IDENTITY_KEY_FILE,
  STATE_FILE,
  ensureStateDir,
  isEnrolled,
  publicKeyLine,
  writeSecretFile,
  type AgentCredentials,
  type AgentState,
} from './state.ts';
import { AGENT_VERSION } from './version.ts';

export interface EnrollOptions {
  server: string;
  token: string;
  stateDir: string;
  hostname?: string;
  version?: string;
  /** Whole request, connect to answer (ms). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** Enrollment tokens are opaque to the agent, but not unbounded. */
const MAX_TOKEN_LENGTH = 1024;
/** The gateway's answer is a few hundred bytes; anything much larger is not it. */
const MAX_RESPONSE_SIZE = 64 * 1024;
const DEFAULT_ENROLL_TIMEOUT_MS = 15_000;

/**
 * Registers this device with the gateway using a one-time token: generates the identity
 * key (signs connect assertions) and the SSH host key (pinned by the gateway), sends
 * their public halves, and stores the credentials 0600 in `stateDir`.
 */
export async function enroll(options: EnrollOptions): Promise<AgentCredentials> {
  const token = options.token.trim();
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH || /[^\x21-\x7e]/.test(token)) {
    throw new AgentError('AGENT_BAD_OPTION', 'the enrollment token is malformed (copy it exactly as the gateway printed it)');
  }
  const { enrollUrl } = endpoints(options.server);
  await ensureStateDir(options.stateDir);
  if (await isEnrolled(options.stateDir)) {
    throw new AgentError('AGENT_ALREADY_ENROLLED', `${options.stateDir} already holds an enrolled device; remove it (or use another --state-dir) to enroll again`);
  }

  const hostname = options.hostname ?? os.hostname();
  const identity = generateKeyPairSync('ed25519');
  const identityPem = identity.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const jwk = identity.publicKey.export({ format: 'jwk' });
  const host = generateSshEd25519Key(`portcullis-agent@${hostname}`);
  const hostPublicKey = publicKeyLine(host.private, 'the generated host key');

  // Keys are written before the token is spent, so a full disk or a read-only directory
  // fails here rather than after the gateway has consumed the one-time token.
  const identityFile = path.join(options.stateDir, IDENTITY_KEY_FILE);
  const hostKeyFile = path.join(options.stateDir, HOST_KEY_FILE);
  await writeSecretFile(identityFile, identityPem);
  await writeSecretFile(hostKeyFile, host.private);

  let answer: EnrollResponse;
  try {
    const body: EnrollRequest = {
      token,
      identityKey: { kty: 'OKP', crv: 'Ed25519', x: String(jwk.x) },
      hostKey: hostPublicKey,
      hostname,
      version: options.version ?? AGENT_VERSION,
    };
    answer = await postEnroll(options.fetch ?? fetch, enrollUrl, body, options.timeoutMs ?? DEFAULT_ENROLL_TIMEOUT_MS);
  } catch (err) {
    await rm(identityFile, { force: true });
    await rm(hostKeyFile, { force: true });
    throw err;
  }

  const state: AgentState = {
    version: 1,
    server: options.server,
    deviceId: answer.deviceId,
    name: answer.name,
    gatewayKey: answer.gatewayKey,
    enrolledAt: new Date().toISOString(),
  };
  await writeSecretFile(path.join(options.stateDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  return { state, identityKey: createPrivateKey(identityPem), hostKey: host.private, hostPublicKey };
}

function endpoints(server: string) {
  try {
    return agentEndpoints(server);
  } catch (err) {
    throw new AgentError('AGENT_BAD_OPTION', `--server must be the gateway's http(s) URL: ${(err as Error).message}`, { cause: err });
  }
}

async function postEnroll(fetchImpl: typeof fetch, url: string, body: EnrollRequest, timeoutMs: number): Promise<EnrollResponse> {
  let res: Response;
  let text: string;
  try {
    res = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      // A redirect would replay the one-time token to wherever it points.
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await readBounded(res, MAX_RESPONSE_SIZE);
  } catch (err) {
    const e = err as Error;
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause as Error | undefined)?.message ?? e.message;
    throw new AgentError('AGENT_ENROLL_FAILED', `cannot reach the gateway at ${url}: ${why}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const o = (json ?? {}) as Record<string, unknown>;
    const gatewayCode = typeof o.error === 'string' ? o.error.slice(0, 100) : undefined;
    const message = typeof o.message === 'string' ? o.message.slice(0, 500) : `HTTP ${res.status}`;
    const code = res.status >= 400 && res.status < 500 ? 'AGENT_ENROLL_REJECTED' : 'AGENT_ENROLL_FAILED';
    throw new AgentError(code, `the gateway refused the enrollment: ${message}${gatewayCode ? ` (${gatewayCode})` : ''}`, {
      status: res.status,
      ...(gatewayCode === undefined ? {} : { gatewayCode }),
    });
  }
  return validateAnswer(json);
}

function validateAnswer(json: unknown): EnrollResponse {
  const o = json as Record<string, unknown> | undefined;
  const ok = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max && !/[\u0000-\u001f]/.test(v);
  if (o === undefined || o === null || typeof o !== 'object' || !ok(o.deviceId, 200) || !ok(o.name, 200) || !ok(o.gatewayKey, 8192)) {
    throw new AgentError('AGENT_ENROLL_FAILED', 'the gateway answered the enrollment with an unexpected body');
  }
  const parsed = ssh2.utils.parseKey(o.gatewayKey);
  if (parsed instanceof Error || parsed.isPrivateKey()) {
    throw new AgentError('AGENT_ENROLL_FAILED', 'the gateway sent an unusable SSH key');
  }
  return { deviceId: o.deviceId, name: o.name, gatewayKey: o.gatewayKey };
}

async function readBounded(res: Response, limit: number): Promise<string> {
  if (res.body === null) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.length;
    if (size > limit) {
      await res.body.cancel().catch(() => {});
      throw new Error(`response larger than ${limit} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}
