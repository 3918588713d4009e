import type { CapabilityContext } from '../server/index.ts';
import { BackchannelLogout } from './backchannel.ts';
import { ProviderClient } from './providers.ts';
import { Provisioner } from './provisioning.ts';
import { registerPublicSsoRoutes, registerSsoRoutes, type SsoRouteDeps } from './routes.ts';
import { withSsoTables } from './tables.ts';
import { ProviderSessions } from './tokens.ts';

/**
 * Single sign-on (SPEC §5): OIDC, GitHub and generic OAuth 2 providers from
 * `sso.providers`, user provisioning from claims, provider tokens kept sealed and
 * fresh, and OIDC back-channel logout.
 */
export async function ssoCapability(ctx: CapabilityContext): Promise<void> {
  const { config } = ctx;
  const sso = config.sso;
  const logger = ctx.logger.child({ capability: 'sso' });
  const db = withSsoTables(ctx.store.db);
  const clients = new Map(sso.providers.map((p) => [p.id, new ProviderClient(p, { timeoutMs: config.outbound.timeout, now: ctx.now })] as const));
  const tokens = new ProviderSessions({
    db,
    secrets: ctx.store.secrets,
    clients,
    sessions: ctx.sessions,
    refreshMarginMs: sso.refreshMargin * 1000,
    logger,
    now: ctx.now,
  });
  const provisioner = new Provisioner({
    db,
    users: ctx.users,
    logger,
    firstUserAdmin: sso.firstUserAdmin,
    webhookUrl: sso.webhookUrl,
    defaultPicture: sso.defaultPicture,
    picture: { allowPrivate: config.outbound.allowPrivateAddresses, maxBytes: sso.pictureMaxBytes, timeoutMs: config.outbound.timeout },
    now: ctx.now,
  });
  const backchannel = new BackchannelLogout({ clients, db, sessions: ctx.sessions, tokens, logger, maxAgeSeconds: sso.logoutTokenMaxAge });
  const deps: SsoRouteDeps = {
    clients,
    provisioner,
    tokens,
    backchannel,
    sessions: ctx.sessions,
    secrets: ctx.store.secrets,
    db,
    logger,
    publicUrl: ctx.publicUrl,
    now: ctx.now,
    sessionCookie: { name: config.sessions.cookieName, maxAgeSeconds: config.sessions.ttl },
    loginTimeoutSeconds: sso.loginTimeout,
  };
  await registerPublicSsoRoutes(ctx.publicRoutes, deps);
  registerSsoRoutes(ctx.routes, deps);
}
