// The field groups every HTTP-facing connector shares, written once: where the
// system is (connection), who we are to it (auth), how hard we retry (retry) and
// how fast we may ask (rateLimit). A connector spec composes them under these
// names, so every connector's config and generated docs read the same way.
import { z } from 'zod';

/** Names of the groups inside a connector config. */
export const FIELD_GROUP = {
  connection: 'connection',
  auth: 'auth',
  retry: 'retry',
  rateLimit: 'rateLimit',
} as const;

/** Field names inside the groups, as constants so code and docs never drift apart. */
export const FIELD = {
  baseUrl: 'baseUrl',
  timeoutMs: 'timeoutMs',
  type: 'type',
  token: 'token',
  header: 'header',
  scheme: 'scheme',
  username: 'username',
  password: 'password',
  tokenUrl: 'tokenUrl',
  clientId: 'clientId',
  clientSecret: 'clientSecret',
  scope: 'scope',
  attempts: 'attempts',
  initialBackoffMs: 'initialBackoffMs',
  maxBackoffMs: 'maxBackoffMs',
  maxRetryAfterMs: 'maxRetryAfterMs',
  ratePerSecond: 'ratePerSecond',
  burst: 'burst',
} as const;

const F = FIELD;

export interface ConnectionDefaults {
  baseUrl: string;
  examples?: string[];
  /** @default 30000 */
  timeoutMs?: number;
}

/** Where the system is and how long one request may take. */
export function connectionGroup(defaults: ConnectionDefaults) {
  return z
    .object({
      [F.baseUrl]: z
        .url({ protocol: /^https?$/ })
        .default(defaults.baseUrl)
        .describe('Base URL of the API; paths are appended to it, so a tenant prefix is kept.')
        .meta({ examples: defaults.examples ?? [defaults.baseUrl] }),
      [F.timeoutMs]: z
        .int()
        .min(1)
        .default(defaults.timeoutMs ?? 30_000)
        .describe('Timeout of one HTTP request in milliseconds; a timed-out request counts as a failed attempt.'),
    })
    .prefault({})
    .describe('Connection: where the system is.');
}

const noAuth = z.object({ [F.type]: z.literal('none') }).describe('No credentials (a local test server).');

const tokenAuth = z
  .object({
    [F.type]: z.literal('token'),
    [F.token]: z.string().min(1, 'is required').describe('The API token or personal access token.'),
    [F.header]: z.string().min(1).default('Authorization').describe('Header that carries the token, e.g. `X-Api-Key`.'),
    [F.scheme]: z
      .string()
      .default('Bearer')
      .describe('Written before the token in the header (`Bearer <token>`); empty for a bare token.'),
  })
  .describe('A static token in a header.');

const basicAuth = z
  .object({
    [F.type]: z.literal('basic'),
    [F.username]: z.string().min(1, 'is required').describe('User name (Toggl: the API token).'),
    [F.password]: z.string().default('').describe('Password (Toggl: the literal `api_token`).'),
  })
  .describe('HTTP Basic authentication.');

const oauthAuth = z
  .object({
    [F.type]: z.literal('oauth'),
    [F.tokenUrl]: z.url({ protocol: /^https?$/ }).describe('OAuth2 token endpoint (client-credentials grant).'),
    [F.clientId]: z.string().min(1, 'is required').describe('OAuth2 client id.'),
    [F.clientSecret]: z.string().default('').describe('OAuth2 client secret.'),
    [F.scope]: z.string().optional().describe('Scope requested with the token, when the system wants one.'),
  })
  .describe('OAuth2 client credentials; the token is fetched on first use and renewed before it expires.');

/** Who we are to the system: none, a token in a header, basic, or OAuth2 client credentials. */
export function authGroup() {
  return z
    .discriminatedUnion(F.type, [noAuth, tokenAuth, basicAuth, oauthAuth])
    .describe('Auth: how billstream identifies itself (`type` is none, token, basic or oauth).');
}

export type AuthConfig = z.output<ReturnType<typeof authGroup>>;

export interface RetryDefaults {
  /** @default 5 */
  attempts?: number;
}

/** How often a failed request (429, 408, 5xx, network) is tried before the pull gives up until next time. */
export function retryGroup(defaults: RetryDefaults = {}) {
  return z
    .object({
      [F.attempts]: z
        .int()
        .min(1)
        .default(defaults.attempts ?? 5)
        .describe('Requests made for one call, the first included, before it fails as unavailable.'),
      [F.initialBackoffMs]: z
        .int()
        .min(0)
        .default(500)
        .describe('Backoff ceiling before the second attempt in milliseconds; it doubles per attempt, the wait is drawn below it (full jitter).'),
      [F.maxBackoffMs]: z.int().min(0).default(30_000).describe('Cap of the backoff ceiling in milliseconds.'),
      [F.maxRetryAfterMs]: z
        .int()
        .min(0)
        .default(120_000)
        .describe('Longest Retry-After (429) waited out; when the source asks for more, the pull stops and resumes from its cursor next time.'),
    })
    .prefault({})
    .describe('Retry: what happens when a request fails for a passing reason.');
}

export interface RateLimitDefaults {
  ratePerSecond: number;
  burst: number;
}

/** Token bucket in front of the source: the sustained rate and the burst it tolerates. */
export function rateLimitGroup(defaults: RateLimitDefaults) {
  return z
    .object({
      [F.ratePerSecond]: z
        .number()
        .positive()
        .default(defaults.ratePerSecond)
        .describe('Requests per second sustained towards the source (token bucket refill rate).'),
      [F.burst]: z.int().min(1).default(defaults.burst).describe('Requests that may go out back to back (bucket size).'),
    })
    .prefault({})
    .describe('Rate limit: a token bucket per source, so the pull stays under the source\'s own limit.');
}

export type ConnectionConfig = z.output<ReturnType<typeof connectionGroup>>;
export type RetryConfig = z.output<ReturnType<typeof retryGroup>>;
export type RateLimitConfig = z.output<ReturnType<typeof rateLimitGroup>>;

/** The four groups together, as an HTTP client needs them. */
export interface HttpConnectorConfig {
  connection: ConnectionConfig;
  auth: AuthConfig;
  retry: RetryConfig;
  rateLimit: RateLimitConfig;
}
