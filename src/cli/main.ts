import { ConfigError } from '../errors.ts';
import { PortcullisError } from '../errors.ts';
import { runAdminCommand } from './admin.ts';
import { runServe } from './serve.ts';

const USAGE = `Usage: portcullis <command> [options]

Commands:
  serve [--config FILE]                 run the gateway
  demo                                  run a demo gateway with this machine enrolled as a device
  agent --server URL [--enroll TOKEN] [--state-dir DIR]
                                        run the device agent
  users list|add|set|remove …           manage local users
  groups list|add|set|remove …          manage groups
  devices list|add|remove …             manage devices
  connections list|add|remove …         manage upstream OAuth connections (MCP servers)
  keys rotate                           rotate the JWT signing key

Admin commands read the same configuration as serve (--config FILE or PORTCULLIS_CONFIG).
Run "portcullis <command> --help" for a command's options.`;

/** Entry point of the `portcullis` command; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await runServe(rest, { demo: false });
      case 'demo':
        return await (await import('./demo.ts')).runDemo(rest);
      case 'agent':
        return await (await import('../agent/index.ts')).main(rest);
      case 'connections':
        return await (await import('../connections/index.ts')).runConnectionsCommand(rest);
      case 'users':
      case 'groups':
      case 'devices':
      case 'keys':
        return await runAdminCommand(command, rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        console.error(`portcullis: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`portcullis: ${error.message}`);
      return 2;
    }
    if (error instanceof PortcullisError) {
      console.error(`portcullis: ${error.message} (${error.code})`);
      return 1;
    }
    if (error instanceof UsageError) {
      console.error(`portcullis: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

export class UsageError extends Error {
  override name = 'UsageError';
}
