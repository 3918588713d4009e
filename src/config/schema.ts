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

export const ssoProviderSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _'),
    type: z.enum(['oidc', 'github', 'oauth2']),
    name: z.string().optional(),
    issuer: httpUrl.optional(),
    clientId: z.string().min(1),
    clientSecret: z.string().min(1).optional(),
  })
  .loose();

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
    sso: z
      .object({ providers: z.array(ssoProviderSchema).default([]) })
      .loose()
      .prefault({}),
    outbound: z
      .object({
        /** Let the gateway fetch private/loopback addresses (pictures, discovery). Tests only. */
        allowPrivateAddresses: z.boolean().default(false),
        /** Timeout of outbound fetches, ms. */
        timeout: z.number().int().positive().default(10_000),
      })
      .strict()
      .prefault({}),
    redis: z.string().regex(/^rediss?:\/\/.+/, 'expected redis://…').optional(),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
