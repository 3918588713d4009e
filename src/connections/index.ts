export { connectionsCapability } from './capability.ts';
export { runConnectionsCommand } from './cli.ts';
export {
  ConnectionService,
  safeReturnTo,
  type ConnectionAuth,
  type ConnectionInput,
  type ConnectionPatch,
  type ConnectionView,
  type UserConnectionView,
} from './service.ts';
export { discover, resourceMetadataUrls, authorizationServerMetadataUrls, metadataCandidates, resourceMetadataParam, type Discovery } from './discovery.ts';
export { negotiateAuthMethod } from './registration.ts';
export { Outbound } from './outbound.ts';
export { ConnectionErrors } from './errors.ts';
