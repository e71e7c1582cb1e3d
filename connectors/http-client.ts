// The HTTP client every pulling connector uses, built from the shared field
// groups: a token bucket in front of the source, the auth header, retries with
// full-jitter backoff on 408/5xx/network failures, and 429s waited out for as
// long as Retry-After says (holding back every other request to that source
// too). A failure that outlasts the retries surfaces as a ConnectorError; the
// pull loop then stops and resumes from its cursor next time.
import { setTimeout as sleep } from 'node:timers/promises';
// Pure timing rules shared with the ERP client; they hold no state of that connector.
import { fullJitterBackoffMs, parseRetryAfterMs } from './erp/backoff.ts';
import {
  ConnectorAuthError,
  ConnectorBadRequestError,
  ConnectorProtocolError,
  ConnectorStoppedError,
  ConnectorUnavailableError,
} from './connector-errors.ts';
import type { ConnectorHealth } from './connector-spec.ts';
import type { AuthConfig, HttpConnectorConfig } from './shared-fields.ts';
import { TokenBucket } from './token-bucket.ts';

export interface HttpResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when the body is not JSON; null when empty. */
  body: unknown;
  /** The URL actually requested. */
  url: string;
}

export interface HttpRequestEvent {
  method: string;
  url: string;
  status: number | null;
  attempt: number;
  durationMs: number;
  error?: string;
}

export interface HttpClientOptions {
  /** Observes every request (retries and token requests included); its exceptions are ignored. */
  onRequest?: (event: HttpRequestEvent) => void;
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number;
  /** Headers sent with every request besides auth, e.g. Harvest's `Harvest-Account-Id`. */
  headers?: Record<string, string>;
}

export interface RequestOptions {
  method?: 'GET' | 'POST';
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Statuses (besides 2xx) answered to the caller instead of thrown, e.g. 404 past Kimai's last page. */
  allowStatus?: readonly number[];
}

/** A failure worth another attempt: 429, 408, 5xx, no answer. Never escapes the client. */
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

interface OAuthToken {
  value: string;
  refreshAt: number;
}

export class ConnectorHttpClient {
  readonly connector: string;
  readonly config: HttpConnectorConfig;
  readonly #bucket: TokenBucket;
  readonly #onRequest: HttpClientOptions['onRequest'];
  readonly #random: () => number;
  readonly #headers: Record<string, string>;
  readonly #base: URL;
  #stopping = new AbortController();
  #oauth: OAuthToken | undefined;
  #lastSuccessAt: number | undefined;
  #lastFailure: { at: number; message: string } | undefined;

  constructor(connector: string, config: HttpConnectorConfig, options: HttpClientOptions = {}) {
    this.connector = connector;
    this.config = config;
    this.#bucket = new TokenBucket({ ratePerSecond: config.rateLimit.ratePerSecond, burst: config.rateLimit.burst });
    this.#onRequest = options.onRequest;
    this.#random = options.random ?? Math.random;
    this.#headers = { 'user-agent': 'billstream (time capture connectors)', ...lowerKeys(options.headers ?? {}) };
    this.#base = new URL(config.connection.baseUrl);
  }

  /** Aborts requests and waits in flight; they reject with ConnectorStoppedError. */
  stop(): void {
    this.#stopping.abort();
  }

