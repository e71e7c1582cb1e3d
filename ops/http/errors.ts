// The one error shape of the ops server (CONTRACT §5): `{error: {code, message,
// details}}` with a fitting status, whether the failure came from a route, from
// schema validation, from fastify's body parsing or from an unknown route.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

/** The machine-readable `error.code` values the ops server answers with. */
export const HTTP_ERROR_CODES = {
  invalidRequest: 'invalid_request',
  invalidJson: 'invalid_json',
  invalidCursor: 'invalid_cursor',
  unauthorized: 'unauthorized',
  notFound: 'not_found',
  unknownRecordKind: 'unknown_record_kind',
  payloadTooLarge: 'payload_too_large',
  tooManyRecords: 'too_many_records',
  unsupportedMediaType: 'unsupported_media_type',
  publishFailed: 'publish_failed',
  notReplayable: 'not_replayable',
  exceptionDismissed: 'exception_dismissed',
  exceptionResolved: 'exception_resolved',
  closeIncomplete: 'close_incomplete',
  unavailable: 'unavailable',
  internal: 'internal_error',
} as const;
export type HttpErrorCode = (typeof HTTP_ERROR_CODES)[keyof typeof HTTP_ERROR_CODES];

/** The body of every error response. `details` is null when there is nothing to add. */
export interface ErrorBody {
  error: { code: HttpErrorCode; message: string; details: unknown };
}

/** The error body as a schema, for the routes' documented responses. */
export const errorBodySchema = z.object({
  error: z.object({
    code: z.enum(Object.values(HTTP_ERROR_CODES) as [HttpErrorCode, ...HttpErrorCode[]]).describe('Machine-readable reason'),
    message: z.string().describe('What went wrong and what to do, in words'),
    details: z.unknown().describe('Fields and reasons, limits, or the partial result; null when there is nothing to add'),
  }),
}).describe('An error');

/** One rejected part of a request: which field (dotted path) and why, in words a user can act on. */
export interface FieldProblem {
  field: string;
  reason: string;
}

/**
 * A failure a route answers with on purpose; anything else thrown is a 500.
 *
 * `statusCode` and `code` are the property names fastify reads, so this error
 * can also be returned from a schema validator.
 */
export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: HttpErrorCode;
  readonly details: unknown;

  constructor(statusCode: number, code: HttpErrorCode, message: string, options?: { details?: unknown; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = 'HttpError';
    this.statusCode = statusCode;
    this.code = code;
    this.details = options?.details ?? null;
  }
}

export function isHttpError(err: unknown): err is HttpError {
  return err instanceof HttpError;
}

export function errorBody(code: HttpErrorCode, message: string, details: unknown = null): ErrorBody {
  return { error: { code, message, details } };
}

/** "16 MiB" for 16777216, "1024 bytes" for 1024: the limit as a person reads it. */
export function describeBytes(bytes: number): string {
  const mib = 1024 * 1024;
  if (bytes >= mib && bytes % mib === 0) return `${bytes / mib} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

function sendError(reply: FastifyReply, status: number, body: ErrorBody): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/**
 * Makes every failure answer in the contract's shape: route errors, fastify's
 * own (body too large, bad JSON, wrong media type), and unknown routes.
 */
export function installErrorHandling(app: FastifyInstance, limits: { bodyLimitBytes: number }): void {
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? request.url;
    return sendError(reply, 404, errorBody(HTTP_ERROR_CODES.notFound, `no route ${request.method} ${path}`, { method: request.method, path }));
  });

  app.setErrorHandler((err: FastifyError | HttpError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (isHttpError(err)) {
      if (err.statusCode === 401) reply.header('www-authenticate', 'Bearer realm="billstream"');
      return sendError(reply, err.statusCode, errorBody(err.code, err.message, err.details));
    }
    const fastifyCode = 'code' in err ? err.code : undefined;
    switch (fastifyCode) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendError(reply, 413, errorBody(
          HTTP_ERROR_CODES.payloadTooLarge,
          `request body is larger than the limit of ${limits.bodyLimitBytes} bytes (${describeBytes(limits.bodyLimitBytes)}); split the records over several requests`,
          { limitBytes: limits.bodyLimitBytes },
        ));
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendError(reply, 400, errorBody(HTTP_ERROR_CODES.invalidJson, 'request body is not valid JSON'));
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return sendError(reply, 400, errorBody(HTTP_ERROR_CODES.invalidJson, 'request body is empty; send a JSON value'));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendError(reply, 415, errorBody(
          HTTP_ERROR_CODES.unsupportedMediaType,
          `content type ${JSON.stringify(request.headers['content-type'] ?? '')} is not supported; send application/json`,
        ));
    }
    const status = 'statusCode' in err && typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500) {
      // A client error fastify raised that has no mapping above (e.g. a bad Content-Length).
      return sendError(reply, status, errorBody(HTTP_ERROR_CODES.invalidRequest, err.message));
    }
    request.log.error({ err }, 'ops request failed');
    // The cause stays in the log: SQL and stack traces are no business of the caller.
    return sendError(reply, 500, errorBody(HTTP_ERROR_CODES.internal, `internal error while serving ${request.method} ${request.routeOptions.url ?? request.url}`, { requestId: request.id }));
  });
}
