import { connectionsCapability } from '../connections/index.ts';
import { devicesCapability } from '../devices/index.ts';
import { ssoCapability } from '../sso/index.ts';
import type { Capability } from './gateway.ts';

/**
 * The capabilities every gateway runs, in order. Each lives in its own folder and plugs
 * in through the CapabilityContext (routes, upgrade paths, services, shutdown).
 */
export const builtInCapabilities: readonly Capability[] = [connectionsCapability, ssoCapability, devicesCapability];