  /** Makes a stopped client usable again (a pull loop started anew). */
  restart(): void {
    if (this.#stopping.signal.aborted) this.#stopping = new AbortController();
  }

  health(): ConnectorHealth {
    const failure = this.#lastFailure;
    if (failure && (this.#lastSuccessAt === undefined || this.#lastSuccessAt < failure.at)) {
      return { ok: false, detail: `${this.connector} failing since ${new Date(failure.at).toISOString()}: ${failure.message}` };
    }
    if (this.#lastSuccessAt === undefined) return { ok: true, detail: `${this.connector}: no request made yet` };
    return { ok: true, detail: `${this.connector} answered at ${new Date(this.#lastSuccessAt).toISOString()}` };
  }

  /**
   * Resolves a path against the base URL, or checks an absolute URL (a `next`
   * link the source handed out) points at the same origin, so credentials
   * never travel to a host nobody configured.
   */
  resolve(pathOrUrl: string, query: RequestOptions['query'] = {}): URL {
    let url: URL;
    if (/^https?:\/\//i.test(pathOrUrl)) {
      url = new URL(pathOrUrl);
      if (url.origin !== this.#base.origin) {
        throw new ConnectorProtocolError(this.connector, `refusing to follow ${url.origin}: the link leaves the configured ${this.#base.origin}`);
      }
    } else {
      url = new URL(`${this.#base.href.replace(/\/+$/, '')}/${pathOrUrl.replace(/^\/+/, '')}`);
    }
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    return url;
  }

  /**
   * One call with its retries.
   *
   * @throws ConnectorUnavailableError after `retry.attempts` failed tries, or when Retry-After exceeds `maxRetryAfterMs`.
   * @throws ConnectorAuthError on 401/403. @throws ConnectorBadRequestError on another 4xx.
   * @throws ConnectorStoppedError when stop() interrupts it.
   */
  async request(pathOrUrl: string, options: RequestOptions = {}): Promise<HttpResponse> {
    const url = this.resolve(pathOrUrl, options.query);
    const method = options.method ?? 'GET';
    const { attempts, maxRetryAfterMs } = this.config.retry;
    let renewedAuth = false;
    for (let attempt = 1; ; attempt++) {
      let failure: TransientFailure;
      try {
        const response = await this.#attempt(method, url, options, attempt);
        if ((response.status === 401 || response.status === 403) && this.config.auth.type === 'oauth' && !renewedAuth) {
          // A token we held as valid was refused: renew once, at no attempt's cost.
          renewedAuth = true;
          this.#oauth = undefined;
          attempt -= 1;
          continue;
        }
        this.#lastSuccessAt = Date.now();
        return this.#settle(method, url, response, options);
      } catch (err) {
        if (!(err instanceof TransientFailure)) {
          if (!(err instanceof ConnectorStoppedError)) this.#lastFailure = { at: Date.now(), message: err instanceof Error ? err.message : String(err) };
          throw err;
        }
        failure = err;
      }
      this.#lastFailure = { at: Date.now(), message: failure.message };
      const context = `${method} ${url.pathname}`;
      if (failure.retryAfterMs !== undefined && failure.retryAfterMs > maxRetryAfterMs) {
        throw new ConnectorUnavailableError(this.connector, `${context}: asked to wait ${failure.retryAfterMs} ms, more than maxRetryAfterMs (${maxRetryAfterMs})`, {
          attempts: attempt, lastStatus: failure.status, retryAfterMs: failure.retryAfterMs, cause: failure,
        });
      }
      if (attempt >= attempts) {
        throw new ConnectorUnavailableError(this.connector, `${context}: gave up after ${attempt} attempts: ${failure.message}`, {
          attempts: attempt, lastStatus: failure.status, cause: failure,
        });
      }
      if (failure.retryAfterMs !== undefined) {
        // Every request to this source waits, not just this one: the limit is the source's, not the call's.
        this.#bucket.blockFor(failure.retryAfterMs + fullJitterBackoffMs(1, this.config.retry, this.#random));
      } else {
        await this.#wait(fullJitterBackoffMs(attempt, this.config.retry, this.#random));
      }
    }
  }

  /** GET returning the parsed JSON body. */
  async getJson(pathOrUrl: string, query?: RequestOptions['query']): Promise<HttpResponse> {
    return this.request(pathOrUrl, { query });
  }

  async #attempt(method: string, url: URL, options: RequestOptions, attempt: number): Promise<{ status: number; headers: Headers; text: string }> {
    await this.#wait(this.#bucket.reserve());
    const headers: Record<string, string> = { accept: 'application/json', ...this.#headers, ...(await this.#authHeaders(attempt)) };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    return this.#exchange(method, url, headers, body, attempt);
  }

  #settle(method: string, url: URL, response: { status: number; headers: Headers; text: string }, options: RequestOptions): HttpResponse {
    const { status, headers, text } = response;
    const body = parseBody(text);
    if ((status >= 200 && status < 300) || options.allowStatus?.includes(status)) return { status, headers, body, url: url.href };
    const context = `${method} ${url.pathname}`;
    if (status === 401 || status === 403) {
      throw new ConnectorAuthError(this.connector, `${context} answered ${status}: the credentials in auth were refused`, { status });
    }
    throw new ConnectorBadRequestError(this.connector, `${context} answered ${status}: ${summarize(body)}`, { status, body });
  }

  async #exchange(method: string, url: URL, headers: Record<string, string>, body: string | undefined, attempt: number): Promise<{ status: number; headers: Headers; text: string }> {
    const started = performance.now();
    const signal = AbortSignal.any([AbortSignal.timeout(this.config.connection.timeoutMs), this.#stopping.signal]);
    const report = (status: number | null, error?: string) =>
      this.#report({ method, url: url.href, status, attempt, durationMs: performance.now() - started, ...(error ? { error } : {}) });
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, { method, headers, body, signal });
      text = await response.text();
    } catch (err) {
      if (this.#stopping.signal.aborted) {
        report(null, 'stopped');
        throw new ConnectorStoppedError(this.connector, `${method} ${url.pathname} was interrupted by stop()`, { cause: err });
      }
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      const reason = timedOut ? `no answer within ${this.config.connection.timeoutMs} ms` : describeNetworkError(err);
      report(null, reason);
      throw new TransientFailure(`${method} ${url.pathname}: ${reason}`, { status: null, cause: err });
    }
    report(response.status);
    const status = response.status;
    if (status === 429 || status === 408 || status >= 500) {
      throw new TransientFailure(`${method} ${url.pathname} answered ${status}`, {
        status,
        retryAfterMs: status === 429 ? (parseRetryAfterMs(response.headers.get('retry-after')) ?? 1000) : parseRetryAfterMs(response.headers.get('retry-after')),
      });
    }
    return { status, headers: response.headers, text };
  }

  async #authHeaders(attempt: number): Promise<Record<string, string>> {
    const auth: AuthConfig = this.config.auth;
    switch (auth.type) {
      case 'none':
        return {};
      case 'token':
        return { [auth.header.toLowerCase()]: auth.scheme ? `${auth.scheme} ${auth.token}` : auth.token };
      case 'basic':
        return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
      case 'oauth':
        return { authorization: `Bearer ${await this.#oauthToken(auth, attempt)}` };
    }
  }

