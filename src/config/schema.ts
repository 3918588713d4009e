import { z } from 'zod';

/**
 * The one schema for Portcullis's configuration. Every key that exists is here, with its
 * default and unit; unknown keys are refused so a typo cannot silently do nothing.
 * Documented in docs/CONFIGURATION.md.
 */

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:8080');
const httpUrl = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''));
const pem = z.string().min(1);
/** A duration in seconds. */
const seconds = (def: number) => z.number().int().positive().default(def);

/** A URL the gateway talks to as a client: https, or http on a loopback host (development, tests). */
const clientUrl = (trailingSlash: 'strip' | 'keep') =>
  z
    .url({ protocol: /^https?$/ })
    .refine((u) => u.startsWith('https:') || isLoopbackUrl(u), 'plain http is accepted only for loopback hosts; use https')
    .transform((u) => (trailingSlash === 'strip' ? u.replace(/\/+$/, '') : u));

function isLoopbackUrl(u: string): boolean {
  const host = new URL(u).hostname.replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Authorization request parameters the gateway sets itself; configuration may not override them. */
const RESERVED_AUTHORIZE_PARAMS = new Set([
  'client_id',
  'redirect_uri',
  'response_type',
  'response_mode',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'audience',
]);

/** A blocked-group pattern with regular-expression characters must compile (else a typo would block nothing). */
const REGEX_CHARS = /[\^$[\](){}+\\|]/;
const groupPattern = z
  .string()
  .min(1)
  .max(500)
  .refine((p) => {
    if (!REGEX_CHARS.test(p)) return true;
    try {
      new RegExp(p);
      return true;
    } catch {
      return false;
    }
  }, 'not a valid regular expression');

const claimName = z.string().min(1).max(300);
const roleName = z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/, 'letters, digits and _ . : -');

/**
 * One single sign-on provider. Claim names default per type (see docs/SSO.md); a claim
 * name may be a dotted path (`realm_access.roles`), falling back to the flat claim.
 */
