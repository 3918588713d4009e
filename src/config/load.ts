import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.ts';
import { configSchema, type ConfigInput, type ParsedConfig } from './schema.ts';

/** Validated, frozen configuration with every derived value filled in. */
export type Config = Readonly<
  Omit<ParsedConfig, 'url' | 'database'> & {
    url: string;
    database: string;
    /** Whether `url` was given (else it follows the bound address, which matters for port 0). */
    urlExplicit: boolean;
    /** Host and port split from `listen`. */
    host: string;
    port: number;
  }
>;

type Env = Readonly<Record<string, string | undefined>>;

/** Environment variables that map onto configuration keys (dotted path, type). */
const ENV_KEYS: ReadonlyArray<readonly [string, string, 'string' | 'boolean' | 'nullable']> = [
  ['PORTCULLIS_LISTEN', 'listen', 'string'],
  ['PORTCULLIS_URL', 'url', 'string'],
  ['PORTCULLIS_DATABASE', 'database', 'string'],
  ['PORTCULLIS_DATA_DIR', 'dataDir', 'string'],
  ['PORTCULLIS_SECRET_KEY', 'secretKey', 'string'],
  ['PORTCULLIS_SECURITY_ENABLED', 'security.enabled', 'boolean'],
  ['PORTCULLIS_PROXY_URL', 'proxy.url', 'nullable'],
  ['PORTCULLIS_JWT_ALGORITHM', 'jwt.algorithm', 'string'],
  ['PORTCULLIS_REDIS', 'redis', 'string'],
  ['PORTCULLIS_LOG_LEVEL', 'log.level', 'string'],
];

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

function envValue(name: string, key: string, raw: string, kind: 'string' | 'boolean' | 'nullable'): unknown {
  if (kind === 'boolean') {
    if (/^(true|1|yes)$/i.test(raw)) return true;
    if (/^(false|0|no)$/i.test(raw)) return false;
    throw new ConfigError(key, `${name} must be true or false, got "${raw}"`);
  }
  if (kind === 'nullable' && (raw === '' || raw === 'null')) return null;
  return raw;
}

/** A PEM value in configuration may be the PEM text itself or a path to a file holding it. */
function readPem(key: string, value: string | undefined, baseDir: string): string | undefined {
  if (value === undefined || value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(path.resolve(baseDir, value), 'utf8');
  } catch (error) {
    throw new ConfigError(key, `cannot read PEM file ${value}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/**
 * Reads the YAML file (if any), overlays `PORTCULLIS_*` environment variables and
 * programmatic overrides, validates everything against the schema, and freezes it.
 * Throws ConfigError naming the first bad key.
 */
export function loadConfig(options: { file?: string | undefined; env?: Env; overrides?: ConfigInput } = {}): Config {
  const env = options.env ?? {};
  let raw: Record<string, unknown> = {};
  const file = options.file ?? env.PORTCULLIS_CONFIG;
  let baseDir = process.cwd();
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError('(file)', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (error) {
      throw new ConfigError('(file)', `${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigError('(root)', `${file} must hold a mapping of keys`);
    }
    raw = (parsed as Record<string, unknown> | null) ?? {};
    baseDir = path.dirname(path.resolve(file));
  }
  for (const [name, key, kind] of ENV_KEYS) {
    const value = env[name];
    if (value !== undefined) setPath(raw, key, envValue(name, key, value, kind));
  }
  if (options.overrides) raw = deepMerge(raw, options.overrides as Record<string, unknown>);

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw new ConfigError(key, issue.message);
  }
  const parsed = result.data;
  const { host, port } = splitListen(parsed.listen);
  const dataDir = path.resolve(baseDir, parsed.dataDir);
  const jwt = {
    ...parsed.jwt,
    privateKey: readPem('jwt.privateKey', parsed.jwt.privateKey, baseDir),
    publicKey: readPem('jwt.publicKey', parsed.jwt.publicKey, baseDir),
  };
  if ((jwt.privateKey === undefined) !== (jwt.publicKey === undefined)) {
    throw new ConfigError(jwt.privateKey ? 'jwt.publicKey' : 'jwt.privateKey', 'give both jwt.privateKey and jwt.publicKey, or neither');
  }
  if (parsed.secretKey !== undefined && Buffer.from(parsed.secretKey, 'base64').length !== 32) {
    throw new ConfigError('secretKey', 'must be 32 bytes encoded in base64');
  }
  const config = {
    ...parsed,
    dataDir,
    jwt,
    host,
    port,
    urlExplicit: parsed.url !== undefined,
    database: parsed.database ?? `sqlite:${path.join(dataDir, 'portcullis.db')}`,
    url: parsed.url ?? `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`,
  };
  return deepFreeze(config);
}

export function splitListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(listen.slice(at + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('listen', `port out of range in "${listen}"`);
  return { host, port };
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Whether an address is loopback (unsecured mode may bind only those by default). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
