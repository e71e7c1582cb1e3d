// Assembles a running billstream: NATS topology and sources, the ledger, the
// reference view, project actors, the pipeline, the ERP poster, the NATS relay
// and the ops HTTP server; and takes it apart again in the right order
// (stop intake, let turns commit, flush outboxes, close connections).
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { FastifyInstance } from 'fastify';
import { map, merge } from 'rxjs';
import { ErpClient } from '../connectors/erp/erp-client.ts';
import { isErpRejected } from '../connectors/erp/errors.ts';
import type { ErpTransaction } from '../connectors/erp/types.ts';
import { connectNats, natsHealth } from '../connectors/nats/connection.ts';
import { fromJsMsg } from '../connectors/nats/incoming.ts';
import { InFlightBudget } from '../connectors/nats/in-flight-budget.ts';
import { jetStreamSource } from '../connectors/nats/jetstream-source.ts';
import { publishAll, publishMessage } from '../connectors/nats/publish.ts';
import { STREAMS, ensureConsumer, ensureConsumerFromAckFloor, ensureTopology, ingestConsumerName } from '../connectors/nats/topology.ts';
import { LeaseStore } from '../connectors/nats/lease-store.ts';
import { startLegacyErpRouting } from '../connectors/legacy-erp/legacy-erp-connector.ts';
import { BillingPipeline } from '../pipeline/billing-pipeline.ts';
import { EntryTracing } from '../pipeline/entry-tracing.ts';
import { ErpPoster } from '../pipeline/erp-poster.ts';
import { InvoiceStatusPoller, Invoicing } from '../pipeline/invoicing.ts';
import { PostingSlaMonitor } from '../pipeline/posting-sla.ts';
import { NatsRelay } from '../pipeline/nats-relay.ts';
import { ProjectActors } from '../pipeline/project-actor.ts';
import { REFERENCE_KINDS, loadReferenceView } from '../pipeline/reference-store.ts';
import { openLedger } from '../pipeline/state/orm.ts';
import { RECORD_KINDS } from '../pipeline/model/types.ts';
import type { BillstreamConfig } from './config.ts';
import { PartitionedIntake, ROUTED_KINDS } from './cluster.ts';
import { hasWebhookSecrets, startConnectorHost } from './connector-host.ts';
import { buildOpsServer } from './http/ops-server.ts';
import { BillstreamMetrics, jetStreamConsumerStats } from './metrics.ts';
import { telemetryFor, type Telemetry } from './telemetry.ts';

export interface RuntimeOptions {
  /** Start the ops HTTP server. @default true */
  http?: boolean;
  log?: (line: string) => void;
  /** The OpenTelemetry SDK to trace with. @default the process's, from OTEL_EXPORTER_OTLP_ENDPOINT (none when unset) */
  telemetry?: Telemetry;
}

export interface Runtime {
  config: BillstreamConfig;
  nc: NatsConnection;
  js: JetStreamClient;
  orm: MikroORM;
  pipeline: BillingPipeline;
  poster: ErpPoster;
  relay: NatsRelay;
  erp: ErpClient;
  metrics: BillstreamMetrics;
  invoicing: Invoicing;
  invoicePoller: InvoiceStatusPoller;
  postingSla: PostingSlaMonitor;
  telemetry: Telemetry;
  /** The entries' tracing (ingest publishers outside the runtime, such as the demo's, start their spans with it). */
  tracing: EntryTracing;
  /** Cluster mode's partition intake (null on a single instance). */
  intake: PartitionedIntake | null;
  http: FastifyInstance | null;
  /** Where the ops server listens, e.g. http://127.0.0.1:8080. */
  httpUrl: string | null;
  /** Settles with the error that stopped the pipeline, if one ever does (`billstream start` then exits non-zero). */
  failed: Promise<unknown>;
  stop(): Promise<void>;
}

