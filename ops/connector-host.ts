// What the ops side gives the connectors: a publisher onto
// `ingest.<kind>.<region>.<key>`, the mapping templates (watched in KV), and
// the webhook mapping behind POST /v1/webhooks/{source}. Used by the runtime,
// by `billstream backfill` and by `billstream template`.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { PublishRecord } from '../connectors/connector-spec.ts';
import { KV_BUCKETS, openBucket } from '../connectors/kv-store.ts';
import { publishMessage } from '../connectors/nats/publish.ts';
import { RevisionLedger } from '../connectors/sources/cursor-store.ts';
import { isSourceName, SOURCE_NAMES } from '../connectors/sources/mapping.ts';
import { mapWebhookPayload, WebhookPayloadError } from '../connectors/sources/webhook-payload.ts';
import { openTemplateBucket, TemplateRegistry } from '../connectors/templates/template-store.ts';
import { recordKey, REGION_PATTERN } from '../pipeline/model/records.ts';
import type { RecordByKind, RecordKind } from '../pipeline/model/types.ts';
import type { WebhookMapping } from './http/webhooks-route.ts';

/** The project's region of a record without one, or undefined when the project is unknown. */
export type ProjectRegionLookup = (projectId: string) => string | undefined;

const GLOBAL_KINDS: ReadonlySet<RecordKind> = new Set(['consultant', 'ratecard']);

export class UnroutableRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnroutableRecordError';
  }
}

/** `ingest.<kind>.<region>.<key>`: the record's own region, `global` for consultants and rate cards, else its project's. */
export function ingestSubject(kind: RecordKind, record: Record<string, unknown>, projectRegion: ProjectRegionLookup): string {
  let region: string | undefined;
  if (typeof record.region === 'string') region = record.region;
  else if (GLOBAL_KINDS.has(kind)) region = 'global';
  else if (typeof record.projectId === 'string') region = projectRegion(record.projectId);
  if (region === undefined || !REGION_PATTERN.test(region)) {
    throw new UnroutableRecordError(`${kind} record of project ${String(record.projectId)} has no region and its project's region is unknown; map a "region" in the template`);
  }
  return `ingest.${kind}.${region}.${recordKey(kind, record as unknown as RecordByKind[RecordKind])}`;
}

/** A connector publisher onto JetStream; resolves when the broker acked the record. */
export function natsPublisher(js: JetStreamClient, projectRegion: ProjectRegionLookup): PublishRecord {
  return async (kind, record, msgId) => {
    await publishMessage(js, { subject: ingestSubject(kind, record, projectRegion), msgId, payload: record });
  };
}

export interface ConnectorHost {
  templates: TemplateRegistry;
  /** For OpsServerDeps.webhooks. */
  webhooks: {
    webhookSecret(source: string): string | undefined;
    mapWebhook(source: string, payload: unknown, receivedAt: Date): Promise<WebhookMapping>;
  };
  stop(): Promise<void>;
}

/** Secrets come from WEBHOOK_SECRET_<SOURCE> (the environment, or the config read from it); an empty one leaves the source's webhooks off. */
export function webhookSecretFromEnv(env: Readonly<Record<string, unknown>> = process.env): (source: string) => string | undefined {
  return (source) => {
    const secret = env[`WEBHOOK_SECRET_${source.toUpperCase().replace(/-/g, '_')}`];
    return typeof secret === 'string' && secret !== '' ? secret : undefined;
  };
}

/** True when some source's webhook has a secret, i.e. the webhook route has something to serve. */
export function hasWebhookSecrets(env: Readonly<Record<string, unknown>> = process.env): boolean {
  const secret = webhookSecretFromEnv(env);
  return SOURCE_NAMES.some((source) => secret(source) !== undefined);
}

export async function startConnectorHost(options: { nc: NatsConnection; log: (line: string) => void; env?: Readonly<Record<string, unknown>> }): Promise<ConnectorHost> {
  const templates = new TemplateRegistry(await openTemplateBucket(options.nc), { onError: (err) => options.log(`templates: ${err instanceof Error ? err.message : String(err)}`) });
  templates.onChange((change) => {
    if (change.error) options.log(`template ${change.name} refused, the previous version stays in force: ${change.error}`);
  });
  await templates.start();
  const cursors = await openBucket(options.nc, KV_BUCKETS.cursors);
  return {
    templates,
    webhooks: {
      webhookSecret: webhookSecretFromEnv(options.env),
      async mapWebhook(source, payload, receivedAt) {
        if (!isSourceName(source)) throw new WebhookPayloadError(`there is no source ${JSON.stringify(source)}; the sources are ${SOURCE_NAMES.join(', ')}`);
        const outcomes = await mapWebhookPayload(source, payload, {
          ids: templates.resolver(source),
          ledger: new RevisionLedger(cursors, source),
          receivedAt: receivedAt.toISOString(),
        });
        const mapping: WebhookMapping = { records: [], skipped: [], invalid: [] };
        for (const o of outcomes) {
          if (o.kind === 'record') mapping.records.push({ kind: 'time', record: o.record as Record<string, unknown>, msgId: o.msgId, sourceId: o.sourceId });
          else if (o.kind === 'skipped') mapping.skipped.push({ sourceId: o.sourceId, reason: o.reason });
          else mapping.invalid.push({ sourceId: o.sourceId, errors: o.errors });
        }
        return mapping;
      },
    },
    stop: () => templates.stop(),
  };
}
