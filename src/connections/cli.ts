import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { LocalBus, RedisBus, type Bus } from '../cluster/index.ts';
import { loadConfig } from '../config/index.ts';
import { openStore } from '../store/index.ts';
import { Outbound } from './outbound.ts';
import { AUTH_KINDS, ConnectionService, type ConnectionAuth } from './service.ts';
import { ConnectionStore } from './store.ts';

const HELP = `Usage:
  portcullis connections list [--json]
  portcullis connections add NAME --url URL --auth none|bearer|oauth2.1|oauth2.1-static
        [--token T | --token-stdin]                         (bearer)
        [--client-id ID] [--client-secret S | --client-secret-stdin]   (oauth2.1-static)
        [--scope "S1 S2"]                                   (OAuth, optional)
  portcullis connections remove NAME

OAuth connections are discovered (and, for oauth2.1, registered) when added, with the
redirect URI {url}/api/connections/NAME/callback, {url} being the configured public URL.`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  url: { type: 'string' },
  auth: { type: 'string' },
  token: { type: 'string' },
  'token-stdin': { type: 'boolean' },
  'client-id': { type: 'string' },
  'client-secret': { type: 'string' },
  'client-secret-stdin': { type: 'boolean' },
  scope: { type: 'string' },
} as const;

function usage(message: string): number {
  console.error(`portcullis: ${message}\n\n${HELP}`);
  return 2;
}

const stdin = () => readFileSync(0, 'utf8').replace(/\r?\n$/, '');

/** `portcullis connections …`: works on the store directly, like the other admin commands. */
export async function runConnectionsCommand(args: string[], print: (text: string) => void = console.log): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    return usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  const [action, name] = positionals;
  if (values.help || !action) {
    print(HELP);
    return values.help ? 0 : 2;
  }
  if (!['list', 'add', 'remove'].includes(action)) return usage(`unknown action "${action}"`);
  if (action !== 'list' && !name) return usage(`connections ${action} needs a connection name`);
  if (action === 'add') {
    if (!values.url) return usage('connections add needs --url');
    if (!values.auth || !(AUTH_KINDS as readonly string[]).includes(values.auth)) return usage(`--auth must be one of ${AUTH_KINDS.join(', ')}`);
  }

  const config = loadConfig({ file: values.config, env: process.env });
  const store = await openStore({ database: config.database, dataDir: config.dataDir, secretKey: config.secretKey });
  const bus: Bus = config.redis ? await RedisBus.connect(config.redis) : new LocalBus();
  const outbound = new Outbound({
    allowPrivateAddresses: config.outbound.allowPrivateAddresses,
    timeoutMs: config.outbound.timeout,
    maxResponseBytes: config.connections.maxResponseBytes,
  });
  const service = new ConnectionService({
    store: new ConnectionStore(store.db, store.secrets),
    outbound,
    bus,
    logger: pino({ level: 'warn' }, pino.destination(2)),
    publicUrl: () => config.url,
    refreshMarginMs: config.connections.refreshMargin * 1000,
    authorizeTtlMs: config.connections.authorizeTtl * 1000,
    tokenCacheSize: 1,
    cacheTtlMs: 0,
  });
  try {
    switch (action) {
      case 'list':
        for (const c of await service.list()) {
          print(values.json ? JSON.stringify(c) : [c.name, c.url, c.auth, c.clientId ? `client=${c.clientId}` : ''].filter(Boolean).join('\t'));
        }
        return 0;
      case 'add': {
        const token = values['token-stdin'] ? stdin() : values.token;
        const clientSecret = values['client-secret-stdin'] ? stdin() : values['client-secret'];
        const view = await service.create({
          name: name!,
          url: values.url!,
          auth: values.auth as ConnectionAuth,
          token,
          clientId: values['client-id'],
          clientSecret,
          scope: values.scope,
        });
        print(values.json ? JSON.stringify(view) : `created connection ${view.name} (${view.auth})${view.clientId ? `, client id ${view.clientId}` : ''}; users reach it at /connections/${view.name}/`);
        if (view.redirectUri && view.auth === 'oauth2.1-static') print(`register this redirect URI with the authorization server: ${view.redirectUri}`);
        return 0;
      }
      default:
        await service.remove(name!);
        print(`removed connection ${name}`);
        return 0;
    }
  } finally {
    service.close();
    await outbound.close();
    await bus.close();
    await store.close();
  }
}
