import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { LocalBus, RedisBus, type Bus } from '../cluster/index.ts';
import { isLoopbackHost, type Config } from '../config/index.ts';
import { PortcullisError } from '../errors.ts';
import {
  Authenticator,
  FailureLimiter,
  SessionManager,
  UserDirectory,
  checkCsrf,
  ensureFirstAdmin,
  registerIdentityRoutes,
  registerPublicIdentityRoutes,
  type IdentityRouteDeps,
} from '../identity/index.ts';
import { Forwarder, ProxyTarget, handleProxyUpgrade, registerProxyAdminRoutes, registerProxyRoutes, type ProxyDeps } from '../proxy/index.ts';
import { openStore, type Store } from '../store/index.ts';
import { JwtIssuer, keyRingFor, type KeyRing } from '../tokens/index.ts';
import { registerWebUi } from '../web/index.ts';
import { builtInCapabilities } from './capabilities.ts';
import { installErrorHandling } from './errors.ts';
import { UpgradeRouter } from './upgrades.ts';

/**
 * What a capability (devices, SSO, connections…) receives to plug itself in: the
 * services, the two route contexts, and the upgrade router.
 */
export interface CapabilityContext {
  readonly config: Config;
  readonly store: Store;
  readonly bus: Bus;
  readonly logger: Logger;
  readonly users: UserDirectory;
  readonly sessions: SessionManager;
  readonly authenticator: Authenticator;
  readonly jwt: JwtIssuer;
  readonly keys: KeyRing;
  readonly upgrades: UpgradeRouter;
  /** The public URL (known once the server is bound). */
  publicUrl(): string;
  /** This node's own bound address (differs from the public URL behind a load balancer). */
  listeningUrl(): string;
  /** The gateway's clock (epoch ms); tests inject one so expiry and refresh need no sleeping. */
  now(): number;
  /** Routes that need no principal (login, callbacks, agent endpoints). */
  readonly publicRoutes: FastifyInstance;
  /** Routes behind the authentication hook: `request.auth` is set, CSRF is checked. */
  readonly routes: FastifyInstance;
  /** Called on shutdown, before the store closes, in reverse order of registration. */
  onClose(fn: (reason: string) => Promise<void> | void): void;
}

/** A capability registers its routes and services; the list below is the gateway's shape. */
export type Capability = (ctx: CapabilityContext) => Promise<void> | void;

export interface GatewayOptions {
  /** Extra capabilities, after the built-in ones (tests use this for probes). */
  capabilities?: Capability[];
  logger?: Logger;
  adminPassword?: string | undefined;
  now?: () => number;
}

export interface Gateway {
  readonly config: Config;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly bus: Bus;
  readonly users: UserDirectory;
  readonly sessions: SessionManager;
  readonly authenticator: Authenticator;
  readonly keys: KeyRing;
  readonly jwt: JwtIssuer;
  readonly logger: Logger;
  /** Set when `admin` was created at this start with a generated password. */
  readonly generatedAdminPassword: string | undefined;
  listen(): Promise<string>;
  publicUrl(): string;
  close(reason?: string): Promise<void>;
}

export function createLogger(config: Config): Logger {
  return pino({
    level: config.log.level,
    base: { service: 'portcullis' },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie', '*.password', '*.token', '*.clientSecret'],
      censor: '[redacted]',
    },
  });
}

/** How long shutdown waits for in-flight requests before cutting connections. */
const DRAIN_MS = 10_000;

