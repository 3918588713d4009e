import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LocalBus, RedisBus, type Bus } from '../cluster/index.ts';
import { loadConfig } from '../config/index.ts';
import { UserDirectory } from '../identity/index.ts';
import { openStore, type Store } from '../store/index.ts';
import { keyRingFor } from '../tokens/index.ts';
import { UsageError } from './main.ts';

/** What admin subcommands work with: the store, and the bus so running nodes hear of changes. */
export interface AdminContext {
  store: Store;
  bus: Bus;
  users: UserDirectory;
  config: ReturnType<typeof loadConfig>;
  print(text: string): void;
}

const HELP: Record<string, string> = {
  users: `Usage:
  portcullis users list
  portcullis users add NAME [--password P | --password-stdin] [--role ROLE]…
  portcullis users set NAME [--password P | --password-stdin] [--roles R1,R2] [--disable | --enable]
  portcullis users remove NAME`,
  groups: `Usage:
  portcullis groups list
  portcullis groups add NAME [--role ROLE]… [--member USER]…
  portcullis groups set NAME [--roles R1,R2] [--members U1,U2]
  portcullis groups remove NAME`,
  keys: `Usage:
  portcullis keys rotate     make a new JWT signing key; the previous one stays published until its JWTs expire`,
  devices: `Usage:
  portcullis devices list
  portcullis devices add NAME [--role ROLE]…   create a device and print its one-time enrollment command
  portcullis devices enroll NAME               print a new enrollment command
  portcullis devices remove NAME`,
};

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
  password: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  role: { type: 'string', multiple: true },
  roles: { type: 'string' },
  member: { type: 'string', multiple: true },
  members: { type: 'string' },
  disable: { type: 'boolean' },
  enable: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

const list = (value: string | undefined) => (value === undefined ? undefined : value.split(',').map((s) => s.trim()).filter(Boolean));

function password(values: Values): string | undefined {
  if (values['password-stdin']) return readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  return values.password;
}

export async function runAdminCommand(command: string, args: string[], print: (text: string) => void = console.log): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${HELP[command]}`);
  }
  const { values, positionals } = parsed;
  const [action, name] = positionals;
  if (values.help || !action) {
    print(HELP[command]!);
    return values.help ? 0 : 2;
  }
  const config = loadConfig({ file: values.config, env: process.env });
  const store = await openStore({ database: config.database, dataDir: config.dataDir, secretKey: config.secretKey });
  const bus: Bus = config.redis ? await RedisBus.connect(config.redis) : new LocalBus();
  const users = new UserDirectory({ db: store.db, bus, cacheTtlMs: 0 });
  const ctx: AdminContext = { store, bus, users, config, print };
  const need = (what: string) => {
    if (!name) throw new UsageError(`${command} ${action} needs a ${what}\n${HELP[command]}`);
    return name;
  };
  try {
    switch (`${command} ${action}`) {
      case 'users list':
        for (const u of await users.list()) print(values.json ? JSON.stringify(u) : `${u.name}\t${u.roles.join(',')}${u.disabled ? '\t(disabled)' : ''}`);
        return 0;
      case 'users add': {
        const user = await users.create({ name: need('user name'), password: password(values), roles: values.role });
        print(`created user ${user.name} (${user.roles.join(', ')})`);
        return 0;
      }
      case 'users set': {
        const disabled = values.disable ? true : values.enable ? false : undefined;
        const user = await users.update(need('user name'), { password: password(values), roles: list(values.roles), disabled });
        print(`updated user ${user.name} (${user.roles.join(', ')})${user.disabled ? ' (disabled)' : ''}`);
        return 0;
      }
      case 'users remove':
        await users.remove(need('user name'));
        print(`removed user ${name}`);
        return 0;
      case 'groups list':
        for (const g of await users.listGroups()) print(values.json ? JSON.stringify(g) : `${g.name}\troles=${g.roles.join(',')}\tmembers=${g.members.join(',')}`);
        return 0;
      case 'groups add': {
        const group = await users.createGroup({ name: need('group name'), roles: values.role, members: values.member });
        print(`created group ${group.name}`);
        return 0;
      }
      case 'groups set': {
        const group = await users.updateGroup(need('group name'), { roles: list(values.roles), members: list(values.members) });
        print(`updated group ${group.name} (roles ${group.roles.join(', ') || 'none'}; members ${group.members.join(', ') || 'none'})`);
        return 0;
      }
      case 'groups remove':
        await users.removeGroup(need('group name'));
        print(`removed group ${name}`);
        return 0;
      case 'keys rotate': {
        const keys = keyRingFor(store, config.jwt);
        const kid = await keys.rotate();
        await bus.publish({ type: 'keys-changed' });
        print(`new signing key ${kid}; the previous key stays published for ${config.jwt.ttl} s`);
        return 0;
      }
      default:
        if (command === 'devices') return await runDevicesCommand(ctx, action, positionals.slice(1), values);
        throw new UsageError(`unknown action "${action}"\n${HELP[command]}`);
    }
  } finally {
    users.close();
    await bus.close();
    await store.close();
  }
}

async function runDevicesCommand(ctx: AdminContext, action: string, rest: string[], values: Values): Promise<number> {
  const { runDevicesCommand: run, DevicesUsageError } = await import('../devices/index.ts');
  const devicesCtx = { store: ctx.store, bus: ctx.bus, publicUrl: ctx.config.url, enrollmentTtlSeconds: ctx.config.devices.enrollmentTtl, print: ctx.print };
  try {
    return await run(devicesCtx, action, rest, { roles: values.role, json: values.json });
  } catch (error) {
    if (error instanceof DevicesUsageError) throw new UsageError(`${error.message}\n${HELP.devices}`);
    throw error;
  }
}