export async function startRuntime(config: BillstreamConfig, options: RuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? ((line: string) => console.error(line));
  const telemetry = options.telemetry ?? telemetryFor(config);
  const tracing = new EntryTracing(telemetry.tracer);
  const nc = await connectNats({ url: config.NATS_URL });
  const jsm = await jetstreamManager(nc);
  await ensureTopology(jsm, RECORD_KINDS, { maxAckPending: config.BILLSTREAM_MAX_ACK_PENDING, ackWaitMs: config.BILLSTREAM_ACK_WAIT_SECONDS * 1000, onWarning: log });
  const js = jetstream(nc);

  let failedWith: (err: unknown) => void = () => undefined;
  const failed = new Promise<unknown>((resolve) => { failedWith = resolve; });
  const orm = await openLedger({ databaseUrl: config.DATABASE_URL, poolSize: config.BILLSTREAM_MAX_CONCURRENT_BATCHES + 8 });
  const view = await loadReferenceView(orm.em.fork());
  // `actors` is read only at scrape time, long after it exists.
  const metrics = new BillstreamMetrics({ orm, activeActors: () => actors.activeActors(), consumers: () => jetStreamConsumerStats(jsm, [STREAMS.ingest]) });

  const erp = new ErpClient({
    baseUrl: config.ERP_BASE_URL, clientId: config.ERP_CLIENT_ID, clientSecret: config.ERP_CLIENT_SECRET, batchSize: config.ERP_BATCH_SIZE,
  }, { onRequest: (event) => metrics.observeErpRequest(event) });
  await erp.start();

  const relay = new NatsRelay(orm, async (messages) => {
    metrics.observeRelayed(messages);
    const acks = await publishAll(nc, messages);
    metrics.observeRelayAcked(acks.length);
    return acks;
  }, { maxQueuedMessages: config.NATS_RELAY_MAX_QUEUED, onError: (err) => log(`nats relay: ${describe(err)}`) });
  const cloudErp = { postTransactions: (transactions: Record<string, unknown>[], key: string) => erp.postTransactions(transactions as unknown as ErpTransaction[], key) };
  // LEGACY_ERP_DIR: lines the routing rules (KV routing.erp) give the legacy ERP become batch files there; the rest go on to the cloud ERP.
  const legacyErp = config.LEGACY_ERP_DIR
    ? await startLegacyErpRouting({ directory: config.LEGACY_ERP_DIR }, { nats: nc, cloud: cloudErp, regionOf: (line) => view.project(String(line.projectId))?.region, log })
    : null;
  const poster = new ErpPoster(
    orm,
    legacyErp?.port ?? cloudErp,
    (err) => (isErpRejected(err) ? err.errors.map((e) => ({ externalId: e.externalId ?? '', code: e.code, message: e.message })) : null),
    { batchSize: config.ERP_BATCH_SIZE, leaseMs: config.ERP_POST_LEASE_SECONDS * 1000, concurrency: config.ERP_POST_CONCURRENCY, maxPending: config.ERP_MAX_PENDING, onPosted: (lines, announcements) => { metrics.observePosted(lines.length); relay.publishCommitted(announcements); }, onError: (err) => log(`erp poster: ${describe(err)}`), tracing },
  );
  const actors = new ProjectActors(orm, { referenceGraceMs: config.REFERENCE_GRACE_SECONDS * 1000, tracing, erpLeaseMs: config.ERP_POST_LEASE_SECONDS * 1000 });
  const pipeline = new BillingPipeline(orm, view, actors, {
    referenceGraceMs: config.REFERENCE_GRACE_SECONDS * 1000,
    batching: {
      maxCount: config.BILLSTREAM_BATCH_MAX_ENTRIES, maxBytes: config.BILLSTREAM_BATCH_MAX_BYTES, maxWaitMs: config.BILLSTREAM_BATCH_MAX_WAIT_MS,
      regions: config.BILLSTREAM_REGION_BATCHING,
    },
    maxConcurrentBatches: config.BILLSTREAM_MAX_CONCURRENT_BATCHES,
    lanesPerRegion: config.BILLSTREAM_LANES_PER_REGION,
    maxTurnEntries: config.BILLSTREAM_TURN_MAX_ENTRIES,
    onOutbox: (erpRows, enriched) => { poster.submit(erpRows); for (const batch of enriched) relay.publishCommitted(batch); relay.wake(); },
    admit: async () => { await Promise.all([poster.admit(), relay.admit()]); },
    onTurn: (result) => metrics.observeTurn(result),
    onError: (err, context) => log(`pipeline (${context}): ${describe(err)}`),
    onFailed: (err) => failedWith(err),
    tracing,
  });

  // Each consumer's unsettled messages stay within their count and bytes, however deep the backlog.
  const inFlight = () => new InFlightBudget({ maxMessages: config.BILLSTREAM_MAX_ACK_PENDING, maxBytes: config.BILLSTREAM_MAX_IN_FLIGHT_BYTES });
  const restartLog = (durable: string) => (err: unknown) => log(`consumer ${durable} starts again: ${describe(err)}`);
  const source = (kind: string, durable = ingestConsumerName(kind)) =>
    jetStreamSource(js, { stream: STREAMS.ingest, durable, inFlight: inFlight(), onRestart: restartLog(durable) }).pipe(map(fromJsMsg));
  const topology = { maxAckPending: config.BILLSTREAM_MAX_ACK_PENDING, ackWaitMs: config.BILLSTREAM_ACK_WAIT_SECONDS * 1000 };
  let intake: PartitionedIntake | null = null;
  if (config.BILLSTREAM_PARTITIONS > 0) {
    // Cluster mode: every instance keeps its own reference view (its own durable
    // reference consumers, removed by the server an hour after the instance is
    // gone); time and milestones come only from the partitions this instance owns.
    const instanceId = config.BILLSTREAM_INSTANCE_ID;
    for (const kind of REFERENCE_KINDS) {
      await ensureConsumer(jsm, STREAMS.ingest, ingestConsumerName(kind, instanceId), `ingest.${kind}.>`, { ...topology, inactiveThresholdMs: 3_600_000 });
    }
    const leases = await LeaseStore.open(nc, { ttlMs: config.BILLSTREAM_LEASE_TTL_SECONDS * 1000 });
    intake = new PartitionedIntake(js, jsm, leases, { instanceId, partitions: config.BILLSTREAM_PARTITIONS, topology, inFlight, log });
    pipeline.ownsProject = (projectId) => intake?.ownsProject(projectId) ?? false;
    pipeline.run({
      reference: merge(...REFERENCE_KINDS.map((kind) => source(kind, ingestConsumerName(kind, instanceId)))),
      time: intake.time$,
      milestone: intake.milestone$,
    });
    await intake.start();
  } else {
    // What a killed predecessor held unacked comes again before anything newer,
    // not after the ack wait: a project's revision 2 must not overtake its revision 1.
    for (const kind of ROUTED_KINDS) {
      const durable = ingestConsumerName(kind);
      const { rewoundTo } = await ensureConsumerFromAckFloor(jsm, STREAMS.ingest, durable, `ingest.${kind}.>`, topology);
      if (rewoundTo !== null) log(`consumer ${durable} resumes from sequence ${rewoundTo}, the ack floor it was left at`);
    }
    pipeline.run({
      reference: merge(...REFERENCE_KINDS.map((kind) => source(kind))),
      time: source('time'),
      milestone: source('milestone'),
    });
  }
  relay.start();
  poster.start();

  const invoicing = new Invoicing(orm, erp, { tracing, onQueued: () => relay.wake() });
  const invoicePoller = new InvoiceStatusPoller(orm, erp, {
    intervalMs: config.INVOICE_POLL_SECONDS * 1000, onChange: () => relay.wake(), onError: (err) => log(`invoice poller: ${describe(err)}`),
  });
  const postingSla = new PostingSlaMonitor(orm, {
    slaMs: config.POSTING_SLA_MINUTES * 60_000, intervalMs: config.POSTING_SLA_CHECK_SECONDS * 1000,
    onChange: (result) => { metrics.observeSlaTransitions(result.raised, result.cleared); relay.wake(); },
    onError: (err) => log(`posting SLA: ${describe(err)}`),
  });
  invoicePoller.start();
  postingSla.start();

  let http: FastifyInstance | null = null;
  let httpUrl: string | null = null;
  // POST /v1/webhooks/{source} of the time-capture sources, when a WEBHOOK_SECRET_<SOURCE> is set.
  const connectorHost = options.http !== false && hasWebhookSecrets(config) ? await startConnectorHost({ nc, log, env: config }) : null;
  if (options.http !== false) {
    http = await buildOpsServer({
      orm,
      publishIngest: async (_kind, record, subject, msgId) => {
        // Each record is its own trace: this `ingest` span is the root the pipeline's spans hang under.
        const span = tracing.startIngest(subject, record);
        try {
          await publishMessage(js, { subject, msgId, payload: record, headers: span.headers });
          span.end();
        } catch (err) {
          span.end(err);
          throw err;
        }
      },
      regionFor: (_kind, record) => {
        const projectId = typeof record.projectId === 'string' ? record.projectId : '';
        return view.project(projectId)?.region ?? 'global';
      },
      readiness: async () => {
        const checks = { nats: natsHealth(nc).ok, postgres: await orm.isConnected(), consumers: await consumersReady(jsm) };
        return { ready: Object.values(checks).every(Boolean), checks };
      },
      ingestToken: config.INGEST_TOKEN,
      opsToken: config.OPS_TOKEN,
      metricsText: () => metrics.text(),
      onIngested: (kind, accepted, rejected) => metrics.observeIngest(kind, accepted, rejected),
      reevaluate: (entryId, revision) => pipeline.reevaluate(entryId, revision),
      onRequeued: () => poster.wake(),
      closeBillingPeriod: (periodEnd) => invoicing.close(periodEnd),
      ...(connectorHost ? { webhooks: connectorHost.webhooks } : {}),
    });
    const address = await http.listen({ port: config.HTTP_PORT, host: config.HTTP_HOST });
    httpUrl = address.replace('0.0.0.0', '127.0.0.1');
  }

  let stopped = false;
  return {
    config, nc, js, orm, pipeline, poster, relay, erp, metrics, invoicing, invoicePoller, postingSla, telemetry, tracing, intake, http, httpUrl, failed,
    async stop() {
      if (stopped) return;
      stopped = true;
      await http?.close();
      await invoicePoller.stop();
      await postingSla.stop();
      // Hand partitions over first (stop consuming, let their turns commit), then stop the pipeline.
      await intake?.stop();
      await pipeline.stop();
      await poster.stop();
      await relay.relayOnce().catch(() => 0);
      await relay.stop();
      await erp.stop();
      await legacyErp?.stop();
      await connectorHost?.stop();
      await nc.drain().catch(() => undefined);
      await orm.close();
      // The last turns' and posts' spans leave now (the SDK itself lives as long as the process).
      await telemetry.forceFlush().catch(() => undefined);
    },
  };
}

async function consumersReady(jsm: Awaited<ReturnType<typeof jetstreamManager>>): Promise<boolean> {
  try {
    for (const kind of RECORD_KINDS) await jsm.consumers.info(STREAMS.ingest, ingestConsumerName(kind));
    return true;
  } catch {
    return false;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
