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
import { jetStreamSource } from '../connectors/nats/jetstream-source.ts';
import { publishAll, publishMessage } from '../connectors/nats/publish.ts';
import { STREAMS, ensureConsumer, ensureTopology, ingestConsumerName } from '../connectors/nats/topology.ts';
import { LeaseStore } from '../connectors/nats/lease-store.ts';
import { BillingPipeline } from '../pipeline/billing-pipeline.ts';
import { ErpPoster } from '../pipeline/erp-poster.ts';
import { NatsRelay } from '../pipeline/nats-relay.ts';
import { ProjectActors } from '../pipeline/project-actor.ts';
import { REFERENCE_KINDS, loadReferenceView } from '../pipeline/reference-store.ts';
import { openLedger } from '../pipeline/state/orm.ts';
import { RECORD_KINDS } from '../pipeline/model/types.ts';
import type { BillstreamConfig } from './config.ts';
import { PartitionedIntake } from './cluster.ts';
import { buildOpsServer } from './http/ops-server.ts';

export interface RuntimeOptions {
  /** Start the ops HTTP server. @default true */
  http?: boolean;
  log?: (line: string) => void;
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
  /** Cluster mode's partition intake (null on a single instance). */
  intake: PartitionedIntake | null;
  http: FastifyInstance | null;
  /** Where the ops server listens, e.g. http://127.0.0.1:8080. */
  httpUrl: string | null;
  stop(): Promise<void>;
}

export async function startRuntime(config: BillstreamConfig, options: RuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? ((line: string) => console.error(line));
  const nc = await connectNats({ url: config.NATS_URL });
  const jsm = await jetstreamManager(nc);
  await ensureTopology(jsm, RECORD_KINDS, { maxAckPending: config.BILLSTREAM_MAX_ACK_PENDING, ackWaitMs: config.BILLSTREAM_ACK_WAIT_SECONDS * 1000 });
  const js = jetstream(nc);

  const orm = await openLedger({ databaseUrl: config.DATABASE_URL, poolSize: config.BILLSTREAM_MAX_CONCURRENT_PROJECTS + 6 });
  const view = await loadReferenceView(orm.em.fork());

  const erp = new ErpClient({
    baseUrl: config.ERP_BASE_URL, clientId: config.ERP_CLIENT_ID, clientSecret: config.ERP_CLIENT_SECRET, batchSize: config.ERP_BATCH_SIZE,
  });
  await erp.start();

  const relay = new NatsRelay(orm, (messages) => publishAll(js, messages), { onError: (err) => log(`nats relay: ${describe(err)}`) });
  const poster = new ErpPoster(
    orm,
    { postTransactions: (transactions, key) => erp.postTransactions(transactions as unknown as ErpTransaction[], key) },
    (err) => (isErpRejected(err) ? err.errors.map((e) => ({ externalId: e.externalId ?? '', code: e.code, message: e.message })) : null),
    { batchSize: config.ERP_BATCH_SIZE, leaseMs: config.ERP_POST_LEASE_SECONDS * 1000, onPosted: () => relay.wake(), onError: (err) => log(`erp poster: ${describe(err)}`) },
  );
  const actors = new ProjectActors(orm, { referenceGraceMs: config.REFERENCE_GRACE_SECONDS * 1000 });
  const pipeline = new BillingPipeline(orm, view, actors, {
    referenceGraceMs: config.REFERENCE_GRACE_SECONDS * 1000,
    maxConcurrentProjects: config.BILLSTREAM_MAX_CONCURRENT_PROJECTS,
    onOutbox: () => { poster.wake(); relay.wake(); },
    onError: (err, context) => log(`pipeline (${context}): ${describe(err)}`),
  });

  const source = (kind: string) => jetStreamSource(js, { stream: STREAMS.ingest, durable: ingestConsumerName(kind) }).pipe(map(fromJsMsg));
  let intake: PartitionedIntake | null = null;
  if (config.BILLSTREAM_PARTITIONS > 0) {
    // Cluster mode: every instance keeps its own reference view (its own durable
    // reference consumers, removed by the server an hour after the instance is
    // gone); time and milestones come only from the partitions this instance owns.
    const instanceId = config.BILLSTREAM_INSTANCE_ID;
    const topology = { maxAckPending: config.BILLSTREAM_MAX_ACK_PENDING, ackWaitMs: config.BILLSTREAM_ACK_WAIT_SECONDS * 1000 };
    for (const kind of REFERENCE_KINDS) {
      await ensureConsumer(jsm, STREAMS.ingest, ingestConsumerName(kind, instanceId), `ingest.${kind}.>`, { ...topology, inactiveThresholdMs: 3_600_000 });
    }
    const leases = await LeaseStore.open(nc, { ttlMs: config.BILLSTREAM_LEASE_TTL_SECONDS * 1000 });
    intake = new PartitionedIntake(js, jsm, leases, { instanceId, partitions: config.BILLSTREAM_PARTITIONS, topology, log });
    pipeline.ownsProject = (projectId) => intake?.ownsProject(projectId) ?? false;
    pipeline.run({
      reference: merge(...REFERENCE_KINDS.map((kind) => jetStreamSource(js, { stream: STREAMS.ingest, durable: ingestConsumerName(kind, instanceId) }).pipe(map(fromJsMsg)))),
      time: intake.time$,
      milestone: intake.milestone$,
    });
    await intake.start();
  } else {
    pipeline.run({
      reference: merge(...REFERENCE_KINDS.map(source)),
      time: source('time'),
      milestone: source('milestone'),
    });
  }
  relay.start();
  poster.start();

  let http: FastifyInstance | null = null;
  let httpUrl: string | null = null;
  if (options.http !== false) {
    http = await buildOpsServer({
      orm,
      publishIngest: async (_kind, record, subject, msgId) => { await publishMessage(js, { subject, msgId, payload: record }); },
      regionFor: (_kind, record) => {
        const projectId = typeof record.projectId === 'string' ? record.projectId : '';
        return view.project(projectId)?.region ?? 'global';
      },
      readiness: async () => {
        const checks = { nats: natsHealth(nc).ok, postgres: await orm.isConnected(), consumers: await consumersReady(jsm) };
        return { ready: Object.values(checks).every(Boolean), checks };
      },
      ingestToken: config.INGEST_TOKEN,
    });
    const address = await http.listen({ port: config.HTTP_PORT, host: config.HTTP_HOST });
    httpUrl = address.replace('0.0.0.0', '127.0.0.1');
  }

  let stopped = false;
  return {
    config, nc, js, orm, pipeline, poster, relay, erp, intake, http, httpUrl,
    async stop() {
      if (stopped) return;
      stopped = true;
      await http?.close();
      // Hand partitions over first (stop consuming, let their turns commit), then stop the pipeline.
      await intake?.stop();
      await pipeline.stop();
      await poster.stop();
      await relay.relayOnce().catch(() => 0);
      await relay.stop();
      await erp.stop();
      await nc.drain().catch(() => undefined);
      await orm.close();
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
