// The time-capture sources as connectors: one config spec each (the shared
// connection, auth, retry and rate-limit groups plus what the source itself
// needs), and one instance shape that polls: every `pollIntervalSeconds` it
// runs the source's pull from its cursor in KV, mapping ids through the
// source's template as it stands at that moment.
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { defineConnector, type ConnectorContext, type ConnectorHealth, type ConnectorInstance, type FieldResolver, type PublishRecord } from '../connector-spec.ts';
import { ConnectorHttpClient } from '../http-client.ts';
import { KV_BUCKETS, openBucket } from '../kv-store.ts';
import { authGroup, connectionGroup, rateLimitGroup, retryGroup } from '../shared-fields.ts';
import { clockifyPuller } from './clockify.ts';
import { CursorStore, cursorKey, RevisionLedger, type PullRange } from './cursor-store.ts';
import { harvestPuller } from './harvest.ts';
import { kimaiPuller } from './kimai.ts';
import type { MapOutcome, SourceName } from './mapping.ts';
import { PullClient, type PullProgress, type PullRunResult, type SourcePuller } from './pull-client.ts';
import { togglPuller } from './toggl.ts';

const pullFields = (source: string) => ({
  template: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .default(source)
    .describe('Name of the mapping template (KV key `template.<name>` in billstream_templates) that maps the source\'s project, user and task ids to canonical ids.'),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .default('default')
    .describe('Name of the incremental cursor in billstream_cursors; two pulls of one account must not share it.'),
  pollIntervalSeconds: z.number().positive().default(300).describe('Pause between two incremental runs.'),
});

export const harvestConfigSchema = z
  .object({
    connection: connectionGroup({ baseUrl: 'https://api.harvestapp.com/v2', examples: ['https://api.harvestapp.com/v2'] }),
    auth: authGroup().prefault({ type: 'token', token: '' }),
    accountId: z.string().min(1).describe('Harvest account id, sent as the `Harvest-Account-Id` header.').meta({ examples: ['123456'] }),
    perPage: z.int().min(1).max(2000).default(2000).describe('Time entries per page (Harvest allows at most 2000).'),
    initialUpdatedSince: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('`updated_since` of the very first incremental run (later runs continue from the cursor); without it the first run reads every entry of the account.')
      .meta({ examples: ['2026-01-01T00:00:00Z'] }),
    retry: retryGroup(),
    // Harvest allows 100 requests per 15 seconds per token.
    rateLimit: rateLimitGroup({ ratePerSecond: 6, burst: 10 }),
    ...pullFields('harvest'),
  })
  .describe('Harvest API v2 time entries.');

export const togglConfigSchema = z
  .object({
    connection: connectionGroup({ baseUrl: 'https://api.track.toggl.com/api/v9', examples: ['https://api.track.toggl.com/api/v9'] }),
    auth: authGroup().prefault({ type: 'basic', username: '', password: 'api_token' }),
    initialLookbackDays: z.int().min(1).max(90).default(30).describe('On the very first run, entries changed this many days back are read (Toggl answers `since` for about three months).'),
    retry: retryGroup(),
    rateLimit: rateLimitGroup({ ratePerSecond: 1, burst: 2 }),
    ...pullFields('toggl'),
  })
  .describe('Toggl Track API v9 time entries of the token\'s user.');

export const clockifyConfigSchema = z
  .object({
    connection: connectionGroup({ baseUrl: 'https://api.clockify.me/api/v1', examples: ['https://api.clockify.me/api/v1'] }),
    auth: authGroup().prefault({ type: 'token', token: '', header: 'X-Api-Key', scheme: '' }),
    workspaceId: z.string().min(1).describe('Clockify workspace id.'),
    userIds: z.array(z.string().min(1)).min(1).describe('Clockify user ids whose time entries are read.'),
    lookbackDays: z.int().min(1).default(14).describe('Clockify keeps no update time: each incremental run re-reads entries started this many days back; unchanged ones publish nothing new.'),
    pageSize: z.int().min(1).max(5000).default(200).describe('Entries per page.'),
    retry: retryGroup(),
    rateLimit: rateLimitGroup({ ratePerSecond: 10, burst: 10 }),
    ...pullFields('clockify'),
  })
  .describe('Clockify time entries per user.');

