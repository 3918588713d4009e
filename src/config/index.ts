export { loadConfig, splitListen, isLoopbackHost, type Config } from './load.ts';
export { configSchema, ssoProviderSchema, type ConfigInput } from './schema.ts';
