// The cloud ERP client connector (CONTRACT §6): OAuth2 client credentials,
// idempotent postings retried through 429s, 5xx and network failures, and the
// invoice calls. Every retry of a call reuses its Idempotency-Key, so a request
// whose response was lost is replayed by the ERP rather than booked twice.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { fullJitterBackoffMs, parseRetryAfterMs } from './backoff.ts';
import { parseErpClientConfig } from './config.ts';
import type { ErpClientConfig, ErpClientConfigInput } from './config.ts';
import {
  ErpAuthError,
  ErpBadRequestError,
  ErpBatchTooLargeError,
  ErpClientNotRunningError,
  ErpConflictError,
  ErpError,
  ErpNotFoundError,
  ErpProtocolError,
  ErpRejectedError,
  ErpUnavailableError,
} from './errors.ts';
import { ERP_TRANSACTION_KINDS } from './types.ts';
import type {
  ErpDocument,
  ErpInvoice,
  ErpInvoiceCreated,
  ErpInvoiceRequest,
  ErpInvoiceSummary,
  ErpLineError,
  ErpPostResult,
  ErpTransaction,
} from './types.ts';

/** One HTTP exchange with the ERP, reported after it ends (retries and token requests included). */
export interface ErpRequestEvent {
  method: string;
  /** Route template, e.g. `/api/v1/invoices/:id`: a low-cardinality label for metrics. */
  route: string;
  /** The path actually requested, without the query string. */
  path: string;
  /** HTTP status; null when no response came (network error, timeout). */
  status: number | null;
  durationMs: number;
  /** 1 for the first try of a call, 2 for its first retry, and so on. */
  attempt: number;
  /** Why no response came, when status is null. */
  error?: string;
}

export interface ErpClientOptions {
  /** Observes every request, for latency metrics; its exceptions are ignored. */
  onRequest?: (event: ErpRequestEvent) => void;
  /** Source of backoff jitter in [0, 1). @default Math.random */
  random?: () => number;
}

export interface ErpHealth {
  ok: boolean;
  detail: string;
}

/** A failure worth another attempt: 429, 408, 5xx, no response. Never escapes the client. */
class TransientFailure extends Error {
  readonly status: number | null;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: { status: number | null; retryAfterMs?: number | undefined; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = 'TransientFailure';
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** The ERP refused a token we held as valid; the call renews it once before giving up. */
class TokenRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenRefused';
  }
}

interface CachedToken {
  value: string;
  /** Refresh from here on: 80% of the lifetime, so a token never expires in flight. */
  refreshAt: number;
  expiresAt: number;
}

interface CallSpec {
  method: 'GET' | 'POST';
  route: string;
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  idempotencyKey?: string;
}

const TOKEN_ROUTE = '/oauth/token';
const TOKEN_REFRESH_FRACTION = 0.8;
const LIST_PAGE_SIZE = 1000;

const tokenSchema = z.object({
  access_token: z.string().min(1),
  token_type: z.string().regex(/^bearer$/i),
  expires_in: z.number().positive(),
});

const postResponseSchema = z.object({
  results: z.array(
    z.object({ externalId: z.string(), documentId: z.string(), status: z.enum(['created', 'duplicate']) }),
  ),
});

const nullableString = z.string().nullable();
const kindSchema = z.enum(ERP_TRANSACTION_KINDS);

const documentSchema = z.object({
  documentId: z.string(),
  externalId: z.string(),
  kind: kindSchema,
  entryId: nullableString.default(null),
  milestoneId: nullableString.default(null),
  revision: z.number(),
  projectId: z.string(),
  customerId: z.string(),
  consultantId: nullableString.default(null),
  role: nullableString.default(null),
  workDate: nullableString.default(null),
  hours: nullableString.default(null),
  rate: nullableString.default(null),
  amount: z.string(),
  currency: z.string(),
  legalEntity: z.string(),
  invoiceId: nullableString.default(null),
  createdAt: z.string(),
}) satisfies z.ZodType<ErpDocument>;

