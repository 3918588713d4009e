export { createGateway, createLogger, type Capability, type CapabilityContext, type Gateway, type GatewayOptions } from './gateway.ts';
export { UpgradeRouter, rejectUpgrade, type UpgradeHandler } from './upgrades.ts';
