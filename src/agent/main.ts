import { parseArgs } from 'node:util';
import { Agent } from './agent.ts';
import { AgentError } from './errors.ts';
import { jsonLogger, type LogLevel } from './log.ts';
import { defaultStateDir } from './state.ts';

const USAGE = `Usage: portcullis agent --server URL [--enroll TOKEN] [--state-dir DIR] [--log-level LEVEL]

Connects this device to a Portcullis gateway so its users can open a shell here.

  --server URL       the gateway's URL (https://…); optional once enrolled
  --enroll TOKEN     enroll this device with a one-time token from the gateway's admin
  --state-dir DIR    where the device's keys are kept (default ${defaultStateDir()})
  --log-level LEVEL  debug, info, warn or error (default info)`;

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** `portcullis agent …`: runs until SIGINT/SIGTERM; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        server: { type: 'string' },
        enroll: { type: 'string' },
        'state-dir': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`portcullis agent: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const level = (values['log-level'] ?? 'info') as LogLevel;
  if (!LEVELS.includes(level)) {
    console.error(`portcullis agent: --log-level must be one of ${LEVELS.join(', ')}`);
    return 2;
  }

  const agent = new Agent({
    ...(values.server === undefined ? {} : { server: values.server }),
    ...(values.enroll === undefined ? {} : { enrollToken: values.enroll }),
    ...(values['state-dir'] === undefined ? {} : { stateDir: values['state-dir'] }),
    logger: jsonLogger(level),
  });
  try {
    await agent.start();
  } catch (err) {
    if (err instanceof AgentError) {
      console.error(`portcullis agent: ${err.message} [${err.code}]`);
      return err.code === 'AGENT_BAD_OPTION' ? 2 : 1;
    }
    throw err;
  }
  if (values.enroll !== undefined) {
    const state = agent.credentials!.state;
    console.log(`enrolled as device "${state.name}" (${state.deviceId}); credentials stored in ${values['state-dir'] ?? defaultStateDir()}`);
  }

  return new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      console.error(`portcullis agent: ${signal}, ending sessions`);
      agent.stop().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
