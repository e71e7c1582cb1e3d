// A local stand-in for the cloud ERP (CONTRACT §6): OAuth2 client credentials,
// idempotent postings of billable transactions, invoices, and faults injected on
// request so the pipeline's retries can be exercised against something real.
//
// A posting with any invalid line is refused whole (422 listing every bad line)
// and creates nothing, not even its valid lines. A partial success would leave
// the caller to work out which lines of a batch are booked; refusing the whole
// request keeps "201 means every line has a document" true, and the caller
// quarantines the listed lines and posts the rest again under a new key.
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import Fastify from 'fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { SandboxBooks, errorBody, requestHash } from './sandbox-books.ts';
import type { BooksResponse, PageResult } from './sandbox-books.ts';
import { isId, validateInvoiceRequest, validatePosting } from './sandbox-validation.ts';
import type { ErpFaults } from './types.ts';

export interface ErpSandboxOptions {
  /** PostgreSQL holding the sandbox's books; its tables are created at start. */
  databaseUrl: string;
  /** @default 8090; 0 picks any free port. */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** The only client accepted; any client when unset. */
  clientId?: string;
  /** Secret of `clientId`; any secret when unset. */
  clientSecret?: string;
  /** Lifetime of issued tokens. @default 3600 */
  tokenTtlSeconds?: number;
  /** Fastify request logging. @default false */
  logger?: boolean;
}

/** The faults in force; 0 means off. */
export interface ErpFaultState {
  rateLimitPerSecond: number;
  errorRate: number;
  latencyMs: number;
}

export interface ErpSandbox {
  /** Base URL to give the client, e.g. `http://127.0.0.1:8090`. */
  url: string;
  port: number;
  /** Changes the given faults (absent ones stay, null or 0 clears) and returns those now in force. */
  setFaults(faults: ErpFaults): ErpFaultState;
  /** Invalidates every issued token, as an ERP rotating its keys would; the next API call answers 401. */
  revokeTokens(): void;
  /** Stops the server, then ends the pool. */
  close(): Promise<void>;
}

const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

const faultsSchema = z.object({
  rateLimitPerSecond: z.number().min(0).nullable().optional(),
  errorRate: z.number().min(0).max(1).nullable().optional(),
  latencyMs: z.int().min(0).max(600_000).nullable().optional(),
});