const invoiceSummarySchema = z.object({
  invoiceId: z.string(),
  projectId: z.string(),
  customerId: z.string(),
  periodEnd: z.string(),
  status: z.string(),
  currency: z.string(),
  total: z.string(),
  lineCount: z.number(),
  createdAt: z.string(),
}) satisfies z.ZodType<ErpInvoiceSummary>;

const invoiceSchema = invoiceSummarySchema.extend({
  lines: z.array(
    z.object({
      documentId: z.string(),
      externalId: z.string(),
      kind: kindSchema,
      entryId: nullableString.default(null),
      milestoneId: nullableString.default(null),
      revision: z.number(),
      workDate: nullableString.default(null),
      hours: nullableString.default(null),
      rate: nullableString.default(null),
      amount: z.string(),
    }),
  ),
}) satisfies z.ZodType<ErpInvoice>;

const invoiceCreatedSchema = z.object({ invoiceId: z.string(), status: z.literal('draft') }) satisfies z.ZodType<ErpInvoiceCreated>;

const pageSchema = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), nextCursor: z.string().nullable() });

const errorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});
const lineErrorsSchema = z.object({
  errors: z.array(
    z.object({
      externalId: z.string().nullable().default(null),
      index: z.number().optional(),
      field: z.string().optional(),
      code: z.string(),
      message: z.string(),
    }),
  ),
});
const oauthErrorSchema = z.object({ error: z.string(), error_description: z.string().optional() });

/**
 * Client of the cloud ERP API: `start()`, then call, then `stop()`.
 *
 * Calls retry 429 (waiting out `Retry-After`), 408, 5xx and network failures
 * with full-jitter exponential backoff until `maxAttempts`, then throw
 * `ErpUnavailableError`; a 422 throws `ErpRejectedError` at once. The access
 * token is fetched on first use, renewed at 80% of its lifetime, and renewed
 * once more if the ERP answers 401 anyway.
 */
export class ErpClient {
  readonly config: ErpClientConfig;
  readonly #onRequest: ((event: ErpRequestEvent) => void) | undefined;
  readonly #random: () => number;
  #state: 'idle' | 'running' | 'stopped' = 'idle';
  #stopping = new AbortController();
  readonly #inFlight = new Set<Promise<unknown>>();
  #token: CachedToken | undefined;
  #tokenRequest: Promise<CachedToken> | undefined;
  #lastSuccessAt: number | undefined;
  #lastFailure: { at: number; message: string } | undefined;

  /** @throws ErpConfigError when the configuration is invalid. */
  constructor(config: ErpClientConfigInput = {}, options: ErpClientOptions = {}) {
    this.config = parseErpClientConfig(config);
    this.#onRequest = options.onRequest;
    this.#random = options.random ?? Math.random;
  }

