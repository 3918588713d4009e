/**
 * Every failure a client can cause is a PortcullisError: an HTTP status, a stable
 * machine-readable code, and a human message. Capabilities keep their own catalogue
 * of subclasses or factory functions; the HTTP layer renders them as
 * `{"error": code, "message": message}`.
 */
export class PortcullisError extends Error {
  readonly status: number;
  readonly code: string;
  /** Extra JSON fields merged into the error body (e.g. an authorize link). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(status: number, code: string, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PortcullisError';
    this.status = status;
    this.code = code;
    this.details = options?.details;
  }
}

export const badRequest = (code: string, message: string, cause?: unknown) => new PortcullisError(400, code, message, { cause });
export const unauthorized = (code: string, message: string, cause?: unknown) => new PortcullisError(401, code, message, { cause });
export const forbidden = (code: string, message: string) => new PortcullisError(403, code, message);
export const notFound = (code: string, message: string) => new PortcullisError(404, code, message);
export const conflict = (code: string, message: string) => new PortcullisError(409, code, message);

/** An operator mistake found at start (bad configuration): names the offending key. */
export class ConfigError extends Error {
  readonly key: string;
  constructor(key: string, message: string) {
    super(`invalid configuration at "${key}": ${message}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}