export const ssoProviderSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _'),
    type: z.enum(['oidc', 'github', 'oauth2']),
    /** Label of the sign-in button; defaults to the id (GitHub: "GitHub"). */
    name: z.string().min(1).max(100).optional(),
    /** oidc: the issuer, discovered at `{issuer}/.well-known/openid-configuration`; kept exactly as given (some issuers end with "/"). */
    issuer: clientUrl('keep').optional(),
    clientId: z.string().min(1).max(500),
    clientSecret: z.string().min(1).max(2000).optional(),
    /** How the client authenticates at the token endpoint; default client_secret_basic (GitHub: client_secret_post), `none` without a secret. */
    tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post', 'none']).optional(),
    /** Requested scopes; default oidc `openid email profile`, github `read:user user:email`, oauth2 none. */
    scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope token')).max(50).optional(),
    /** Extra authorization request parameters (e.g. `prompt: login`, `hd: example.com`). */
    authorizeParams: z
      .record(z.string().min(1).max(100), z.string().max(1000))
      .refine((r) => Object.keys(r).every((k) => !RESERVED_AUTHORIZE_PARAMS.has(k)), 'may not set a parameter the gateway sets itself')
      .default({}),
    /** Sent as the `audience` authorization parameter (Auth0 and similar). */
    audience: z.string().min(1).max(500).optional(),
    /** oauth2 (required) and github (optional, GitHub Enterprise): the endpoints. */
    authorizationEndpoint: clientUrl('keep').optional(),
    tokenEndpoint: clientUrl('keep').optional(),
    /** oauth2: where the user's claims are read (required); oidc uses the discovered one. */
    userinfoEndpoint: clientUrl('keep').optional(),
    /** github: REST API base, default https://api.github.com (GitHub Enterprise: https://HOST/api/v3). */
    apiUrl: clientUrl('strip').optional(),
    claims: z
      .object({
        /** Stable subject; default `sub` (GitHub: `id`). */
        subject: claimName.optional(),
        email: claimName.default('email'),
        /** The principal name given at sign-up; default `preferred_username` (GitHub: `login`), else the email. */
        userName: claimName.optional(),
        /** Display name, refreshed at each login; default `name`. */
        name: claimName.default('name'),
        /** Picture URL; default `picture` (GitHub: `avatar_url`). */
        picture: claimName.optional(),
        roles: claimName.default('roles'),
        groups: claimName.default('groups'),
        /** A string-valued roles/groups claim is split on these. */
        rolesSeparator: z.string().min(1).max(10).default(','),
        groupsSeparator: z.string().min(1).max(10).default(','),
      })
      .strict()
      .prefault({}),
    /** Email domains allowed to sign in (`*` = any), compared lower-case. */
    allowedDomains: z.array(z.string().min(1).max(255)).min(1).default(['*']),
    /** Create users on first login (else unknown users get 403). */
    signUp: z.boolean().default(true),
    /** Link a first login to an existing user with the same (verified) email. */
    mergeByEmail: z.boolean().default(false),
    /** No email from the provider: use `{provider}@{sub}.local` instead of refusing. */
    emailFallback: z.boolean().default(false),
    /** What is refreshed from the claims at every login. */
    updateOnLogin: z
      .object({ name: z.boolean().default(true), email: z.boolean().default(true), picture: z.boolean().default(true) })
      .strict()
      .prefault({}),
    /** Roles given to users this provider creates (ROLE_USER always). */
    defaultRoles: z.array(roleName).max(100).default([]),
    /** Role management: the roles claim must hold an allowed role (→ ROLE_USER) or an admin role (→ ROLE_ADMIN), else 403. */
    roles: z
      .object({
        enabled: z.boolean().default(false),
        allowed: z.array(z.string().min(1).max(200)).default([]),
        admin: z.array(z.string().min(1).max(200)).default([]),
      })
      .strict()
      .refine((r) => !r.enabled || r.allowed.length + r.admin.length > 0, 'role management needs allowed or admin roles')
      .prefault({}),
    /** Group management: memberships follow the groups claim; blocked groups (exact, `*`/`?` wildcard, or regex) are never touched. */
    groups: z
      .object({
        enabled: z.boolean().default(false),
        create: z.boolean().default(false),
        blocked: z.array(groupPattern).max(500).default([]),
      })
      .strict()
      .prefault({}),
    /** Provider token sets kept per user (oldest pruned first). */
    maxSessionsPerUser: z.number().int().positive().max(1000).default(10),
    /** A failed token refresh also ends the gateway session that carried those tokens. */
    endSessionOnRefreshFailure: z.boolean().default(false),
    /** Accept OIDC back-channel logout tokens from this provider. */
    backchannelLogout: z.boolean().default(true),
  })
  .strict()
  .superRefine((p, ctx) => {
    const need = (key: 'issuer' | 'authorizationEndpoint' | 'tokenEndpoint' | 'userinfoEndpoint') => {
      if (p[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `required for type ${p.type}` });
    };
    const refuse = (key: 'issuer' | 'authorizationEndpoint' | 'tokenEndpoint' | 'userinfoEndpoint' | 'apiUrl', why: string) => {
      if (p[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: why });
    };
    if (p.type === 'oidc') {
      need('issuer');
      for (const key of ['authorizationEndpoint', 'tokenEndpoint', 'userinfoEndpoint', 'apiUrl'] as const) refuse(key, 'an oidc provider takes its endpoints from discovery');
    } else if (p.type === 'oauth2') {
      need('authorizationEndpoint');
      need('tokenEndpoint');
      need('userinfoEndpoint');
      refuse('apiUrl', 'only for type github');
    } else {
      refuse('issuer', 'GitHub is not an OpenID provider');
      refuse('userinfoEndpoint', 'GitHub users are read from apiUrl');
    }
    if (p.tokenEndpointAuthMethod !== undefined && p.tokenEndpointAuthMethod !== 'none' && p.clientSecret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: `required by tokenEndpointAuthMethod ${p.tokenEndpointAuthMethod}` });
    }
  });

