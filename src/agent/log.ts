/** The narrow logger the agent writes to; tests pass a collecting one. */
export interface AgentLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: 100 };

/**
 * One JSON object per line on stderr, pino-compatible field names (`level`, `time`, `msg`),
 * so the agent's log can go through the same tooling as the gateway's.
 */
export function jsonLogger(level: LogLevel = 'info', write: (line: string) => void = (l) => process.stderr.write(l)): AgentLogger {
  const min = LEVELS[level];
  const emit = (lvl: Exclude<LogLevel, 'silent'>, fields: Record<string, unknown>, msg: string) => {
    if (LEVELS[lvl] < min) return;
    const entry: Record<string, unknown> = { level: LEVELS[lvl], time: Date.now(), name: 'portcullis-agent', msg };
    for (const [k, v] of Object.entries(fields)) entry[k] = v instanceof Error ? { name: v.name, message: v.message, code: (v as { code?: unknown }).code } : v;
    write(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (f, m) => emit('debug', f, m),
    info: (f, m) => emit('info', f, m),
    warn: (f, m) => emit('warn', f, m),
    error: (f, m) => emit('error', f, m),
  };
}

export const silentLogger: AgentLogger = { debug() {}, info() {}, warn() {}, error() {} };
