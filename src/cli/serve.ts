import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../config/index.ts';
import { createGateway, type Gateway } from '../server/index.ts';

export function configFromArgs(args: string[], extraOptions: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {}) {
  const { values, positionals } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' }, ...extraOptions },
    allowPositionals: true,
    strict: true,
  });
  const config = loadConfig({ file: values.config as string | undefined, env: process.env });
  return { config, values, positionals };
}

/** Stops the gateway gracefully on SIGINT/SIGTERM: drains requests, tells terminals why they close. */
export function closeOnSignals(gateway: Gateway, extra?: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      gateway.logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => process.exit(1), 15_000);
      force.unref();
      void (async () => {
        await extra?.();
        await gateway.close('the gateway is shutting down');
        resolve();
      })();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

export async function startGateway(config: Config): Promise<Gateway> {
  const gateway = await createGateway(config, { adminPassword: process.env.PORTCULLIS_ADMIN_PASSWORD });
  await gateway.listen();
  if (gateway.generatedAdminPassword) {
    // Printed once, on the terminal only: it is not kept anywhere in clear.
    process.stderr.write(`\n  First start: user "admin" created with password ${gateway.generatedAdminPassword}\n  (set PORTCULLIS_ADMIN_PASSWORD to choose it; change it after signing in)\n\n`);
  }
  return gateway;
}

export async function runServe(args: string[], _options: { demo: boolean }): Promise<number> {
  const { config, values } = configFromArgs(args);
  if (values.help) {
    console.log('Usage: portcullis serve [--config FILE]\nEnvironment: PORTCULLIS_CONFIG, PORTCULLIS_LISTEN, PORTCULLIS_URL, PORTCULLIS_DATABASE, … (docs/CONFIGURATION.md)');
    return 0;
  }
  const gateway = await startGateway(config);
  await closeOnSignals(gateway);
  return 0;
}
