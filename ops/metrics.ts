// billstream's Prometheus metrics (`GET /metrics`), one private registry per
// runtime. Two kinds of series:
//   - counters fed as things happen: messages in and out of each stage (HTTP
//     ingest, the project actors, the ERP poster, the NATS relay), actor
//     outcomes, ERP requests with their latency and status;
//   - gauges read at scrape time from where the truth is: JetStream consumer
//     info (pending, ack-pending, redelivered per consumer), the ledger (outbox
//     depth and age, exceptions, the posting-SLA alerts, invoices, and the KPI
//     gauges of GET /v1/kpis), and the actors in memory.
// Scrape-time reads run once per scrape, before the registry renders, so every
// gauge of one scrape comes from the same moment; the KPIs, the costliest read,
// are cached briefly so a tight scrape interval cannot load the database.
import type { JetStreamManager } from '@nats-io/jetstream';
import type { MikroORM } from '@mikro-orm/postgresql';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ErpRequestEvent } from '../connectors/erp/erp-client.ts';
import type { TurnResult } from '../pipeline/project-actor.ts';
import { readKpis, type Kpis } from './http/kpis-route.ts';

export interface ConsumerStat {
  stream: string;
  consumer: string;
  /** Messages in the stream not yet delivered to the consumer. */
  pending: number;
  /** Delivered, not yet acked. */
  ackPending: number;
  redelivered: number;
}

export interface MetricsSources {
  orm: MikroORM;
  /** Project actors with a turn in the last minute. */
  activeActors(): number;
  /** JetStream consumer info, read at scrape time. */
  consumers(): Promise<ConsumerStat[]>;
}

export interface MetricsOptions {
  /** How long a KPI read serves scrapes. @default 10 s */
  kpiCacheMs?: number;
  /** Include the Node.js process metrics. @default true */
  processMetrics?: boolean;
}

/** Stages whose messages are counted in and out. */
export const STAGES = { ingestHttp: 'ingest_http', actor: 'actor', erp: 'erp', relay: 'relay' } as const;

const PREFIX = 'billstream_';

/** `enriched.time.amer.p-1` → `enriched`: a label of bounded cardinality. */
function familyOf(subject: string): string {
  const dot = subject.indexOf('.');
  return dot === -1 ? subject : subject.slice(0, dot);
}

function erpOutcome(status: number | null): string {
  if (status === null) return 'network_error';
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'server_error';
  if (status >= 400) return 'client_error';
  return 'ok';
}

/** Reads pending and ack-pending of every consumer on the given streams. */
export async function jetStreamConsumerStats(jsm: JetStreamManager, streams: readonly string[]): Promise<ConsumerStat[]> {
  const stats: ConsumerStat[] = [];
  for (const stream of streams) {
    for await (const info of jsm.consumers.list(stream)) {
      stats.push({ stream, consumer: info.name, pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered });
    }
  }
  return stats;
}

export class BillstreamMetrics {
  readonly registry = new Registry();
  readonly #sources: MetricsSources;
  readonly #kpiCacheMs: number;
  #kpis: { at: number; value: Kpis } | null = null;