/** Builds every service and route; `listen()` binds the port. */
export async function createGateway(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
  const logger = options.logger ?? createLogger(config);
  if (!config.security.enabled) {
    logger.warn('SECURITY IS DISABLED (security.enabled: false): every anonymous caller is an administrator. Use this for local development only.');
    if (!isLoopbackHost(config.host) && !config.security.allowUnsecuredNonLoopback) {
      throw new PortcullisError(
        500,
        'unsecured_bind_refused',
        `refusing to listen on ${config.host} with security disabled; bind a loopback address or set security.allowUnsecuredNonLoopback`,
      );
    }
  }
  const now = options.now ?? Date.now;
  const store = await openStore({ database: config.database, dataDir: config.dataDir, secretKey: config.secretKey });
  const closers: Array<(reason: string) => Promise<void> | void> = [];
  let bus: Bus;
  try {
    bus = config.redis ? await RedisBus.connect(config.redis) : new LocalBus();
  } catch (error) {
    await store.close();
    throw error;
  }

  let boundUrl = config.url;
  let listeningUrl = config.url;
  const publicUrl = () => boundUrl;
  const publicOrigin = () => new URL(boundUrl).origin;

  const keys = keyRingFor(store, config.jwt, now);
  await keys.load();
  const jwt = new JwtIssuer({ keys, issuer: publicUrl, audience: config.jwt.audience, ttlMs: config.jwt.ttl * 1000, now });
  const cacheTtlMs = config.sessions.cacheTtl * 1000;
  const users = new UserDirectory({ db: store.db, bus, cacheTtlMs, now });
  const sessions = new SessionManager({ db: store.db, bus, ttlMs: config.sessions.ttl * 1000, cacheTtlMs, now });
  const passwordLimits = {
    perClient: new FailureLimiter(config.login.maxFailuresPerClient, config.login.window * 1000, now),
    perUser: new FailureLimiter(config.login.maxFailuresPerUser, config.login.window * 1000, now),
  };
  const authenticator = new Authenticator({
    limits: passwordLimits,
    users,
    sessions,
    jwt,
    cookieName: config.sessions.cookieName,
    secured: config.security.enabled,
    // Safe to keep long: an entry is void as soon as the user's password hash changes.
    basicCacheTtlMs: 5 * 60_000,
    now,
  });
  const admin = await ensureFirstAdmin(users, options.adminPassword);
  if (admin.created) logger.info({ user: 'admin' }, 'created the first administrator "admin"');

  // Keys rotated by `portcullis keys rotate` (another process) or on another node.
  const reloadKeys = async () => {
    await keys.load();
    jwt.reset();
  };
  const keyTimer = setInterval(() => void reloadKeys().catch((err) => logger.warn({ err }, 'reloading signing keys failed')), 60_000);
  keyTimer.unref();
  const unsubscribeKeys = bus.subscribe((m) => {
    if (m.type === 'keys-changed') void reloadKeys().catch(() => {});
  });

  const proxyTarget = new ProxyTarget({ db: store.db, bus, initial: config.proxy.url });
  await proxyTarget.load();
  const forwarder = new Forwarder(config.proxy);

  const app = Fastify({
    loggerInstance: logger as unknown as FastifyBaseLogger,
    // Per-request log lines would cost more than the proxying itself; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.apiBodyBytes,
    routerOptions: { maxParamLength: 8192 },
    http: { maxHeaderSize: config.limits.headerBytes },
    // Unknown fields and wrong types are errors, not silently dropped or coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true } },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    trustProxy: config.security.trustedProxies.length > 0 ? [...config.security.trustedProxies] : false,
  });
  installErrorHandling(app);

  const upgrades = new UpgradeRouter({ authenticator, publicOrigin, onError: (err) => logger.error({ err }, 'upgrade failed') });
  app.server.on('upgrade', (req, socket, head) => void upgrades.handle(req, socket, head));

  const identityDeps: IdentityRouteDeps = {
    users,
    sessions,
    authenticator,
    cookie: { name: config.sessions.cookieName, secure: config.url.startsWith('https:'), maxAgeSeconds: config.sessions.ttl },
    get publicOrigin() {
      return publicOrigin();
    },
  };
  const proxyDeps: ProxyDeps = {
    target: proxyTarget,
    forwarder,
    jwt,
    authenticator,
    cookieName: config.sessions.cookieName,
    trustedProxies: new Set(config.security.trustedProxies),
    upgradeTimeoutMs: config.proxy.headersTimeout,
    publicOrigin,
  };
  upgrades.add('/proxy', (req, socket, head, auth) => handleProxyUpgrade(req, socket, head, auth, proxyDeps));
  upgrades.add('/proxy/*', (req, socket, head, auth) => handleProxyUpgrade(req, socket, head, auth, proxyDeps));

  // At the root, so the not-found handler below can send index.html.
  const spaFallback = await registerWebUi(app);
  const capabilities: Capability[] = [...builtInCapabilities, ...(options.capabilities ?? [])];

  await app.register(async (publicRoutes) => {
    publicRoutes.get('/healthz', async () => ({ status: 'ok' }));
    publicRoutes.get('/readyz', async (_request, reply) => {
      try {
        await store.ping();
        return { status: 'ready' };
      } catch {
        reply.code(503);
        return { error: 'store_unreachable', message: 'The store does not answer.' };
      }
    });
    publicRoutes.get('/.well-known/jwks.json', async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=60');
      return keys.jwks();
    });
    registerPublicIdentityRoutes(publicRoutes, identityDeps);

    await publicRoutes.register(async (routes) => {
      routes.decorateRequest('auth', null as never);
      routes.addHook('onRequest', async (request) => {
        request.auth = await authenticator.authenticate(request.headers, request.ip);
        checkCsrf(request.method, request.headers, request.auth, publicOrigin());
      });
      registerIdentityRoutes(routes, identityDeps);
      registerProxyAdminRoutes(routes, proxyDeps);

      const ctx: CapabilityContext = {
        config,
        store,
        bus,
        logger,
        users,
        sessions,
        authenticator,
        jwt,
        keys,
        upgrades,
        publicUrl,
        listeningUrl: () => listeningUrl,
        now,
        publicRoutes,
        routes,
        onClose: (fn) => closers.push(fn),
      };
      for (const capability of capabilities) await capability(ctx);
    });
  });
  await app.register(async (proxyRoutes) => registerProxyRoutes(proxyRoutes, proxyDeps));

  app.setNotFoundHandler((request, reply) => {
    if (spaFallback(request, reply)) return;
    reply.code(404).send({ error: 'not_found', message: `No route for ${request.method} ${request.url.split('?')[0]}.` });
  });

  let closed = false;
  const gateway: Gateway = {
    config,
    app,
    store,
    bus,
    users,
    sessions,
    authenticator,
    keys,
    jwt,
    logger,
    generatedAdminPassword: admin.generated ? admin.password : undefined,
    publicUrl,
    async listen() {
      await app.listen({ host: config.host, port: config.port });
      const address = app.server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      const listening = `http://${host}:${address.port}`;
      listeningUrl = listening;
      if (!config.urlExplicit) boundUrl = listening;
      logger.info({ url: boundUrl }, `listening on ${listening}`);
      return listening;
    },
    async close(reason = 'the gateway is shutting down') {
      if (closed) return;
      closed = true;
      clearInterval(keyTimer);
      unsubscribeKeys();
      for (const fn of closers.reverse()) {
        try {
          await fn(reason);
        } catch (err) {
          logger.warn({ err }, 'a capability failed to close cleanly');
        }
      }
      // In-flight requests finish; connections that turn idle afterwards are closed as they
      // do (Node only closes the ones idle at the moment close() is called), and whatever is
      // still open after the drain period is cut.
      const server = app.server;
      const sweeper = setInterval(() => server.closeIdleConnections(), 100);
      const deadline = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
      try {
        await app.close();
      } finally {
        clearInterval(sweeper);
        clearTimeout(deadline);
      }
      await forwarder.close();
      proxyTarget.close();
      users.close();
      sessions.close();
      await bus.close();
      await store.close();
    },
  };
  return gateway;
}
