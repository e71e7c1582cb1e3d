// The legacy ERP sink as a connector: its config spec, and the assembly the
// runtime uses when LEGACY_ERP_DIR is set: the file sink, the routing rules
// watched in KV, acknowledgement polling, and the routed ERP port that stands
// in front of the cloud ERP client.
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import type { ErpPort } from '../../pipeline/erp-poster.ts';
import { defineConnector, type ConnectorContext, type ConnectorHealth, type ConnectorInstance } from '../connector-spec.ts';
import { KV_BUCKETS, openBucket } from '../kv-store.ts';
import { LegacyErpFileSink } from './file-sink.ts';
import { RoutedErp } from './routed-erp.ts';
import { ROUTING_KEY, RoutingRulesWatcher } from './routing.ts';

export const legacyErpConfigSchema = z
  .object({
    directory: z.string().min(1).describe('Directory the batch files, manifests and acknowledgements live in (env LEGACY_ERP_DIR).').meta({ examples: ['/var/lib/billstream/legacy-erp'] }),
    prefix: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/).default('billstream').describe('First part of every batch name: `<prefix>-<UTC time>-<digest>`.'),
    ackPollSeconds: z.number().positive().default(10).describe('How often the directory is checked for `<batch>.ack` files.'),
    ackTimeoutHours: z.number().positive().default(24).describe('A batch unacknowledged for longer makes the connector unhealthy.'),
    routingKey: z.string().default(ROUTING_KEY).describe(`KV key (bucket ${KV_BUCKETS.templates}) of the routing rules.`),
  })
  .describe('Legacy ERP file sink.');

export type LegacyErpConfig = z.output<typeof legacyErpConfigSchema>;

export interface LegacyErpDeps {
  nats: NatsConnection;
  /** The cloud ERP port, which gets every line the rules do not send to the legacy ERP. */
  cloud: ErpPort;
  regionOf: (line: Record<string, unknown>) => string | undefined;
  log?: (line: string) => void;
}

/** The sink, the rules and the routed port, running. */
export class LegacyErpRouting implements ConnectorInstance {
  readonly sink: LegacyErpFileSink;
  readonly #config: LegacyErpConfig;
  readonly #deps: LegacyErpDeps;
  #rules: RoutingRulesWatcher | null = null;
  #port: RoutedErp | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(config: LegacyErpConfig, deps: LegacyErpDeps) {
    this.#config = config;
    this.#deps = deps;
    this.sink = new LegacyErpFileSink({ directory: config.directory, prefix: config.prefix, ackTimeoutMs: config.ackTimeoutHours * 3_600_000 });
  }

  async start(): Promise<void> {
    if (this.#port) return;
    await this.sink.start();
    const log = this.#deps.log ?? (() => undefined);
    this.#rules = new RoutingRulesWatcher(await openBucket(this.#deps.nats, KV_BUCKETS.templates, { history: 16 }), {
      key: this.#config.routingKey,
      onError: (err) => log(`legacy ERP routing rules: ${err instanceof Error ? err.message : String(err)}`),
    });
    await this.#rules.start();
    const rules = this.#rules;
    this.#port = new RoutedErp({ cloud: this.#deps.cloud, legacy: this.sink, rules: () => rules.current(), regionOf: this.#deps.regionOf });
    this.#timer = setInterval(() => {
      this.sink.pollAcknowledgements().then(
        (accepted) => { for (const batch of accepted) log(`legacy ERP accepted batch ${batch}`); },
        (err: unknown) => log(`legacy ERP acknowledgements: ${err instanceof Error ? err.message : String(err)}`),
      );
    }, this.#config.ackPollSeconds * 1000);
    this.#timer.unref();
  }

  /** The ERP port to hand the poster. */
  get port(): ErpPort {
    if (!this.#port) throw new Error('legacy ERP routing used before start()');
    return this.#port;
  }

  get rules(): RoutingRulesWatcher | null {
    return this.#rules;
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#rules?.stop();
  }

  health(): ConnectorHealth {
    const sink = this.sink.health();
    const error = this.#rules?.error();
    if (error) return { ok: false, detail: `${sink.detail}; routing rules refused: ${error}` };
    if (!this.#rules?.current()) return { ...sink, detail: `${sink.detail}; no routing rules at ${this.#config.routingKey}: everything goes to the cloud ERP` };
    return sink;
  }
}

/** Starts the legacy routing for a directory (the runtime's entry point). */
export async function startLegacyErpRouting(input: z.input<typeof legacyErpConfigSchema>, deps: LegacyErpDeps): Promise<LegacyErpRouting> {
  const routing = new LegacyErpRouting(legacyErpConfigSchema.parse(input), deps);
  await routing.start();
  return routing;
}

export const legacyErpConnector = defineConnector({
  name: 'legacy-erp',
  kind: 'sink',
  summary: 'Posted charges as CSV batch files with a manifest for the legacy ERP, routed by legal entity, region and cutover date.',
  description: `
Stands in front of the cloud ERP client as the poster's ERP port (enabled by \`LEGACY_ERP_DIR\`). Each line of a
posting goes to exactly one ERP: the first routing rule matching its legal entity and its project's region sends it
to the legacy ERP when its workDate is before the rule's \`cutover\`, to the cloud ERP otherwise; no rule, no workDate
(milestones) → cloud. A reversal follows its charge. The rules are JSON at \`routing.erp\` in the
\`billstream_templates\` KV bucket and are watched, so a cutover can move while billstream runs:

\`\`\`json
{ "version": 2, "rules": [ { "legalEntity": "ACME-DE", "region": "emea", "cutover": "2026-07-01" } ] }
\`\`\`

Legacy lines are written as \`<batch>.csv\` (RFC 4180, columns documentId, externalId, kind, entryId, milestoneId,
revision, projectId, customerId, consultantId, role, workDate, hours, rate, amount, currency, legalEntity) and then
\`<batch>.manifest.json\` (recordCount, controlTotals per currency with lines, amount and hours, sha256 of the CSV, the
posting's idempotencyKey). Both are written to a temp file and renamed; the manifest is the commit marker. Each line's
documentId is \`legacy:<batch>:<line>\`. The legacy system drops \`<batch>.ack\` into the directory to accept a batch.
A journal (\`.billstream-legacy-journal.jsonl\`) makes a retried posting answer \`duplicate\` with the same documentId.`,
  config: legacyErpConfigSchema,
  examples: [{ directory: '/var/lib/billstream/legacy-erp', prefix: 'acme', ackTimeoutHours: 48 }],
  env: { LEGACY_ERP_DIR: 'directory (and enables the routing in `billstream start`)' },
  create: (config, ctx: ConnectorContext) => {
    if (!ctx.nats) throw new TypeError('the legacy ERP sink needs nats in its context');
    const nats = ctx.nats;
    // Standalone (without a cloud port) every line the rules send to the cloud is refused loudly.
    return new LegacyErpRouting(config, {
      nats,
      log: ctx.log,
      regionOf: () => undefined,
      cloud: { postTransactions: () => Promise.reject(new Error('the legacy ERP connector runs without a cloud ERP port')) },
    });
  },
});