/** A built-in neutral avatar (SVG), used when a picture cannot be fetched. */
export const DEFAULT_SSO_PICTURE =
  'data:image/svg+xml;base64,' +
  Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" fill="#c8ccd4"/><circle cx="32" cy="25" r="12" fill="#fff"/><path d="M10 60c2-13 11-20 22-20s20 7 22 20z" fill="#fff"/></svg>',
  ).toString('base64');

export const ssoSchema = z
  .object({
    providers: z
      .array(ssoProviderSchema)
      .max(50)
      .default([])
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        list.forEach((p, i) => {
          if (seen.has(p.id)) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate provider id "${p.id}"` });
          seen.add(p.id);
        });
      }),
    /** The first user created through SSO becomes ROLE_ADMIN (decided once, race-free; see docs/SSO.md). */
    firstUserAdmin: z.boolean().default(true),
    /** POSTed a JSON notice when SSO creates a user. */
    webhookUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Time to finish a started login at the provider, seconds. */
    loginTimeout: seconds(600),
    /** Provider tokens are refreshed when fewer than this many seconds remain. */
    refreshMargin: seconds(300),
    /** Largest picture fetched from a provider, bytes. */
    pictureMaxBytes: z.number().int().positive().max(10 * 1024 * 1024).default(256 * 1024),
    /** Picture stored when none can be fetched (URL or data URL). */
    defaultPicture: z.string().min(1).max(64 * 1024).default(DEFAULT_SSO_PICTURE),
    /** Oldest back-channel logout token accepted (by `iat`), seconds. */
    logoutTokenMaxAge: seconds(300),
  })
  .strict()
  .prefault({});

export const configSchema = z
  .object({
    /** Address to bind, host:port; port 0 picks a free one. */
    listen: hostPort.default('127.0.0.1:8080'),
    /** Public URL (JWT issuer, redirects); derived from `listen` when absent. */
    url: httpUrl.optional(),
    /** `sqlite:PATH` or `postgres://…`; default `sqlite:<dataDir>/portcullis.db`. */
    database: z
      .string()
      .regex(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, 'expected sqlite:PATH or postgres://…')
      .optional(),
    dataDir: z.string().min(1).default('./data'),
    /** 32-byte key (base64) that encrypts secrets at rest; else `<dataDir>/secret.key` (0600) is created. */
    secretKey: z.string().optional(),
    security: z
      .object({
        enabled: z.boolean().default(true),
        /** Unsecured mode refuses non-loopback addresses unless this is set. */
        allowUnsecuredNonLoopback: z.boolean().default(false),
        /** Clients whose X-Forwarded-* headers are believed (exact IP addresses). */
        trustedProxies: z.array(z.string()).default([]),
      })
      .strict()
      .prefault({}),
    sessions: z
      .object({
        cookieName: z.string().regex(/^[A-Za-z0-9_-]+$/).default('portcullis_session'),
        /** Absolute lifetime of a browser session, seconds. */
        ttl: seconds(12 * 3600),
        /** How long a node may trust a cached session/credential before re-reading the store, seconds. */
        cacheTtl: seconds(10),
      })
      .strict()
      .prefault({}),
    login: z
      .object({
        /** Failed logins allowed per window, per client address and per user name. */
        maxFailuresPerClient: z.number().int().positive().default(20),
        maxFailuresPerUser: z.number().int().positive().default(5),
        /** Window, seconds. */
        window: seconds(300),
      })
      .strict()
      .prefault({}),
    jwt: z
      .object({
        algorithm: z.enum(['RS512', 'RS256', 'ES256', 'EdDSA']).default('RS512'),
        /** PEM text or a path to a PEM file. */
        privateKey: pem.optional(),
        publicKey: pem.optional(),
        /** Lifetime of issued JWTs, seconds. */
        ttl: seconds(300),
        audience: z.string().min(1).default('portcullis'),
      })
      .strict()
      .prefault({}),
    proxy: z
      .object({
        url: httpUrl.nullable().default(null),
        /** Time to connect to the target, ms (over → 502). */
        connectTimeout: z.number().int().positive().default(10_000),
        /** Time for the target to send response headers, ms (over → 504). */
        headersTimeout: z.number().int().positive().default(60_000),
        /** Max idle time between body chunks, ms (0 = none; long polls and streams). */
        bodyTimeout: z.number().int().nonnegative().default(0),
        /** Upstream connections kept per target origin. */
        connections: z.number().int().positive().default(128),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /** JSON API request bodies, bytes (the proxy streams and has no limit). */
        apiBodyBytes: z.number().int().positive().default(1024 * 1024),
        /** Total request header bytes. */
        headerBytes: z.number().int().positive().default(16 * 1024),
      })
      .strict()
      .prefault({}),
    sso: ssoSchema,
    outbound: z
      .object({
        /** Let the gateway fetch private/loopback addresses (pictures, discovery). Tests only. */
        allowPrivateAddresses: z.boolean().default(false),
        /** Timeout of outbound fetches, ms. */
        timeout: z.number().int().positive().default(10_000),
      })
      .strict()
      .prefault({}),
    /** Upstream OAuth connections (MCP servers and other OAuth 2.1 resources), docs/CONNECTIONS.md. */
    connections: z
      .object({
        /** Time to connect to a resource, ms (over → 504). */
        connectTimeout: z.number().int().positive().default(10_000),
        /** Time for a resource to send response headers, ms (over → 504). */
        headersTimeout: z.number().int().positive().default(60_000),
        /** Max idle time between body chunks, ms (0 = none: event streams stay open). */
        bodyTimeout: z.number().int().nonnegative().default(0),
        /** Upstream connections kept per resource origin. */
        poolSize: z.number().int().positive().default(128),
        /** Refresh an access token this long before it expires (at most half its lifetime), seconds. */
        refreshMargin: seconds(300),
        /** How long an authorization (state, PKCE verifier) may take, seconds. */
        authorizeTtl: seconds(600),
        /** Request bodies up to this size are kept so a request can be replayed once after a refresh, bytes. */
        replayBodyBytes: z.number().int().nonnegative().default(64 * 1024),
        /** Largest metadata, registration or token response accepted, bytes. */
        maxResponseBytes: z.number().int().positive().default(256 * 1024),
        /** Decrypted tokens kept in memory (per user and connection). */
        tokenCacheSize: z.number().int().positive().default(10_000),
      })
      .strict()
      .prefault({}),
    /** Devices and the browser terminal (SPEC §7), docs/DEVICES.md. */
    devices: z
      .object({
        /** Lifetime of a one-time enrollment token, seconds. */
        enrollmentTtl: seconds(3600),
        /** Ping period of agent and terminal WebSockets; a peer that misses a whole period is dropped, ms. */
        pingInterval: z.number().int().min(100).default(20_000),
        /** From terminal WebSocket open until the device's shell runs (SSH handshake included), ms. */
        handshakeTimeout: z.number().int().positive().default(10_000),
        /** Close a terminal with no bytes either way for this long, seconds (0 = never). */
        idleTimeout: z.number().int().nonnegative().default(3600),
        /** Largest WebSocket message a browser may send on a terminal, bytes. */
        maxMessageBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(64 * 1024),
        /** Device output is paused while the browser's socket buffers more than this, bytes. */
        outputHighWaterMark: z.number().int().min(16 * 1024).default(256 * 1024),
        /** Concurrent terminals per device (the device protocol carries at most 64). */
        maxSessionsPerDevice: z.number().int().positive().max(64).default(64),
        /** Concurrent terminals per user, over all devices. */
        maxSessionsPerUser: z.number().int().positive().default(32),
        /** Clock skew tolerated on agent connect assertions, seconds. */
        clockSkew: z.number().int().nonnegative().max(300).default(30),
        /** How often connected devices' last-seen time is written (and their records re-checked), seconds. */
        lastSeenInterval: seconds(60),
      })
      .strict()
      .prefault({}),
    redis: z.string().regex(/^rediss?:\/\/.+/, 'expected redis://…').optional(),
    cluster: z
      .object({
        /**
         * The URL other nodes use to reach this one (device relays); default: the address
         * it is bound to. Needed when nodes bind 0.0.0.0 or sit behind NAT.
         */
        advertiseUrl: httpUrl.optional(),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