export async function startErpSandbox(options: ErpSandboxOptions): Promise<ErpSandbox> {
  const host = options.host ?? '127.0.0.1';
  const tokenTtlMs = (options.tokenTtlSeconds ?? 3600) * 1000;
  const books = await SandboxBooks.open(options.databaseUrl);

  const tokens = new Map<string, { clientId: string; expiresAt: number }>();
  const faults: ErpFaultState = { rateLimitPerSecond: 0, errorRate: 0, latencyMs: 0 };
  const window = { second: 0, count: 0 };

  const setFaults = (change: ErpFaults): ErpFaultState => {
    if (change.rateLimitPerSecond !== undefined) faults.rateLimitPerSecond = change.rateLimitPerSecond ?? 0;
    if (change.errorRate !== undefined) faults.errorRate = change.errorRate ?? 0;
    if (change.latencyMs !== undefined) faults.latencyMs = change.latencyMs ?? 0;
    return { ...faults };
  };

  const app = Fastify({ logger: options.logger ?? false, bodyLimit: 10 * 1024 * 1024 });

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.setErrorHandler((error: { statusCode?: number; code?: string; message: string }, _request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    const code = status === 500 ? 'internal_error' : (error.code ?? 'bad_request').toLowerCase();
    return reply.code(status).send(errorBody(code, error.message));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  // Faults and authentication guard the API; the token route and admin routes stay reachable.
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/api/')) return;
    if (faults.rateLimitPerSecond > 0) {
      const now = Date.now();
      const second = Math.floor(now / 1000);
      if (second !== window.second) {
        window.second = second;
        window.count = 0;
      }
      if (window.count >= faults.rateLimitPerSecond) {
        const retryAfter = Math.max(1, Math.ceil(((second + 1) * 1000 - now) / 1000));
        return reply
          .code(429)
          .header('retry-after', String(retryAfter))
          .send(errorBody('rate_limited', `more than ${faults.rateLimitPerSecond} requests per second`));
      }
      window.count += 1;
    }
    if (faults.errorRate > 0 && Math.random() < faults.errorRate) {
      return reply.code(503).send(errorBody('unavailable', 'injected fault: the ERP is temporarily unavailable'));
    }
    const match = /^Bearer (\S+)$/i.exec(request.headers.authorization ?? '');
    const token = match?.[1] === undefined ? undefined : tokens.get(match[1]);
    if (token === undefined || token.expiresAt <= Date.now()) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer error="invalid_token"')
        .send(errorBody('invalid_token', match ? 'the access token is unknown or expired' : 'a Bearer access token is required'));
    }
  });

  // Latency is added after the work is done, so a client that times out still
  // finds its posting booked and must lean on the Idempotency-Key to retry.
  app.addHook('onSend', async (request, _reply, payload) => {
    if (faults.latencyMs > 0 && (request.url.startsWith('/api/') || request.url.startsWith('/oauth/'))) {
      await delay(faults.latencyMs);
    }
    return payload;
  });

  app.post('/oauth/token', async (request, reply) => {
    const form = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as Record<string, unknown>;
    let clientId = typeof form.client_id === 'string' ? form.client_id : undefined;
    let clientSecret = typeof form.client_secret === 'string' ? form.client_secret : undefined;
    const basic = /^Basic (\S+)$/i.exec(request.headers.authorization ?? '');
    if (basic?.[1] !== undefined) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon >= 0) {
        clientId = decodeURIComponent(decoded.slice(0, colon));
        clientSecret = decodeURIComponent(decoded.slice(colon + 1));
      }
    }
    // OAuth2 (RFC 6749 §5.2) shapes token-endpoint errors as {error, error_description}.
    reply.header('cache-control', 'no-store');
    if (form.grant_type !== 'client_credentials') {
      return reply
        .code(400)
        .send({ error: 'unsupported_grant_type', error_description: 'grant_type must be client_credentials' });
    }
    const knownClient =
      clientId !== undefined &&
      clientId.length > 0 &&
      (options.clientId === undefined || clientId === options.clientId) &&
      (options.clientSecret === undefined || clientSecret === options.clientSecret);
    if (!knownClient || clientId === undefined) {
      return reply
        .code(401)
        .header('www-authenticate', 'Basic realm="erp-sandbox"')
        .send({ error: 'invalid_client', error_description: `client ${clientId ?? '(none)'} is unknown or its secret is wrong` });
    }
    const now = Date.now();
    for (const [token, entry] of tokens) if (entry.expiresAt <= now) tokens.delete(token);
    const accessToken = randomBytes(24).toString('base64url');
    tokens.set(accessToken, { clientId, expiresAt: now + tokenTtlMs });
    return { access_token: accessToken, token_type: 'Bearer', expires_in: Math.max(1, Math.round(tokenTtlMs / 1000)) };
  });

  app.post('/api/v1/billable-transactions', async (request, reply) => {
    const key = idempotencyKey(request, reply);
    if (key === undefined) return reply;
    const validation = validatePosting(request.body);
    if (!validation.ok) {
      if (validation.status === 400) return reply.code(400).send(errorBody(validation.code, validation.message));
      return reply.code(422).send({
        ...errorBody('invalid_transactions', `${new Set(validation.errors.map((e) => e.index)).size} line(s) failed validation; nothing was created`),
        errors: validation.errors,
      });
    }
    return sendBooks(reply, await books.postTransactions(key, requestHash(request.body), validation.lines));
  });

  app.get('/api/v1/billable-transactions', async (request, reply) => {
    const query = listQuery(request, reply);
    if (query === undefined) return reply;
    return toPageBody(await books.listDocuments(query.projectId, query));
  });

  app.post('/api/v1/invoices', async (request, reply) => {
    const key = idempotencyKey(request, reply);
    if (key === undefined) return reply;
    const validation = validateInvoiceRequest(request.body);
    if (!validation.ok) return reply.code(422).send(errorBody(validation.code, validation.message, validation.details));
    return sendBooks(reply, await books.createInvoice(key, requestHash(request.body), validation.request));
  });

  app.get('/api/v1/invoices', async (request, reply) => {
    const query = listQuery(request, reply);
    if (query === undefined) return reply;
    return toPageBody(await books.listInvoices(query.projectId, query));
  });

  app.get<{ Params: { id: string } }>('/api/v1/invoices/:id', async (request, reply) => {
    const invoice = await books.getInvoice(request.params.id);
    if (invoice === null) return reply.code(404).send(errorBody('invoice_not_found', `no invoice ${request.params.id}`));
    return invoice;
  });

  app.get('/admin/faults', async () => faults);
  app.post('/admin/faults', async (request, reply) => {
    const parsed = faultsSchema.safeParse(request.body ?? {});
    if (!parsed.success) {
      const details = parsed.error.issues.map((issue) => ({ field: issue.path.join('.'), reason: issue.message }));
      return reply.code(400).send(errorBody('invalid_faults', details.map((d) => `${d.field}: ${d.reason}`).join('; '), details));
    }
    return setFaults(parsed.data);
  });
  app.post('/admin/tokens/revoke', async () => {
    tokens.clear();
    return { revoked: true };
  });
  app.get('/admin/stats', async () => books.stats());
  app.get('/healthz', async () => ({ ok: true }));

  let address: string;
  try {
    address = await app.listen({ port: options.port ?? 8090, host });
  } catch (err) {
    await books.close();
    throw err;
  }
  const port = new URL(address).port === '' ? 80 : Number(new URL(address).port);
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}`,
    port,
    setFaults,
    revokeTokens: () => tokens.clear(),
    async close() {
      try {
        await app.close();
      } finally {
        await books.close();
      }
    },
  };
}

function idempotencyKey(request: FastifyRequest, reply: FastifyReply): string | undefined {
  const key = request.headers['idempotency-key'];
  if (typeof key === 'string' && IDEMPOTENCY_KEY.test(key)) return key;
  void reply
    .code(400)
    .send(errorBody('idempotency_key_required', 'an Idempotency-Key header of 1–255 visible ASCII characters is required'));
  return undefined;
}

function listQuery(
  request: FastifyRequest,
  reply: FastifyReply,
): { projectId: string; limit: number; afterId: bigint } | undefined {
  const query = request.query as Record<string, string | undefined>;
  const fail = (code: string, message: string): undefined => {
    void reply.code(400).send(errorBody(code, message));
    return undefined;
  };
  if (!isId(query.projectId)) return fail('invalid_query', 'projectId must be an id of 1–64 [A-Za-z0-9_-]');
  let limit = DEFAULT_PAGE;
  if (query.limit !== undefined) {
    limit = Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
      return fail('invalid_query', `limit must be an integer from 1 to ${MAX_PAGE}`);
    }
  }
  let afterId = 0n;
  if (query.cursor !== undefined && query.cursor !== '') {
    const decoded = Buffer.from(query.cursor, 'base64url').toString('utf8');
    if (!/^\d{1,19}$/.test(decoded)) return fail('invalid_cursor', 'cursor is not one this server issued');
    afterId = BigInt(decoded);
  }
  return { projectId: query.projectId, limit, afterId };
}

function toPageBody<T>(page: PageResult<T>): { items: T[]; nextCursor: string | null } {
  return {
    items: page.items,
    nextCursor: page.lastId === null ? null : Buffer.from(page.lastId.toString()).toString('base64url'),
  };
}

function sendBooks(reply: FastifyReply, response: BooksResponse): FastifyReply {
  if (response.replayed) reply.header('idempotent-replayed', 'true');
  return reply.code(response.status).send(response.body);
}