  async #oauthToken(auth: Extract<AuthConfig, { type: 'oauth' }>, attempt: number): Promise<string> {
    if (this.#oauth && Date.now() < this.#oauth.refreshAt) return this.#oauth.value;
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: auth.clientId, client_secret: auth.clientSecret });
    if (auth.scope) form.set('scope', auth.scope);
    const url = new URL(auth.tokenUrl);
    const requestedAt = Date.now();
    const { status, text } = await this.#exchange('POST', url, { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, form.toString(), attempt);
    const body = parseBody(text) as { access_token?: unknown; expires_in?: unknown } | null;
    if (status !== 200 || typeof body?.access_token !== 'string') {
      throw new ConnectorAuthError(this.connector, `the token endpoint ${url.origin}${url.pathname} answered ${status} without an access_token`, { status });
    }
    const lifetimeMs = (typeof body.expires_in === 'number' ? body.expires_in : 3600) * 1000;
    this.#oauth = { value: body.access_token, refreshAt: requestedAt + lifetimeMs * 0.8 };
    return body.access_token;
  }

  async #wait(ms: number): Promise<void> {
    if (ms <= 0) {
      if (this.#stopping.signal.aborted) throw new ConnectorStoppedError(this.connector, 'stopped');
      return;
    }
    try {
      await sleep(ms, undefined, { signal: this.#stopping.signal });
    } catch (err) {
      throw new ConnectorStoppedError(this.connector, 'stopped while waiting to send a request', { cause: err });
    }
  }

  #report(event: HttpRequestEvent): void {
    try {
      this.#onRequest?.(event);
    } catch {
      // An observer never changes the outcome of a call.
    }
  }
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

function parseBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function summarize(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}