export const kimaiConfigSchema = z
  .object({
    connection: connectionGroup({ baseUrl: 'https://kimai.example.com/api', examples: ['https://kimai.example.com/api'] }),
    auth: authGroup().prefault({ type: 'token', token: '' }),
    timeZone: z.string().default('UTC').describe('Time zone of the API user: Kimai reads `modified_after`, `begin` and `end` in it.'),
    overlapSeconds: z.int().min(0).default(300).describe('Each run asks for records modified since the last run\'s start less this, so clock skew loses nothing.'),
    pageSize: z.int().min(1).max(1000).default(250).describe('Timesheet records per page (`size`).'),
    retry: retryGroup(),
    rateLimit: rateLimitGroup({ ratePerSecond: 5, burst: 5 }),
    ...pullFields('kimai'),
  })
  .describe('Kimai timesheets of all users.');

export type HarvestConfig = z.output<typeof harvestConfigSchema>;
export type TogglConfig = z.output<typeof togglConfigSchema>;
export type ClockifyConfig = z.output<typeof clockifyConfigSchema>;
export type KimaiConfig = z.output<typeof kimaiConfigSchema>;
export type SourceConfig = HarvestConfig | TogglConfig | ClockifyConfig | KimaiConfig;

/** The puller and HTTP client of a source, from its validated config. */
export function sourceAccess(source: SourceName, config: SourceConfig): { puller: SourcePuller<unknown>; http: ConnectorHttpClient } {
  switch (source) {
    case 'harvest': {
      const c = config as HarvestConfig;
      return {
        puller: harvestPuller({ perPage: c.perPage, ...(c.initialUpdatedSince ? { initialUpdatedSince: c.initialUpdatedSince } : {}) }) as SourcePuller<unknown>,
        http: new ConnectorHttpClient('harvest', c, { headers: { 'Harvest-Account-Id': c.accountId } }),
      };
    }
    case 'toggl': {
      const c = config as TogglConfig;
      return { puller: togglPuller({ initialLookbackDays: c.initialLookbackDays }) as SourcePuller<unknown>, http: new ConnectorHttpClient('toggl', c) };
    }
    case 'clockify': {
      const c = config as ClockifyConfig;
      return {
        puller: clockifyPuller({ workspaceId: c.workspaceId, userIds: c.userIds, lookbackDays: c.lookbackDays, pageSize: c.pageSize }) as SourcePuller<unknown>,
        http: new ConnectorHttpClient('clockify', c),
      };
    }
    case 'kimai': {
      const c = config as KimaiConfig;
      return {
        puller: kimaiPuller({ timeZone: c.timeZone, overlapSeconds: c.overlapSeconds, pageSize: c.pageSize }) as SourcePuller<unknown>,
        http: new ConnectorHttpClient('kimai', c),
      };
    }
  }
}

export interface SourcePullDeps {
  nats: NatsConnection;
  publish: PublishRecord;
  template: (name: string) => FieldResolver;
  /** A backfill's range; its cursor is `backfill-<from>-<to>` unless `cursorName` says otherwise. */
  range?: PullRange;
  cursorName?: string;
  onPage?: (progress: PullProgress) => void;
  onOutcome?: (outcome: MapOutcome) => void;
}

/** A pull client of a source wired to KV (cursor, ledger) and the current template. */
export async function openSourcePull(source: SourceName, config: SourceConfig, deps: SourcePullDeps): Promise<PullClient<unknown>> {
  const { puller, http } = sourceAccess(source, config);
  const kv = await openBucket(deps.nats, KV_BUCKETS.cursors);
  const name = deps.cursorName ?? (deps.range ? `backfill-${deps.range.from}-${deps.range.to ?? 'open'}` : config.cursor);
  return new PullClient({
    puller,
    http,
    cursors: new CursorStore(kv),
    ...(puller.usesLedger ? { ledger: new RevisionLedger(kv, source) } : {}),
    ids: () => deps.template(config.template),
    publish: deps.publish,
    cursorKey: cursorKey(source, name),
    ...(deps.range ? { range: deps.range } : {}),
    ...(deps.onPage ? { onPage: deps.onPage } : {}),
    ...(deps.onOutcome ? { onOutcome: deps.onOutcome } : {}),
  });
}

/** A source that polls: one incremental run every `pollIntervalSeconds`. */
export class PollingSource implements ConnectorInstance {
  readonly #source: SourceName;
  readonly #config: SourceConfig;
  readonly #ctx: ConnectorContext;
  #client: PullClient<unknown> | null = null;
  #loop: Promise<void> | null = null;
  #stopping: AbortController | null = null;
  #lastResult: PullRunResult | null = null;

  constructor(source: SourceName, config: SourceConfig, ctx: ConnectorContext) {
    this.#source = source;
    this.#config = config;
    this.#ctx = ctx;
  }

