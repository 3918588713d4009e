import type { CapabilityContext } from '../server/index.ts';
import { ConnectionForwarder } from './forward.ts';
import { Outbound } from './outbound.ts';
import { registerConnectionApi, registerConnectionProxy } from './routes.ts';
import { ConnectionService } from './service.ts';
import { ConnectionStore } from './store.ts';

/**
 * SPEC §6: upstream OAuth connections. Adds the admin and user APIs under `/api/`, the
 * per-user authorization flow, and the `/connections/{name}/…` proxy.
 */
export async function connectionsCapability(ctx: CapabilityContext): Promise<void> {
  const options = ctx.config.connections;
  const outbound = new Outbound({
    allowPrivateAddresses: ctx.config.outbound.allowPrivateAddresses,
    timeoutMs: ctx.config.outbound.timeout,
    maxResponseBytes: options.maxResponseBytes,
  });
  const service = new ConnectionService({
    store: new ConnectionStore(ctx.store.db, ctx.store.secrets),
    outbound,
    bus: ctx.bus,
    logger: ctx.logger.child({ capability: 'connections' }),
    publicUrl: ctx.publicUrl,
    now: ctx.now,
    refreshMarginMs: options.refreshMargin * 1000,
    authorizeTtlMs: options.authorizeTtl * 1000,
    tokenCacheSize: options.tokenCacheSize,
    cacheTtlMs: ctx.config.sessions.cacheTtl * 1000,
  });
  const forwarder = new ConnectionForwarder({
    connectTimeout: options.connectTimeout,
    headersTimeout: options.headersTimeout,
    bodyTimeout: options.bodyTimeout,
    poolSize: options.poolSize,
    replayBodyBytes: options.replayBodyBytes,
    cookieName: ctx.config.sessions.cookieName,
  });
  const deps = { service, forwarder, trustedProxies: new Set(ctx.config.security.trustedProxies) };
  registerConnectionApi(ctx.routes, deps);
  await registerConnectionProxy(ctx.routes, deps);
  ctx.onClose(() => service.close());
  // After the server stopped taking requests: in-flight streams get a moment, then are cut.
  ctx.routes.addHook('onClose', async () => {
    await Promise.all([forwarder.close(), outbound.close()]);
  });
}