  readonly #stageMessages = new Counter({ name: `${PREFIX}stage_messages_total`, help: 'Messages into and out of each pipeline stage', labelNames: ['stage', 'direction'] as const, registers: [this.registry] });
  readonly #outcomes = new Counter({ name: `${PREFIX}actor_outcomes_total`, help: 'What project actor turns decided, by outcome', labelNames: ['outcome'] as const, registers: [this.registry] });
  readonly #ingestRecords = new Counter({ name: `${PREFIX}ingest_http_records_total`, help: 'Records received by POST /v1/ingest, by kind and result', labelNames: ['kind', 'result'] as const, registers: [this.registry] });
  readonly #published = new Counter({ name: `${PREFIX}nats_published_total`, help: 'Messages the NATS relay published, by subject family', labelNames: ['family'] as const, registers: [this.registry] });
  readonly #erpDuration = new Histogram({
    name: `${PREFIX}erp_request_duration_seconds`, help: 'ERP HTTP request latency, each attempt on its own', labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry],
  });
  readonly #erpRequests = new Counter({
    name: `${PREFIX}erp_requests_total`, help: 'ERP HTTP requests by route, status and outcome (ok, client_error, rate_limited, server_error, network_error); error rate = non-ok / all',
    labelNames: ['method', 'route', 'status', 'outcome'] as const, registers: [this.registry],
  });
  readonly #slaTransitions = new Counter({ name: `${PREFIX}posting_sla_alerts_total`, help: 'Posting-SLA alerts raised and cleared by this instance', labelNames: ['region', 'transition'] as const, registers: [this.registry] });
  readonly #scrapeErrors = new Counter({ name: `${PREFIX}metrics_scrape_errors_total`, help: 'Scrape-time reads that failed (the gauges they feed keep their last value)', labelNames: ['source'] as const, registers: [this.registry] });

  readonly #consumerPending = new Gauge({ name: `${PREFIX}consumer_pending`, help: 'Messages not yet delivered to a JetStream consumer', labelNames: ['stream', 'consumer'] as const, registers: [this.registry] });
  readonly #consumerAckPending = new Gauge({ name: `${PREFIX}consumer_ack_pending`, help: 'Messages delivered to a JetStream consumer and not yet acked', labelNames: ['stream', 'consumer'] as const, registers: [this.registry] });
  readonly #consumerRedelivered = new Gauge({ name: `${PREFIX}consumer_redelivered`, help: 'Messages a JetStream consumer has redelivered and not yet had acked', labelNames: ['stream', 'consumer'] as const, registers: [this.registry] });
  readonly #outboxDepth = new Gauge({ name: `${PREFIX}outbox_depth`, help: 'Rows waiting in an outbox (erp: pending documents; nats: messages to relay)', labelNames: ['outbox'] as const, registers: [this.registry] });
  readonly #outboxAge = new Gauge({ name: `${PREFIX}outbox_oldest_age_seconds`, help: 'Age of the oldest row waiting in an outbox (0 when empty)', labelNames: ['outbox'] as const, registers: [this.registry] });
  readonly #actorsActive = new Gauge({ name: `${PREFIX}actors_active`, help: 'Project actors with a turn in the last minute', registers: [this.registry] });
  readonly #exceptions = new Gauge({ name: `${PREFIX}exceptions`, help: 'Exceptions in the ledger by code and status', labelNames: ['code', 'status'] as const, registers: [this.registry] });
  readonly #invoices = new Gauge({ name: `${PREFIX}invoices`, help: 'Invoices by status', labelNames: ['status'] as const, registers: [this.registry] });
  readonly #slaBreached = new Gauge({ name: `${PREFIX}posting_sla_breached`, help: '1 while a region has approved time not posted within POSTING_SLA_MINUTES', labelNames: ['region'] as const, registers: [this.registry] });
  readonly #slaOverdue = new Gauge({ name: `${PREFIX}posting_sla_overdue_entries`, help: 'Approved entries past the posting SLA, by region', labelNames: ['region'] as const, registers: [this.registry] });
  readonly #cycleTime = new Gauge({ name: `${PREFIX}posting_cycle_seconds`, help: 'Approval-to-posting cycle time by region and quantile (0.5, 0.95)', labelNames: ['region', 'quantile'] as const, registers: [this.registry] });
  readonly #unbilledHours = new Gauge({ name: `${PREFIX}unbilled_approved_hours`, help: 'Approved hours on no invoice yet, by days since approval', labelNames: ['age'] as const, registers: [this.registry] });
  readonly #exceptionsOpen = new Gauge({ name: `${PREFIX}exceptions_open`, help: 'Open exceptions by code', labelNames: ['code'] as const, registers: [this.registry] });
  readonly #entriesPerSecond = new Gauge({ name: `${PREFIX}entries_per_second`, help: 'Entry revisions decided per second over the last minute', registers: [this.registry] });

  constructor(sources: MetricsSources, options: MetricsOptions = {}) {
    this.#sources = sources;
    this.#kpiCacheMs = options.kpiCacheMs ?? 10_000;
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** An actor turn committed. */
  observeTurn(result: TurnResult): void {
    const c = result.counts;
    const decided = c.charged + c.nonBillable + c.notChargeable + c.held + c.waiting + c.exceptions + c.duplicates + c.stale + c.milestones + c.deferred;
    this.#stageMessages.inc({ stage: STAGES.actor, direction: 'in' }, decided);
    this.#stageMessages.inc({ stage: STAGES.actor, direction: 'out' }, result.outboxRows);
    this.#stageMessages.inc({ stage: STAGES.erp, direction: 'in' }, result.outboxRows);
    const outcomes: Record<string, number> = {
      charged: c.charged, reversed: c.reversed, non_billable: c.nonBillable, not_chargeable: c.notChargeable, held: c.held, waiting: c.waiting,
      exception: c.exceptions, duplicate: c.duplicates, stale: c.stale, milestone: c.milestones, deferred: c.deferred,
    };
    for (const [outcome, n] of Object.entries(outcomes)) if (n > 0) this.#outcomes.inc({ outcome }, n);
  }

  observeIngest(kind: string, accepted: number, rejected: number): void {
    this.#stageMessages.inc({ stage: STAGES.ingestHttp, direction: 'in' }, accepted + rejected);
    this.#stageMessages.inc({ stage: STAGES.ingestHttp, direction: 'out' }, accepted);
    if (accepted > 0) this.#ingestRecords.inc({ kind, result: 'accepted' }, accepted);
    if (rejected > 0) this.#ingestRecords.inc({ kind, result: 'rejected' }, rejected);
  }

  /** The ERP poster settled documents as posted. */
  observePosted(documents: number): void {
    this.#stageMessages.inc({ stage: STAGES.erp, direction: 'out' }, documents);
  }

  /** The NATS relay is about to publish these messages. */
  observeRelayed(messages: readonly { subject: string }[]): void {
    this.#stageMessages.inc({ stage: STAGES.relay, direction: 'in' }, messages.length);
    const byFamily = new Map<string, number>();
    for (const m of messages) {
      const family = familyOf(m.subject);
      byFamily.set(family, (byFamily.get(family) ?? 0) + 1);
    }
    for (const [family, n] of byFamily) this.#published.inc({ family }, n);
  }

  /** The NATS relay's publish of a batch was acked. */
  observeRelayAcked(count: number): void {
    this.#stageMessages.inc({ stage: STAGES.relay, direction: 'out' }, count);
  }

  /** Wire to ErpClient's `onRequest`. */
  observeErpRequest(event: ErpRequestEvent): void {
    const status = event.status === null ? 'none' : String(event.status);
    this.#erpDuration.observe({ method: event.method, route: event.route, status }, event.durationMs / 1000);
    this.#erpRequests.inc({ method: event.method, route: event.route, status, outcome: erpOutcome(event.status) });
  }

  observeSlaTransitions(raised: readonly string[], cleared: readonly string[]): void {
    for (const region of raised) this.#slaTransitions.inc({ region, transition: 'raised' });
    for (const region of cleared) this.#slaTransitions.inc({ region, transition: 'cleared' });
  }

  /** The Prometheus text exposition, after refreshing the scrape-time gauges. */
  async text(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  /** Reads every scrape-time source; one that fails is counted and leaves its gauges as they were. */
  async refresh(): Promise<void> {
    this.#actorsActive.set(this.#sources.activeActors());
    await Promise.all([
      this.#guard('jetstream', () => this.#readConsumers()),
      this.#guard('ledger', () => this.#readLedger()),
      this.#guard('kpis', () => this.#readKpis()),
    ]);
  }

  async #guard(source: string, read: () => Promise<void>): Promise<void> {
    try {
      await read();
    } catch {
      this.#scrapeErrors.inc({ source });
    }
  }

  async #readConsumers(): Promise<void> {
    const stats = await this.#sources.consumers();
    this.#consumerPending.reset();
    this.#consumerAckPending.reset();
    this.#consumerRedelivered.reset();
    for (const s of stats) {
      const labels = { stream: s.stream, consumer: s.consumer };
      this.#consumerPending.set(labels, s.pending);
      this.#consumerAckPending.set(labels, s.ackPending);
      this.#consumerRedelivered.set(labels, s.redelivered);
    }
  }

  async #readLedger(): Promise<void> {
    const em = this.#sources.orm.em.fork();
    const [outboxes, exceptions, invoices, alerts] = await Promise.all([
      em.execute<{ outbox: string; n: number; age: number | null }[]>(
        `select 'erp' as outbox, count(*)::int as n, extract(epoch from now() - min(o.created_at))::float8 as age from erp_pending p join erp_outbox o on o.id = p.id
         union all
         select 'nats', coalesce(sum(message_count), 0)::int, extract(epoch from now() - min(created_at))::float8 from nats_outbox_batch`),
      em.execute<{ code: string; status: string; n: number }[]>(`select code, status, count(*)::int as n from billing_exception group by code, status`),
      em.execute<{ status: string; n: number }[]>(`select status, count(*)::int as n from invoice group by status`),
      // The latest alert of every region that ever had one: a cleared region reads 0, not absent.
      em.execute<{ region: string; status: string; overdue_entries: number }[]>(
        `select distinct on (region) region, status, overdue_entries from posting_sla_alert order by region, id desc`),
    ]);
    for (const o of outboxes) {
      this.#outboxDepth.set({ outbox: o.outbox }, o.n);
      this.#outboxAge.set({ outbox: o.outbox }, o.age ?? 0);
    }
    this.#exceptions.reset();
    for (const e of exceptions) this.#exceptions.set({ code: e.code, status: e.status }, e.n);
    this.#invoices.reset();
    for (const i of invoices) this.#invoices.set({ status: i.status }, i.n);
    for (const a of alerts) {
      const firing = a.status === 'firing';
      this.#slaBreached.set({ region: a.region }, firing ? 1 : 0);
      this.#slaOverdue.set({ region: a.region }, firing ? a.overdue_entries : 0);
    }
  }

  async #readKpis(): Promise<void> {
    const now = Date.now();
    if (this.#kpis !== null && now - this.#kpis.at < this.#kpiCacheMs) return;
    const kpis = await readKpis(this.#sources.orm);
    this.#kpis = { at: now, value: kpis };
    this.#cycleTime.reset();
    for (const r of kpis.postingCycleTime) {
      this.#cycleTime.set({ region: r.region, quantile: '0.5' }, r.p50Seconds);
      this.#cycleTime.set({ region: r.region, quantile: '0.95' }, r.p95Seconds);
    }
    for (const b of kpis.unbilledApprovedHours.buckets) this.#unbilledHours.set({ age: b.bucket }, Number(b.hours));
    for (const [code, n] of Object.entries(kpis.exceptionsOpen.byCode)) this.#exceptionsOpen.set({ code }, n);
    this.#entriesPerSecond.set(kpis.throughput.entriesPerSecond);
  }
}