  async start(): Promise<void> {
    if (this.#loop) return;
    const { nats, publish, template } = this.#ctx;
    if (!nats || !publish || !template) throw new TypeError(`the ${this.#source} source needs nats, publish and template in its context`);
    this.#client = await openSourcePull(this.#source, this.#config, {
      nats, publish, template,
      onOutcome: (o) => {
        if (o.kind === 'invalid') this.#ctx.log(`${this.#source} entry ${o.sourceId} not mapped: ${o.errors.map((e) => `${e.field}: ${e.reason}`).join('; ')}`);
      },
    });
    const stopping = new AbortController();
    this.#stopping = stopping;
    const client = this.#client;
    this.#loop = (async () => {
      while (!stopping.signal.aborted) {
        try {
          this.#lastResult = await client.run();
        } catch (err) {
          this.#ctx.log(`${this.#source} pull failed (resumes from its cursor): ${err instanceof Error ? err.message : String(err)}`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.#config.pollIntervalSeconds * 1000);
          stopping.signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
        });
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopping?.abort();
    await this.#client?.stop();
    await this.#loop;
    this.#loop = null;
  }

  health(): ConnectorHealth {
    if (!this.#client) return { ok: false, detail: `${this.#source} source not started` };
    return this.#client.health();
  }

  get lastResult(): PullRunResult | null {
    return this.#lastResult;
  }
}

const SOURCE_DOC = (source: string, extra: string) => `
Pulls ${source} time entries into \`ingest.time.<region>.<projectId>\`, each mapped to a canonical \`time\`
record (CONTRACT §2) with a stable idempotency key as its \`Nats-Msg-Id\` (also kept as \`sourceKey\`).
Project, user and task ids are mapped to canonical ids by the mapping template named in \`template\`
(hot-reloaded from the \`billstream_templates\` KV bucket). Entries that cannot be mapped are logged with
every field and reason and are not published; fix the template and backfill the range.

The cursor lives in the \`billstream_cursors\` KV bucket and is written after each page is published, so a
restarted pull resumes at the first page not fully acknowledged. A 429 is waited out for as long as
\`Retry-After\` says (holding back every request to the source); other passing failures are retried with
full-jitter backoff.

${extra}`;

export const harvestConnector = defineConnector({
  name: 'harvest',
  kind: 'source',
  summary: 'Harvest API v2 time entries, incremental on updated_since, paged through links.next.',
  description: SOURCE_DOC('Harvest', `- entryId \`harvest-<id>\`, revision from \`updated_at\` (seconds since 2000-01-01), key \`harvest:<id>:<updated_at>\`.
- \`hours\` (decimal) is rounded half away from zero to 2 decimals; \`spent_date\` is the work date.
- \`is_closed\` → approved; otherwise the template's \`status\` (default submitted). \`is_locked\` and \`billable\` are kept as \`sourceLocked\`/\`sourceBillable\`.
- A running timer (\`is_running\`) is skipped until it stops.`),
  config: harvestConfigSchema,
  examples: [{ auth: { type: 'token', token: '<personal access token>' }, accountId: '123456', template: 'harvest' }],
  env: { HARVEST_BASE_URL: 'connection.baseUrl', HARVEST_TOKEN: 'auth (token)', HARVEST_ACCOUNT_ID: 'accountId' },
  create: (config, ctx) => new PollingSource('harvest', config, ctx),
});

export const togglConnector = defineConnector({
  name: 'toggl',
  kind: 'source',
  summary: 'Toggl Track API v9 time entries (and the detailed-report CSV export through backfill --file).',
  description: SOURCE_DOC('Toggl Track', `- entryId \`toggl-<id>\`, revision from \`at\`, key \`toggl:<id>:<at>\`.
- \`duration\` seconds → hours, rounded half away from zero; a negative duration (a running timer) is skipped.
- \`server_deleted_at\` → a rejected revision (a charge made for the entry is reversed).
- The work date is the day of \`start\` in the template's \`timeZone\` (default UTC).
- The CSV export (\`npx billstream backfill --source toggl --file export.csv\`): entryId from Email, Start date and
  Start time; revision from the revision ledger; template paths name the columns (\`Project\`, \`Email\`, \`Task\`).`),
  config: togglConfigSchema,
  examples: [{ auth: { type: 'basic', username: '<api token>', password: 'api_token' } }],
  env: { TOGGL_BASE_URL: 'connection.baseUrl', TOGGL_API_TOKEN: 'auth (basic, the token as user name)' },
  create: (config, ctx) => new PollingSource('toggl', config, ctx),
});

