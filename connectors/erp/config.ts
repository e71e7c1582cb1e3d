// The ERP connector's config spec: one zod schema that validates the
// configuration at start-up, fills the defaults, and (through `describe()` and
// `z.toJSONSchema`) generates the connector's documentation. Field names are
// constants, and the field groups (connection, OAuth client, retry) are written
// once so the sandbox and later connectors can reuse them.
import { z } from 'zod';
import { ErpConfigError } from './errors.ts';

export const ERP_CONFIG_FIELD = {
  baseUrl: 'baseUrl',
  clientId: 'clientId',
  clientSecret: 'clientSecret',
  batchSize: 'batchSize',
  maxAttempts: 'maxAttempts',
  initialBackoffMs: 'initialBackoffMs',
  maxBackoffMs: 'maxBackoffMs',
  maxRetryAfterMs: 'maxRetryAfterMs',
  requestTimeoutMs: 'requestTimeoutMs',
} as const;

const F = ERP_CONFIG_FIELD;

/** Where the ERP is and how long one request may take. */
export const erpConnectionFields = {
  [F.baseUrl]: z
    .url({ protocol: /^https?$/ })
    .default('http://127.0.0.1:8090')
    .describe('Base URL of the cloud ERP API (env ERP_BASE_URL); the default is the local sandbox.')
    .meta({ examples: ['https://erp.example.com', 'http://127.0.0.1:8090'] }),
  [F.requestTimeoutMs]: z
    .int()
    .min(1)
    .default(15_000)
    .describe('Timeout of one HTTP request in milliseconds; a timed-out request is retried with the same Idempotency-Key.'),
};

/** OAuth2 client-credentials identity. */
export const oauthClientFields = {
  [F.clientId]: z
    .string()
    .min(1)
    .default('billstream')
    .describe('OAuth2 client id (env ERP_CLIENT_ID); the sandbox accepts any client when it has none configured.'),
  [F.clientSecret]: z
    .string()
    .default('')
    .describe('OAuth2 client secret (env ERP_CLIENT_SECRET).'),
};

/** Retry policy: full-jitter exponential backoff, capped, with a bounded number of attempts. */
export const retryFields = {
  [F.maxAttempts]: z
    .int()
    .min(1)
    .default(8)
    .describe('Requests made for one call (first try included) before giving up as unavailable.'),
  [F.initialBackoffMs]: z
    .int()
    .min(0)
    .default(200)
    .describe('Backoff ceiling before the second attempt, in milliseconds; it doubles per attempt and the wait is drawn uniformly below it (full jitter).'),
  [F.maxBackoffMs]: z
    .int()
    .min(0)
    .default(10_000)
    .describe('Cap of the backoff ceiling, in milliseconds.'),
  [F.maxRetryAfterMs]: z
    .int()
    .min(0)
    .default(60_000)
    .describe('Longest Retry-After the client waits out; when the ERP asks for more, the call gives up as unavailable and reports the wait asked for.'),
};

export const erpClientConfigSchema = z
  .object({
    ...erpConnectionFields,
    ...oauthClientFields,
    [F.batchSize]: z
      .int()
      .min(1)
      .max(1000)
      .default(200)
      .describe('Most transactions sent in one posting; callers split larger work into batches of this size.'),
    ...retryFields,
  })
  .describe('Cloud ERP client connector (CONTRACT §6).');

/** The validated configuration, every default filled in. */
export type ErpClientConfig = z.output<typeof erpClientConfigSchema>;
/** What a caller may give: every field optional, defaults fill the rest. */
export type ErpClientConfigInput = z.input<typeof erpClientConfigSchema>;

/**
 * Validates the connector configuration once, at start-up.
 *
 * @throws ErpConfigError naming every invalid field and why, including the
 *   combination `initialBackoffMs > maxBackoffMs`.
 */
export function parseErpClientConfig(input: ErpClientConfigInput = {}): ErpClientConfig {
  const parsed = erpClientConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new ErpConfigError(
      parsed.error.issues.map((issue) => ({ field: issue.path.join('.') || '(config)', reason: issue.message })),
      { cause: parsed.error },
    );
  }
  const config = parsed.data;
  if (config.initialBackoffMs > config.maxBackoffMs) {
    throw new ErpConfigError([
      {
        field: F.initialBackoffMs,
        reason: `${config.initialBackoffMs} exceeds ${F.maxBackoffMs} (${config.maxBackoffMs})`,
      },
    ]);
  }
  return config;
}

/** The connector's settings found in the environment (CONTRACT §8); unset ones fall back to the defaults. */
export function erpClientConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ErpClientConfigInput {
  const input: ErpClientConfigInput = {};
  if (env.ERP_BASE_URL) input.baseUrl = env.ERP_BASE_URL;
  if (env.ERP_CLIENT_ID) input.clientId = env.ERP_CLIENT_ID;
  if (env.ERP_CLIENT_SECRET !== undefined) input.clientSecret = env.ERP_CLIENT_SECRET;
  return input;
}

/** JSON Schema of the config (descriptions, defaults, examples), from which the docs are generated. */
export function erpClientConfigDocs(): unknown {
  return z.toJSONSchema(erpClientConfigSchema, { io: 'input' });
}

export const erpSandboxConfigSchema = z
  .object({
    databaseUrl: z.string().min(1).describe('PostgreSQL URL of the sandbox books (env DATABASE_URL).'),
    port: z
      .int()
      .min(0)
      .max(65_535)
      .default(8090)
      .describe('Port the sandbox listens on (env ERP_SANDBOX_PORT); 0 picks any free port.'),
    host: z.string().min(1).default('127.0.0.1').describe('Interface the sandbox binds to.'),
    clientId: z.string().min(1).optional().describe('The only OAuth2 client accepted (env ERP_CLIENT_ID); any when unset.'),
    clientSecret: z.string().optional().describe('Secret of that client (env ERP_CLIENT_SECRET).'),
    tokenTtlSeconds: z.number().positive().default(3600).describe('Lifetime of an issued access token, in seconds.'),
  })
  .describe('ERP sandbox: a local stand-in for the cloud ERP (CONTRACT §6).');

export type ErpSandboxConfig = z.output<typeof erpSandboxConfigSchema>;
export type ErpSandboxConfigInput = z.input<typeof erpSandboxConfigSchema>;

/** The sandbox's settings from the environment, validated; for `billstream erp-sandbox`. */
export function erpSandboxConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ErpSandboxConfig {
  const parsed = erpSandboxConfigSchema.safeParse({
    databaseUrl: env.DATABASE_URL,
    port: env.ERP_SANDBOX_PORT === undefined ? undefined : Number(env.ERP_SANDBOX_PORT),
    clientId: env.ERP_CLIENT_ID || undefined,
    clientSecret: env.ERP_CLIENT_SECRET || undefined,
  });
  if (!parsed.success) {
    throw new ErpConfigError(
      parsed.error.issues.map((issue) => ({ field: issue.path.join('.') || '(config)', reason: issue.message })),
      { cause: parsed.error },
    );
  }
  return parsed.data;
}
