export { ssoCapability } from './capability.ts';
export { ProviderSessions, normalizeExpiry, type ProviderToken } from './tokens.ts';
export { SsoErrors } from './errors.ts';
export { BACKCHANNEL_LOGOUT_EVENT } from './backchannel.ts';