export const clockifyConnector = defineConnector({
  name: 'clockify',
  kind: 'source',
  summary: 'Clockify time entries per user, re-read over a lookback window.',
  description: SOURCE_DOC('Clockify', `- entryId \`clockify-<id>\`, key \`clockify:<id>:<content fingerprint>\`. Clockify keeps no update time: the
  revision ledger (in billstream_cursors) gives an entry a new revision only when its content changed.
- \`timeInterval.duration\` is ISO-8601 (\`PT1H30M\`); null \`end\`/\`duration\` (a running timer) is skipped.
- Explicit nulls (\`projectId: null\`) fail the entry with that reason.
- \`approvalStatus\` APPROVED/REJECTED/PENDING → approved/rejected/submitted; otherwise the template's status.`),
  config: clockifyConfigSchema,
  examples: [{ auth: { type: 'token', token: '<api key>', header: 'X-Api-Key', scheme: '' }, workspaceId: '5f1e0c1b2a3d4e5f6a7b8c9d', userIds: ['5f1e0c1b2a3d4e5f6a7b8c9e'] }],
  env: { CLOCKIFY_BASE_URL: 'connection.baseUrl', CLOCKIFY_API_KEY: 'auth (X-Api-Key)', CLOCKIFY_WORKSPACE_ID: 'workspaceId', CLOCKIFY_USER_IDS: 'userIds (comma-separated)' },
  create: (config, ctx) => new PollingSource('clockify', config, ctx),
});

export const kimaiConnector = defineConnector({
  name: 'kimai',
  kind: 'source',
  summary: 'Kimai timesheets of all users, incremental on modified_after.',
  description: SOURCE_DOC('Kimai', `- entryId \`kimai-<id>\`, key \`kimai:<id>:<content fingerprint>\`, revision from the revision ledger (the
  timesheet shows no modification time).
- \`begin\`/\`end\` are local time with an offset: the work date is the date as written. \`duration\` seconds → hours.
- \`end: null\` (running) is skipped. \`exported: true\` → approved; otherwise the template's status.`),
  config: kimaiConfigSchema,
  examples: [{ connection: { baseUrl: 'https://kimai.example.com/api' }, auth: { type: 'token', token: '<api token>' }, timeZone: 'Europe/Berlin' }],
  env: { KIMAI_BASE_URL: 'connection.baseUrl', KIMAI_API_TOKEN: 'auth (Bearer token)', KIMAI_TIME_ZONE: 'timeZone' },
  create: (config, ctx) => new PollingSource('kimai', config, ctx),
});

export const SOURCE_CONNECTORS = {
  harvest: harvestConnector,
  toggl: togglConnector,
  clockify: clockifyConnector,
  kimai: kimaiConnector,
} as const;

/** A source's settings found in the environment (see each spec's `env`); the rest comes from defaults or a config file. */
export function sourceConfigFromEnv(source: SourceName, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const prefix = source.toUpperCase();
  const input: Record<string, unknown> = {};
  const baseUrl = env[`${prefix}_BASE_URL`];
  if (baseUrl) input.connection = { baseUrl };
  switch (source) {
    case 'harvest':
      if (env.HARVEST_TOKEN) input.auth = { type: 'token', token: env.HARVEST_TOKEN };
      if (env.HARVEST_ACCOUNT_ID) input.accountId = env.HARVEST_ACCOUNT_ID;
      break;
    case 'toggl':
      if (env.TOGGL_API_TOKEN) input.auth = { type: 'basic', username: env.TOGGL_API_TOKEN, password: 'api_token' };
      break;
    case 'clockify':
      if (env.CLOCKIFY_API_KEY) input.auth = { type: 'token', token: env.CLOCKIFY_API_KEY, header: 'X-Api-Key', scheme: '' };
      if (env.CLOCKIFY_WORKSPACE_ID) input.workspaceId = env.CLOCKIFY_WORKSPACE_ID;
      if (env.CLOCKIFY_USER_IDS) input.userIds = env.CLOCKIFY_USER_IDS.split(',').map((s) => s.trim()).filter(Boolean);
      break;
    case 'kimai':
      if (env.KIMAI_API_TOKEN) input.auth = { type: 'token', token: env.KIMAI_API_TOKEN };
      if (env.KIMAI_TIME_ZONE) input.timeZone = env.KIMAI_TIME_ZONE;
      break;
  }
  return input;
}
