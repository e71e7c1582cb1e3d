// Bearer tokens for the ops server: INGEST_TOKEN guards ingestion (CONTRACT §5),
// OPS_TOKEN the actions that change money or the exception queue (replay,
// dismiss, billing close). Either is off while unset; an empty one means unset,
// since a blank secret would only lock everyone out.
import type { FastifyRequest } from 'fastify';
import { bearerTokenMatches } from './ingest-route.ts';
import { HTTP_ERROR_CODES, HttpError } from './errors.ts';

/**
 * An `onRequest` hook that refuses (401) a request without `Authorization:
 * Bearer <token>`; runs before the body is read. A no-op when `token` is unset.
 *
 * @param variable the environment variable holding the token, named in the error
 */
export function requireBearer(token: string | undefined, variable: string): (request: FastifyRequest) => Promise<void> {
  const expected = token === undefined || token === '' ? null : token;
  return async (request) => {
    if (expected === null || bearerTokenMatches(request.headers.authorization, expected)) return;
    const reason = request.headers.authorization === undefined ? 'no Authorization header was sent' : 'the bearer token does not match';
    throw new HttpError(401, HTTP_ERROR_CODES.unauthorized, `${request.method} ${request.routeOptions.url ?? request.url} requires "Authorization: Bearer <${variable}>"; ${reason}`);
  };
}
