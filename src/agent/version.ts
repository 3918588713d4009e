import pkg from '../../package.json' with { type: 'json' };

/** Reported to the gateway at enrollment and on every connect. */
export const AGENT_VERSION: string = pkg.version;
