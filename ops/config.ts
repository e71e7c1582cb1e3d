// billstream's configuration: one schema over the environment (CONTRACT §8),
// validated once at start-up and typed everywhere after. A bad value stops the
// process with the variable's name and the reason, never a default in silence.
import { hostname } from 'node:os';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);

/** Heap budget of `billstream start` in MiB (see ops/commands/start.ts). */
export const DEFAULT_HEAP_MIB = 320;

const regionWindow = z.strictObject({
  maxCount: z.number().int().positive().max(20_000).optional(),
  maxBytes: z.number().int().positive().optional(),
  maxWaitMs: z.number().min(0).max(60_000).optional(),
});
const regionBatching = z.string().transform((text, ctx) => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be a JSON object of regions, e.g. {"emea": {"maxCount": 200}}' });
    return z.NEVER;
  }
}).pipe(z.record(z.string().regex(/^[a-z0-9]{2,16}$/, 'region keys must be regions of 2–16 characters of a-z or 0-9'), regionWindow));

export const configSchema = z.object({
  NATS_URL: z.string().default('nats://127.0.0.1:4222').describe('NATS server URL(s), comma-separated'),
  DATABASE_URL: z.string().default('postgres://postgres@127.0.0.1:5432/billstream').describe('PostgreSQL connection URL of the billing ledger'),
  HTTP_PORT: port.default(8080).describe('Port of the ops HTTP server'),
  HTTP_HOST: z.string().default('0.0.0.0').describe('Address the ops HTTP server binds'),
  ERP_BASE_URL: z.string().url().default('http://127.0.0.1:8090').describe('Base URL of the cloud ERP API (or the sandbox)'),
  ERP_CLIENT_ID: z.string().optional().describe('OAuth2 client id for the ERP'),
  ERP_CLIENT_SECRET: z.string().optional().describe('OAuth2 client secret for the ERP'),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional().describe('OTLP/HTTP base endpoint traces are exported to (protobuf, <endpoint>/v1/traces); unset = no tracing at all'),
  BILLSTREAM_TRACE_RATIO: z.coerce.number().min(0).max(1).default(1).describe('Share of entry traces kept (head sampling by traceId); traces with an exception, a retry or a wait for reference data are always kept'),
  REFERENCE_GRACE_SECONDS: z.coerce.number().min(0).default(300).describe('How long an entry waits for its project, assignment or rate before it becomes an exception'),
  INGEST_TOKEN: z.string().min(1).optional().describe('Bearer token required by POST /v1/ingest when set'),
  BILLSTREAM_BATCH_MAX_ENTRIES: z.coerce.number().int().positive().max(20_000).default(1000).describe('A region\'s batch (one transaction for all its projects\' actors) leaves at this many entries'),
  BILLSTREAM_BATCH_MAX_BYTES: z.coerce.number().int().positive().default(1024 * 1024).describe('... or at this many bytes of message payload'),
  BILLSTREAM_BATCH_MAX_WAIT_MS: z.coerce.number().min(0).max(60_000).default(20).describe('... or this many milliseconds after its first entry, whichever comes first'),
  BILLSTREAM_REGION_BATCHING: regionBatching.default({}).describe('Per-region overrides of the three batch limits, as JSON: {"emea": {"maxCount": 200, "maxWaitMs": 5}}'),
  BILLSTREAM_TURN_MAX_ENTRIES: z.coerce.number().int().positive().max(50_000).default(4000).describe('Entries one lane\'s turn (transaction) takes at most: a busy lane\'s batches that queued meanwhile go together'),
  BILLSTREAM_MAX_CONCURRENT_BATCHES: z.coerce.number().int().positive().default(4).describe('Lane batch transactions running at once (one lane\'s batches never overlap)'),
  BILLSTREAM_LANES_PER_REGION: z.coerce.number().int().positive().max(64).default(2).describe('Lanes each region\'s projects are spread over by a stable hash: one lane\'s turns run one at a time, a region\'s lanes side by side'),
  BILLSTREAM_MAX_ACK_PENDING: z.coerce.number().int().positive().default(10_000).describe('Unacked messages per ingest consumer: the in-flight bound'),
  BILLSTREAM_HEAP_MIB: z.coerce.number().int().min(0).default(DEFAULT_HEAP_MIB).describe('Heap budget of `billstream start` in MiB (V8\'s --max-old-space-size; 0 = V8\'s own limit)'),
  BILLSTREAM_MAX_IN_FLIGHT_BYTES: z.coerce.number().int().positive().default(64 * 1024 * 1024).describe('Payload bytes of unacked messages per ingest consumer held in memory: past it the consumer stops pulling'),
  ERP_MAX_PENDING: z.coerce.number().int().positive().default(20_000).describe('ERP outbox lines this instance lets wait for posting before its batches wait (backpressure from a slow or rate-limited ERP onto the consumer)'),
  NATS_RELAY_MAX_QUEUED: z.coerce.number().int().positive().default(20_000).describe('Committed announcements waiting in memory for the NATS relay above which this instance\'s batches wait (backpressure from a busy nats-server onto the consumer)'),
  BILLSTREAM_ACK_WAIT_SECONDS: z.coerce.number().positive().default(60).describe('How long a delivered ingest message may stay unacked before the broker redelivers it (a crashed instance\'s messages come back after this)'),
  ERP_POST_LEASE_SECONDS: z.coerce.number().positive().default(30).describe('How long a claimed ERP batch stays reserved for the instance posting it; a crashed instance\'s batches are posted by another after this (posting twice is harmless: the ERP keeps one document per externalId)'),
  BILLSTREAM_PARTITIONS: z.coerce.number().int().min(0).max(1024).default(0).describe('Cluster mode when > 0: projects hash into this many partitions, each owned by one instance at a time (keep it fixed for a deployment)'),
  BILLSTREAM_INSTANCE_ID: z.string().regex(/^[A-Za-z0-9_-]{1,48}$/).default(defaultInstanceId()).describe('This instance\'s id in cluster mode (leases and its own reference consumers are named by it)'),
  BILLSTREAM_LEASE_TTL_SECONDS: z.coerce.number().positive().default(15).describe('Partition lease lifetime without renewal: how soon a dead instance\'s partitions are taken over'),
  ERP_BATCH_SIZE: z.coerce.number().int().positive().max(1000).default(500).describe('Transactions per ERP post'),
  ERP_POST_CONCURRENCY: z.coerce.number().int().positive().max(64).default(4).describe('ERP posts in flight at once'),
  OPS_TOKEN: z.string().min(1).optional().describe('Bearer token required by the ops server\'s actions (exception replay and dismiss, billing close) when set'),
  POSTING_SLA_MINUTES: z.coerce.number().positive().default(60).describe('Approved time not posted to the ERP within this many minutes raises a posting_sla alert (fractions allowed)'),
  POSTING_SLA_CHECK_SECONDS: z.coerce.number().positive().default(30).describe('How often the posting SLA is checked'),
  INVOICE_POLL_SECONDS: z.coerce.number().positive().default(60).describe('How often open invoices\' status is read from the ERP'),
  LEGACY_ERP_DIR: z.string().min(1).optional().describe('Directory of the legacy ERP\'s batch files; when set, charges the routing rules (KV routing.erp) give the legacy ERP are written there instead of posted to the cloud ERP'),
  WEBHOOK_SECRET_HARVEST: z.string().min(1).optional().describe('HMAC secret of POST /v1/webhooks/harvest; unset = that webhook is off'),
  WEBHOOK_SECRET_TOGGL: z.string().min(1).optional().describe('HMAC secret of POST /v1/webhooks/toggl; unset = that webhook is off'),
  WEBHOOK_SECRET_CLOCKIFY: z.string().min(1).optional().describe('HMAC secret of POST /v1/webhooks/clockify; unset = that webhook is off'),
  WEBHOOK_SECRET_KIMAI: z.string().min(1).optional().describe('HMAC secret of POST /v1/webhooks/kimai; unset = that webhook is off'),
});

function defaultInstanceId(): string {
  return `${hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 32)}-${process.pid}`;
}

export type BillstreamConfig = z.output<typeof configSchema>;

export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): BillstreamConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = configSchema.safeParse(present);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}
