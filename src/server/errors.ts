import type { FastifyError, FastifyInstance } from 'fastify';
import { PortcullisError } from '../errors.ts';

/**
 * Renders every failure as `{"error": code, "message": text}`. Client mistakes are 4xx
 * and logged at info; anything unexpected is a 500 whose detail goes only to the log,
 * with the request id as the correlation id.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | PortcullisError | Error, request, reply) => {
    if (error instanceof PortcullisError) {
      if (error.status >= 500) request.log.error({ err: error }, error.message);
      const retryAfter = error.details?.retryAfter;
      if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
      reply.code(error.status).send({ error: error.code, message: error.message, ...error.details });
      return;
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      reply.code(400).send({ error: 'invalid_request', message: `Invalid request: ${fastifyError.message}` });
      return;
    }
    const status = fastifyError.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      reply.code(status).send({ error: codeFor(fastifyError), message: fastifyError.message });
      return;
    }
    request.log.error({ err: error, reqId: request.id }, 'unhandled error');
    reply.code(500).send({ error: 'internal_error', message: `Internal error (correlation id ${request.id}).` });
  });

}

function codeFor(error: FastifyError): string {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'body_too_large';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'unsupported_media_type';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'invalid_json';
    default:
      return 'bad_request';
  }
}