  /** Makes the client usable. The token is fetched lazily, by the first call. */
  async start(): Promise<void> {
    if (this.#state === 'running') return;
    this.#stopping = new AbortController();
    this.#state = 'running';
  }

  /**
   * Aborts requests in flight and backoff waits (their calls reject with
   * `ErpClientNotRunningError`) and waits for them to settle. Aborting a
   * posting is safe: it is retried later under the same Idempotency-Key.
   */
  async stop(): Promise<void> {
    if (this.#state !== 'running') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopped';
    this.#stopping.abort(new ErpClientNotRunningError('the ERP client was stopped'));
    await Promise.allSettled([...this.#inFlight]);
    this.#token = undefined;
  }

  health(): ErpHealth {
    if (this.#state !== 'running') return { ok: false, detail: `ERP client ${this.#state === 'idle' ? 'not started' : 'stopped'}` };
    const failure = this.#lastFailure;
    if (failure !== undefined && (this.#lastSuccessAt === undefined || this.#lastSuccessAt < failure.at)) {
      return { ok: false, detail: `ERP failing since ${new Date(failure.at).toISOString()}: ${failure.message}` };
    }
    if (this.#lastSuccessAt === undefined) return { ok: true, detail: `ERP client ready for ${this.config.baseUrl}, no call made yet` };
    return { ok: true, detail: `ERP at ${this.config.baseUrl} answered at ${new Date(this.#lastSuccessAt).toISOString()}` };
  }

  /**
   * Posts one batch of transactions in one request, retried under the same
   * Idempotency-Key until it lands. An externalId the ERP already holds comes
   * back as `duplicate` with its existing documentId.
   *
   * @param idempotencyKey stable for this batch: derive it from the batch's content, not from the attempt.
   * @returns one result per transaction, in order.
   * @throws ErpRejectedError with every refused line; none of the batch was created.
   * @throws ErpUnavailableError after `maxAttempts` failed tries.
   * @throws ErpBatchTooLargeError when the batch exceeds `batchSize`.
   */
  async postTransactions(transactions: ErpTransaction[], idempotencyKey: string): Promise<ErpPostResult[]> {
    if (transactions.length === 0) return [];
    if (transactions.length > this.config.batchSize) {
      throw new ErpBatchTooLargeError(transactions.length, this.config.batchSize);
    }
    const route = '/api/v1/billable-transactions';
    const body = await this.#call({ method: 'POST', route, path: route, body: { transactions }, idempotencyKey });
    const { results } = parseResponse(postResponseSchema, body, route);
    if (results.length !== transactions.length) {
      throw new ErpProtocolError(`the ERP answered ${results.length} results for ${transactions.length} transactions`);
    }
    return results;
  }

  /** Every document of the project, following the list's pages. */
  async listTransactions(projectId: string): Promise<ErpDocument[]> {
    return this.#listAll('/api/v1/billable-transactions', projectId, documentSchema);
  }

  /**
   * Creates a draft invoice over the given documents; the same key gives back the same invoice.
   *
   * @throws ErpConflictError (`document_already_invoiced`) when a document is on another invoice.
   * @throws ErpRejectedError when a document is unknown, of another project or customer.
   */
  async createInvoice(request: ErpInvoiceRequest, idempotencyKey: string): Promise<ErpInvoiceCreated> {
    const route = '/api/v1/invoices';
    const body = await this.#call({ method: 'POST', route, path: route, body: request, idempotencyKey });
    return parseResponse(invoiceCreatedSchema, body, route);
  }

  /** @throws ErpNotFoundError when the ERP has no such invoice. */
  async getInvoice(invoiceId: string): Promise<ErpInvoice> {
    const route = '/api/v1/invoices/:id';
    const body = await this.#call({ method: 'GET', route, path: `/api/v1/invoices/${encodeURIComponent(invoiceId)}` });
    return parseResponse(invoiceSchema, body, route);
  }

  async listInvoices(projectId: string): Promise<ErpInvoiceSummary[]> {
    return this.#listAll('/api/v1/invoices', projectId, invoiceSummarySchema);
  }

  async #listAll<T extends z.ZodType>(route: string, projectId: string, item: T): Promise<Array<z.output<T>>> {
    const schema = pageSchema(item);
    const items: Array<z.output<T>> = [];
    let cursor: string | undefined;
    do {
      const body = await this.#call({
        method: 'GET',
        route,
        path: route,
        query: { projectId, limit: String(LIST_PAGE_SIZE), cursor },
      });
      const page = parseResponse(schema, body, route);
      items.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    return items;
  }

  /** Runs one call (with its retries) and records its outcome for `health()`. */
  async #call(spec: CallSpec): Promise<unknown> {
    if (this.#state !== 'running') {
      throw new ErpClientNotRunningError(`ERP client ${this.#state === 'idle' ? 'used before start()' : 'used after stop()'}`);
    }
    const call = this.#callWithRetries(spec);
    this.#inFlight.add(call);
    try {
      const result = await call;
      this.#lastSuccessAt = Date.now();
      return result;
    } catch (err) {
      if (err instanceof ErpError && err.code !== 'erp_client_not_running') {
        // The ERP answering "no" to a request (422, 409, 404) says nothing against its health.
        const answered = err instanceof ErpRejectedError || err instanceof ErpConflictError || err instanceof ErpNotFoundError;
        if (answered) this.#lastSuccessAt = Date.now();
        else this.#lastFailure = { at: Date.now(), message: err.message };
      }
      throw err;
    } finally {
      this.#inFlight.delete(call);
    }
  }

  async #callWithRetries(spec: CallSpec): Promise<unknown> {
    const { maxAttempts, maxRetryAfterMs } = this.config;
    let renewedAfter401 = false;
    let attempt = 0;
    for (;;) {
      attempt += 1;
      let failure: TransientFailure;
      try {
        return await this.#attempt(spec, attempt);
      } catch (err) {
        if (err instanceof TokenRefused) {
          if (renewedAfter401) throw new ErpAuthError(`${err.message}, even just after renewal`, { status: 401, cause: err });
          // A token we held as valid was refused (rotated keys, clock skew): renew once, at no attempt's cost.
          renewedAfter401 = true;
          this.#token = undefined;
          attempt -= 1;
          continue;
        }
        if (!(err instanceof TransientFailure)) throw err;
        failure = err;
      }
      const context = `${spec.method} ${spec.path}`;
      if (failure.retryAfterMs !== undefined && failure.retryAfterMs > maxRetryAfterMs) {
        throw new ErpUnavailableError(
          `${context}: the ERP asked to wait ${failure.retryAfterMs} ms, more than maxRetryAfterMs (${maxRetryAfterMs})`,
          { attempts: attempt, lastStatus: failure.status, retryAfterMs: failure.retryAfterMs, cause: failure },
        );
      }
      if (attempt >= maxAttempts) {
        throw new ErpUnavailableError(`${context}: gave up after ${attempt} attempts: ${failure.message}`, {
          attempts: attempt,
          lastStatus: failure.status,
          cause: failure,
        });
      }
      const waitMs =
        failure.retryAfterMs !== undefined
          ? // Waiting exactly Retry-After would bring every throttled request back in the same instant.
            failure.retryAfterMs + fullJitterBackoffMs(1, this.config, this.#random)
          : fullJitterBackoffMs(attempt, this.config, this.#random);
      await this.#wait(waitMs);
    }
  }

  /** One try: a valid token, one request, and the answer sorted into result, transient failure or final error. */
  async #attempt(spec: CallSpec, attempt: number): Promise<unknown> {
    const token = await this.#accessToken(attempt);
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
    if (spec.body !== undefined) headers['content-type'] = 'application/json';
    if (spec.idempotencyKey !== undefined) headers['idempotency-key'] = spec.idempotencyKey;
    const { status, headers: responseHeaders, body } = await this.#exchange(spec.method, spec.route, spec.path, attempt, {
      url: this.#url(spec.path, spec.query),
      headers,
      body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
    });
    if (status >= 200 && status < 300) return body;
    const context = `${spec.method} ${spec.path}`;
    const error = errorBodySchema.safeParse(body);
    const erpCode = error.success ? error.data.error.code : null;
    const message = error.success ? error.data.error.message : `HTTP ${status}`;
    if (status === 429 || status === 408 || status >= 500) {
      throw new TransientFailure(`${context} answered ${status}: ${message}`, {
        status,
        retryAfterMs: parseRetryAfterMs(responseHeaders.get('retry-after')),
      });
    }
    if (status === 401) {
      throw new TokenRefused(`${context}: the ERP refused the access token: ${message}`);
    }
    if (status === 403) throw new ErpAuthError(`${context}: the client may not do this: ${message}`, { status });
    if (status === 422) {
      const lines = lineErrorsSchema.safeParse(body);
      const errors: ErpLineError[] = lines.success
        ? lines.data.errors
        : [{ externalId: null, code: erpCode ?? 'rejected', message }];
      throw new ErpRejectedError(errors, { cause: error.success ? error.data.error : body });
    }
    if (status === 409) {
      throw new ErpConflictError(`${context}: ${message}`, {
        erpCode: erpCode ?? 'conflict',
        details: error.success ? error.data.error.details : undefined,
      });
    }
    if (status === 404) throw new ErpNotFoundError(`${context}: ${message}`, { path: spec.path });
    throw new ErpBadRequestError(`${context} answered ${status}: ${message}`, {
      status,
      erpCode,
      details: error.success ? error.data.error.details : body,
    });
  }

  /** The cached token, renewed past 80% of its life; one renewal serves every concurrent call. */
  async #accessToken(attempt: number): Promise<string> {
    const cached = this.#token;
    if (cached !== undefined && Date.now() < cached.refreshAt) return cached.value;
    this.#tokenRequest ??= this.#requestToken(attempt).finally(() => {
      this.#tokenRequest = undefined;
    });
    try {
      const token = await this.#tokenRequest;
      this.#token = token;
      return token.value;
    } catch (err) {
      // A renewal that fails for a passing reason need not stop a call while the old token still holds.
      if (err instanceof TransientFailure && cached !== undefined && Date.now() < cached.expiresAt) return cached.value;
      throw err;
    }
  }

  async #requestToken(attempt: number): Promise<CachedToken> {
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: this.config.clientId,
      client_secret: this.config.clientSecret,
    });
    const requestedAt = Date.now();
    const { status, headers, body } = await this.#exchange('POST', TOKEN_ROUTE, TOKEN_ROUTE, attempt, {
      url: this.#url(TOKEN_ROUTE),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
    });
    if (status === 200) {
      const token = parseResponse(tokenSchema, body, TOKEN_ROUTE);
      const lifetimeMs = token.expires_in * 1000;
      return {
        value: token.access_token,
        refreshAt: requestedAt + lifetimeMs * TOKEN_REFRESH_FRACTION,
        expiresAt: requestedAt + lifetimeMs,
      };
    }
    const oauth = oauthErrorSchema.safeParse(body);
    const reason = oauth.success ? `${oauth.data.error}${oauth.data.error_description ? `: ${oauth.data.error_description}` : ''}` : `HTTP ${status}`;
    if (status === 429 || status === 408 || status >= 500) {
      throw new TransientFailure(`token request answered ${status}: ${reason}`, {
        status,
        retryAfterMs: parseRetryAfterMs(headers.get('retry-after')),
      });
    }
    throw new ErpAuthError(`the ERP refused client ${this.config.clientId} a token: ${reason}`, { status });
  }

  /** One HTTP request under the request timeout and the stop signal, reported to `onRequest`. */
  async #exchange(
    method: string,
    route: string,
    path: string,
    attempt: number,
    request: { url: string; headers: Record<string, string>; body: string | undefined },
  ): Promise<{ status: number; headers: Headers; body: unknown }> {
    const started = performance.now();
    const signal = AbortSignal.any([AbortSignal.timeout(this.config.requestTimeoutMs), this.#stopping.signal]);
    let status: number | null = null;
    try {
      const response = await fetch(request.url, { method, headers: request.headers, body: request.body, signal });
      status = response.status;
      const text = await response.text();
      this.#report({ method, route, path, status, durationMs: performance.now() - started, attempt });
      return { status: response.status, headers: response.headers, body: parseJson(text) };
    } catch (err) {
      const durationMs = performance.now() - started;
      if (this.#stopping.signal.aborted) {
        this.#report({ method, route, path, status, durationMs, attempt, error: 'stopped' });
        throw new ErpClientNotRunningError(`${method} ${path}: the ERP client was stopped mid-request`, { cause: err });
      }
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      const reason = timedOut ? `no answer within ${this.config.requestTimeoutMs} ms` : describeNetworkError(err);
      this.#report({ method, route, path, status, durationMs, attempt, error: timedOut ? 'timeout' : reason });
      throw new TransientFailure(`${method} ${path}: ${reason}`, { status, cause: err });
    }
  }

  async #wait(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.#stopping.signal });
    } catch (err) {
      throw new ErpClientNotRunningError('the ERP client was stopped while waiting to retry', { cause: err });
    }
  }

  #url(path: string, query: Record<string, string | undefined> = {}): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, value);
    const search = params.size > 0 ? `?${params.toString()}` : '';
    // Joined as text so a base URL with a path (a tenant prefix) keeps it.
    return `${this.config.baseUrl.replace(/\/+$/, '')}${path}${search}`;
  }

  #report(event: ErpRequestEvent): void {
    if (this.#onRequest === undefined) return;
    try {
      this.#onRequest(event);
    } catch {
      // An observer must never change the outcome of a call.
    }
  }
}

function parseJson(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function parseResponse<T extends z.ZodType>(schema: T, body: unknown, route: string): z.output<T> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ErpProtocolError(
      `the ERP's answer to ${route} does not match the contract${issue ? ` at ${issue.path.join('.') || '(body)'}: ${issue.message}` : ''}`,
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}
