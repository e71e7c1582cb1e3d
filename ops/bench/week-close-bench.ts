// `billstream bench weekclose`: a week close measured three ways on the same
// nats-server, PostgreSQL and ERP sandbox, in one run:
//
//   1. the broker's limit — a bare consumer that fetches, re-publishes each
//      message once to another stream and acks it, doing nothing else;
//   2. a naive pipeline — the same stages (decode, validate, dedupe, enrich,
//      decide against the project's totals and cap, reverse, post, announce),
//      each project's entries in arrival order, but one entry at a time: one
//      ORM flush, one ERP call and each announcement's publish per entry;
//   3. billstream — `billstream start` as its own process draining the backlog,
//      its peak RSS sampled from /proc; then p50/p99 latency from ingest to ERP
//      posting with entries offered at half of the rate it just reached.
//
// Figures are ratios against baselines measured in the same run, never absolute
// promises: the machine (two cores shared by all three servers) sets the scale.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { SANDBOX_APPLICATION_NAME } from '../../connectors/erp/sandbox-books.ts';
import { NATS_CLIENT_SETTINGS } from '../../connectors/nats/connection.ts';
import { STREAMS, ensureTopology, ingestConsumerName } from '../../connectors/nats/topology.ts';
import { RECORD_KINDS, type TimeRecord } from '../../pipeline/model/types.ts';
import type { ReferenceItem } from '../../pipeline/reference-store.ts';
import { LEDGER_APPLICATION_NAME } from '../../pipeline/state/orm.ts';
import { startNodeEnv, startNodeFlags } from '../commands/start.ts';
import { republishOnceInWorker } from './broker-limit.ts';
import { runNaivePipelineInWorker } from './naive-pipeline.ts';
import { CpuTracker, POSTGRES_SESSIONS, postgresClientOf, threadCpuSeconds, threadSchedule, type CpuGroups, type PostgresSession } from './cpu-usage.ts';
import { offerLoad, type OfferedMessage } from './offered-load.ts';
import { generateWeekClose, messagePayload, type IngestMessage, type WeekClose } from '../demo/week-close.ts';
import { publishBounded } from '../demo/publishing.ts';
import { dropDatabase, ensureNats, ensurePostgres, recreateDatabase, withDatabase, type EmbeddedService } from '../embedded/services.ts';

type Log = (line: string) => void;

export interface WeekCloseBenchOptions {
  /** Time entries in the week. @default 1,000,000 */
  entries: number;
  /** Entries the naive pipeline processes (its rate is steady; the whole week would take hours). @default 10,000 */
  naiveEntries: number;
  /** Seconds of half-load for the latency measurement. @default 20 */
  latencySeconds: number;
  regions: string[];
  seed: number;
}

export interface WeekCloseBenchResult {
  entries: number;
  /** `cpuSeconds`: what nats-server and the bench (the bare consumer) spent republishing. */
  brokerLimit: { messages: number; seconds: number; perSecond: number; cpuSeconds: CpuGroups };
  naive: { entries: number; seconds: number; perSecond: number };
  billstream: {
    entries: number; seconds: number; perSecond: number; peakRssMiB: number; cpuSeconds: CpuGroups;
    /** `cpuSeconds.postgres` by whom the server worked for: billstream's sessions, the ERP sandbox's, its own background processes, the bench's probes. */
    postgresCpuSeconds: CpuGroups;
    /** CPU seconds of billstream's main thread (its JavaScript) while it drained: near `seconds`, that thread is the limit. */
    mainThreadSeconds: number;
    /**
     * Seconds the main thread was ready to run but waited for a CPU while it
     * drained (null where the kernel keeps no schedstat). Busy and waiting
     * together near `seconds`: the thread never waited on the pipeline, only on
     * the machine's cores, which the servers on them share.
     */
    mainThreadWaitingSeconds: number | null;
  };
  ratios: { toBrokerLimit: number; toNaive: number };
  /** `arrivedPerSecond`: the offered entries over the span of their arrival in the stream (offered steadily, close to `offeredPerSecond`). */
  latencyAtHalfLoad: {
    offeredPerSecond: number; arrivedPerSecond: number; entries: number; p50Ms: number; p99Ms: number;
    /** The p99 of each stage: ingest → decided (the turn's commit), decided → queued for the ERP, queued → posted. */
    stagesP99Ms: { decided: number; queued: number; posted: number };
    /** The 2 s of arrival whose entries had the highest p99, counted from the first arrival: a transient shows here. */
    worstSlice: { fromSecond: number; entries: number; p99Ms: number };
  };
  /** The PostgreSQL settings the figures depend on most (read from the server, not set by the bench). */
  postgres: { version: string; sharedBuffers: string; autovacuum: string };
}

interface Services {
  nats: EmbeddedService;
  databaseUrl: string;
  postgres: EmbeddedService;
  /** The ERP sandbox, in a process of its own. */
  sandbox: { url: string; pid: number; close(): Promise<void> };
  nc: NatsConnection;
  js: JetStreamClient;
  storeDir: string;
}

async function startServices(log: Log): Promise<Services> {
  const storeDir = await mkdtemp(join(tmpdir(), 'billstream-bench-'));
  const nats = await ensureNats({ url: '', dataDir: storeDir, log: () => {} });
  const postgres = await ensurePostgres({
    url: process.env.DATABASE_URL ? withDatabase(process.env.DATABASE_URL, 'billstream_bench') : undefined,
    dataDir: resolve(process.env.BILLSTREAM_DATA_DIR ?? '.billstream/bench'), database: 'billstream_bench', log,
  });
  const databaseUrl = withDatabase(postgres.url, 'billstream_bench');
  await recreateDatabase(databaseUrl);
  const sandbox = await startSandboxProcess(databaseUrl);
  // The client settings billstream's own connection has: without them, every
  // js.publish of the naive pipeline built two Errors with stack traces up
  // front, a cost of the client's settings rather than of the naive design.
  const nc = await connect({ servers: nats.url, ...NATS_CLIENT_SETTINGS });
  return { nats, postgres, databaseUrl, sandbox, nc, js: jetstream(nc), storeDir };
}

/**
 * The ERP sandbox in a process of its own. Hosted in the bench process, it
 * shared a heap holding the million generated messages (near 1 GB) and the
 * bench's own work, so whatever held up that process held up the ERP's answers
 * too; its CPU is now counted apart from the bench's.
 */
async function startSandboxProcess(databaseUrl: string): Promise<Services['sandbox']> {
  const child = spawn(process.execPath, ['ops/cli.ts', 'erp-sandbox'], {
    env: { ...process.env, DATABASE_URL: databaseUrl, ERP_SANDBOX_PORT: '0', ERP_SANDBOX_HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await new Promise<string>((resolveUrl, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(text);
      if (match) { child.stderr?.off('data', onData); resolveUrl(match[1] as string); }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the ERP sandbox exited (${code}) before listening: ${text.trim()}`)));
  });
  child.stderr?.resume();
  return {
    url, pid: child.pid ?? 0,
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * A server whose autovacuum is off keeps every dead row version a week close
 * leaves (each posted line's old version, every deleted outbox row), so its
 * figures are not those of a production server; the report says so.
 */
async function postgresSettings(databaseUrl: string): Promise<WeekCloseBenchResult['postgres']> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ version: string; shared_buffers: string; autovacuum: string }>(
      `select current_setting('server_version') as version, current_setting('shared_buffers') as shared_buffers, current_setting('autovacuum') as autovacuum`);
    const row = rows[0] as { version: string; shared_buffers: string; autovacuum: string };
    return { version: row.version, sharedBuffers: row.shared_buffers, autovacuum: row.autovacuum };
  } finally {
    await client.end();
  }
}

async function stopServices(s: Services): Promise<void> {
  await s.nc.close().catch(() => undefined);
  await s.sandbox.close();
  await s.postgres.stop();
  await s.nats.stop();
  await rm(s.storeDir, { recursive: true, force: true });
}

const encoder = new TextEncoder();

/** Publishes with a bounded window of outstanding acks, like a busy producer. */
function publishMessages(js: JetStreamClient, messages: Iterable<{ subject: string; data: Uint8Array; msgId?: string }>): Promise<number> {
  return publishBounded(messages, (m) => js.publish(m.subject, m.data, { msgID: m.msgId, headers: natsHeaders() }), 1024);
}

function* asPublished(messages: readonly IngestMessage[], rewriteId?: (id: string) => string): Generator<{ subject: string; data: Uint8Array; msgId?: string }> {
  for (const m of messages) {
    if (rewriteId && m.record && 'entryId' in m.record) {
      const record = { ...m.record, entryId: rewriteId(m.record.entryId) };
      yield { subject: m.subject, data: encoder.encode(JSON.stringify(record)), msgId: m.msgId ? rewriteId(m.msgId) : undefined };
    } else {
      yield { subject: m.subject, data: encoder.encode(messagePayload(m)), msgId: m.msgId };
    }
  }
}

/** 1. The broker's limit: fetch, re-publish once, ack — nothing else (broker-limit.ts). */
async function measureBrokerLimit(s: Services, messages: readonly IngestMessage[], log: Log): Promise<WeekCloseBenchResult['brokerLimit']> {
  const jsm = await jetstreamManager(s.nc);
  await jsm.streams.add({ name: 'BENCH_SOURCE', subjects: ['bench.source.>'] });
  await jsm.streams.add({ name: 'BENCH_SINK', subjects: ['bench.sink.>'] });
  const time = messages.filter((m) => m.subject.startsWith('ingest.time.'));
  await publishMessages(s.js, time.map((m) => ({ subject: `bench.source.${m.subject}`, data: encoder.encode(messagePayload(m)) })));
  await jsm.consumers.add('BENCH_SOURCE', { durable_name: 'bench', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: 4000 });
  log(`broker limit: ${time.length} messages loaded`);
  // Both processes live through the whole run: a sample at each end counts all they spent.
  const cpu = new CpuTracker((pid) => (pid === s.nats.pid ? 'nats-server' : pid === process.pid ? 'bench' : null));
  // A stored publish's ack took longer than 5 s once, a million-subject stream
  // on the server (that 1M run ended there): the baseline waits up to 30 s
  // for the next ack rather than abandon the measurement. It runs in a worker
  // thread, clear of the bench's heap and its collections (broker-limit.ts).
  const seconds = await republishOnceInWorker(
    { natsUrl: s.nats.url, stream: 'BENCH_SOURCE', durable: 'bench', subjectPrefix: 'bench.sink.', count: time.length, inFlight: 1024, stallMs: 30_000 },
    () => cpu.sample(),
  );
  await cpu.sample();
  await jsm.streams.delete('BENCH_SOURCE');
  await jsm.streams.delete('BENCH_SINK');
  return { messages: time.length, seconds, perSecond: time.length / seconds, cpuSeconds: cpu.spent() };
}

/** 2. A naive pipeline: the same stages, one entry at a time (naive-pipeline.ts), in a worker thread clear of the bench's heap. */
async function measureNaive(s: Services, week: WeekClose, count: number, log: Log): Promise<WeekCloseBenchResult['naive']> {
  const reference: ReferenceItem[] = [
    ...week.consultants.map((record) => ({ kind: 'consultant' as const, record })),
    ...week.projects.map((record) => ({ kind: 'project' as const, record })),
    ...week.assignments.map((record) => ({ kind: 'assignment' as const, record })),
    ...week.ratecards.map((record) => ({ kind: 'ratecard' as const, record })),
  ] as ReferenceItem[];
  // Its own ledger database, so billstream's run after it starts from empty tables.
  const databaseUrl = withDatabase(s.databaseUrl, 'billstream_bench_naive');
  await recreateDatabase(databaseUrl);
  const jsm = await jetstreamManager(s.nc);
  await ensureTopology(jsm, RECORD_KINDS);
  const time = week.messages.filter((m) => m.subject.startsWith('ingest.time.') && m.record).slice(0, count);
  await publishMessages(s.js, asPublished(time, (id) => `naive-${id}`));
  // Redeliveries under the same Nats-Msg-Id never reach the stream: count what did.
  const stored = (await jsm.streams.info(STREAMS.ingest)).state.messages;
  log(`naive: ${stored} entries loaded`);
  const seconds = await runNaivePipelineInWorker({
    natsUrl: s.nats.url, databaseUrl, erpBaseUrl: s.sandbox.url, reference, stream: STREAMS.ingest, durable: ingestConsumerName('time'), count: stored,
  });
  // billstream's run starts from empty streams: its ingest, and the announcements' the naive run published.
  for (const stream of [STREAMS.ingest, STREAMS.enriched, STREAMS.billing, STREAMS.exceptions]) await jsm.streams.delete(stream);
  await dropDatabase(databaseUrl);
  return { entries: stored, seconds, perSecond: stored / seconds };
}

/** How often the drain's CPU is sampled: a process that ends in between loses at most this much of its CPU. */
const CPU_SAMPLE_MS = 2_000;

/** The bench's own probes' sessions, told apart from billstream's and the ERP sandbox's. */
const BENCH_APPLICATION_NAME = 'billstream-bench';

const POSTGRES_CLIENTS: Record<string, string> = {
  [LEDGER_APPLICATION_NAME]: 'billstream', [SANDBOX_APPLICATION_NAME]: 'ERP sandbox', [BENCH_APPLICATION_NAME]: 'bench',
};

/** `postgres: <client>` groups summed into `postgres`, and apart by client. */
function splitPostgres(spent: CpuGroups): { cpuSeconds: CpuGroups; postgresCpuSeconds: CpuGroups } {
  const cpuSeconds: CpuGroups = {};
  const postgresCpuSeconds: CpuGroups = {};
  for (const [group, seconds] of Object.entries(spent)) {
    if (!group.startsWith('postgres: ')) { cpuSeconds[group] = seconds; continue; }
    postgresCpuSeconds[group.slice('postgres: '.length)] = seconds;
    cpuSeconds.postgres = (cpuSeconds.postgres ?? 0) + seconds;
  }
  return { cpuSeconds, postgresCpuSeconds };
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/**
 * The generated week, held here alone until billstream's backlog is published.
 * A million generated messages are well over a gigabyte of the bench's heap,
 * and its collector kept marking them while billstream drained: in one 1M run
 * two memory-reducing collections (8 and 7 s of marking, 2 and 7 s paused) in
 * the drain, and another started by the half-load phase's own encoding, in its
 * first seconds, the 2 s slice with the worst p99 (`--trace-gc`). Released,
 * the bench keeps only the latency phase's messages, already encoded.
 */
class GeneratedWeek {
  #week: WeekClose | null;

  constructor(week: WeekClose) {
    this.#week = week;
  }

  get week(): WeekClose {
    if (!this.#week) throw new Error('the generated week was released once billstream\'s backlog was published');
    return this.#week;
  }

  release(): void {
    this.#week = null;
  }
}

/**
 * The half-load phase's entries, under new ids, encoded before the drain. It
 * offers half of billstream's rate for `latencySeconds`; past 20,000 entries
 * a second (a billstream at 40,000/s) the phase is shorter, and its entry
 * count says so.
 */
const MAX_OFFERED_PER_SECOND = 20_000;

/** Publishes billstream's backlog, keeps the latency phase's messages, and lets the week go. */
async function publishBacklog(s: Services, generated: GeneratedWeek, options: WeekCloseBenchOptions, log: Log): Promise<OfferedMessage[]> {
  const { messages } = generated.week;
  // The backlog is there before billstream starts: reference data first, as a firm loads it.
  const firstTime = messages.findIndex((m) => m.subject.startsWith('ingest.time.'));
  await publishMessages(s.js, asPublished(messages.slice(0, firstTime)));
  await publishMessages(s.js, asPublished(messages.slice(firstTime)));
  const time = messages.filter((m) => m.subject.startsWith('ingest.time.'));
  log(`billstream: ${messages.length} messages in the backlog (${time.length} time)`);
  const approved = time.filter((m) => m.record && (m.record as TimeRecord).status === 'approved').slice(0, MAX_OFFERED_PER_SECOND * options.latencySeconds);
  const offered = [...asPublished(approved, (id) => `lat-${id}`)];
  generated.release();
  return offered;
}

/** 3. billstream as its own process, draining the week's backlog; then latency at half its rate. */
async function measureBillstream(s: Services, generated: GeneratedWeek, options: WeekCloseBenchOptions, log: Log): Promise<{ billstream: WeekCloseBenchResult['billstream']; latency: WeekCloseBenchResult['latencyAtHalfLoad'] }> {
  const jsm = await jetstreamManager(s.nc);
  await ensureTopology(jsm, RECORD_KINDS);
  // Bitmap scans off for the bench's own probes: see `progress` below.
  const sql = new pg.Pool({ connectionString: s.databaseUrl, max: 2, options: '-c enable_bitmapscan=off', application_name: BENCH_APPLICATION_NAME });
  const latencyPool = await publishBacklog(s, generated, options, log);

  // BILLSTREAM_BENCH_NODE_ARGS passes flags to the measured process (say --cpu-prof).
  const nodeArgs = (process.env.BILLSTREAM_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // With the heap budget and malloc arenas `billstream start` gives itself, so the measured pid is the pipeline itself.
  const child = spawn(process.execPath, [...startNodeFlags(), ...nodeArgs, 'ops/cli.ts', 'start'], {
    env: {
      ...process.env, ...startNodeEnv(), NATS_URL: s.nats.url, DATABASE_URL: s.databaseUrl, ERP_BASE_URL: s.sandbox.url, HTTP_PORT: '0', HTTP_HOST: '127.0.0.1',
      REFERENCE_GRACE_SECONDS: '5', OTEL_EXPORTER_OTLP_ENDPOINT: '',
    },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  let peak = 0;
  const sampler = setInterval(() => { void rssMiB(child.pid ?? 0).then((m) => { peak = Math.max(peak, m); }); }, 200);
  // Polled four times a second while billstream drains, so it must cost the
  // servers next to nothing, or the bench loads what it measures (the broker
  // limit's run has no probe at all). Two costs grew with the run before:
  // - The consumer's info: nats-server counts its pending messages by walking
  //   the stream's subjects from the consumer's position (every entry has its
  //   own subject), about 200 ms at 700k left. So it is read again only after
  //   a delay in proportion to what was left (250 ms near the end, 5 s at most).
  // - The counts of waiting entries and unposted ERP lines: as bitmap scans they
  //   visited every dead row version an index still pointed to (a posted line's
  //   old version stayed in the outbox's pending index until a vacuum), 220 ms
  //   at 200k posted. As index-only scans they mark those entries dead in the
  //   index as they pass, so the next count skips them: 4 ms instead. (Unposted
  //   lines are now counted in their own queue table, erp_pending.) Still, at
  //   1M their sessions took 9.5 of PostgreSQL's 168 CPU-s (pg_stat_activity's
  //   split below). The drain cannot be over while the consumer has messages
  //   left, so until then they are counted only for the log line, every 5 s.
  let consumerLeft = Number.POSITIVE_INFINITY;
  let consumerReadAt = Number.NEGATIVE_INFINITY;
  type Progress = { left: number; waiting: number | null; pending: number | null; unpublished: number | null };
  const progress = async (counted: boolean): Promise<Progress> => {
    if (performance.now() - consumerReadAt >= Math.min(5_000, Math.max(250, consumerLeft / 20))) {
      const info = await jsm.consumers.info(STREAMS.ingest, ingestConsumerName('time'));
      consumerLeft = info.num_pending + info.num_ack_pending;
      consumerReadAt = performance.now();
    }
    if (consumerLeft > 0 && !counted) return { left: consumerLeft, waiting: null, pending: null, unpublished: null };
    // The NATS outbox too: the drain is done when every enriched entry and posted
    // line has been announced, not only posted to the ERP. Left out, the relay's
    // backlog ran into the half-load phase, whose first seconds then measured it.
    const { rows } = await sql.query<{ pending: string; waiting: string; unpublished: string }>(
      `select (select count(*) from entry_revision where stage = 'waiting') as waiting, (select count(*) from erp_pending) as pending,
              (select count(*) from nats_outbox_batch) as unpublished`);
    return { left: consumerLeft, waiting: Number(rows[0]?.waiting), pending: Number(rows[0]?.pending), unpublished: Number(rows[0]?.unpublished) };
  };
  const drained = (p: Progress) => p.left === 0 && p.waiting === 0 && p.pending === 0 && p.unpublished === 0;
  const decidedCount = async () => {
    const { rows } = await sql.query<{ decided: string }>(`select count(*) as decided from entry_revision where stage <> 'waiting'`);
    return Number(rows[0]?.decided);
  };
  // PostgreSQL's processes by whom they work for (`postgres: billstream`, ...),
  // read from pg_stat_activity before each sample: backends come and go.
  const database = new URL(s.databaseUrl).pathname.slice(1);
  let clientOf: (pid: number) => string | null = () => null;
  const cpu = new CpuTracker((pid, command) => {
    if (pid === child.pid) return 'billstream';
    if (pid === process.pid) return 'bench';
    if (pid === s.sandbox.pid) return 'ERP sandbox';
    if (pid === s.nats.pid) return 'nats-server';
    if (!/^postgres/.test(command)) return null;
    const client = clientOf(pid);
    return client === null ? null : `postgres: ${client}`;
  });
  let cpuSampledAt = 0;
  const sampleCpu = async () => {
    clientOf = postgresClientOf((await sql.query<PostgresSession>(POSTGRES_SESSIONS)).rows, database, POSTGRES_CLIENTS);
    await cpu.sample();
    cpuSampledAt = performance.now();
  };
  try {
    await sampleCpu();
    const mainThreadBefore = await threadCpuSeconds(child.pid ?? 0);
    const scheduleBefore = await threadSchedule(child.pid ?? 0);
    const started = performance.now();
    let lastLog = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      const logDue = performance.now() - lastLog > 5000;
      const p = await progress(logDue).catch((): Progress => ({ left: 1, waiting: 1, pending: 1, unpublished: 1 }));
      if (logDue) { lastLog = performance.now(); log(`billstream: ${p.left} messages to decide, ${p.waiting} waiting, ${p.pending} to post, ${p.unpublished} outbox batches to publish, RSS ${Math.round(peak)} MiB`); }
      if (drained(p)) break;
      if (performance.now() - cpuSampledAt >= CPU_SAMPLE_MS) await sampleCpu().catch(() => {});
    }
    const seconds = (performance.now() - started) / 1000;
    await sampleCpu();
    const { cpuSeconds, postgresCpuSeconds } = splitPostgres(cpu.spent());
    const mainThreadSeconds = (await threadCpuSeconds(child.pid ?? 0)) - mainThreadBefore;
    const scheduleAfter = await threadSchedule(child.pid ?? 0);
    const mainThreadWaitingSeconds = scheduleBefore && scheduleAfter ? scheduleAfter.waitingSeconds - scheduleBefore.waitingSeconds : null;
    const decided = await decidedCount();
    const perSecond = decided / seconds;

    // Latency: fresh entries (new ids) offered at half the rate billstream just reached.
    const offered = Math.max(10, Math.floor(perSecond / 2));
    const total = Math.min(latencyPool.length, offered * options.latencySeconds);
    log(`latency: offering ${offered} entries/s for ${options.latencySeconds} s`);
    await offerLoad({ natsUrl: s.nats.url, messages: latencyPool.slice(0, total), perSecond: offered });
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const p = await progress(false);
      if (drained(p)) break;
    }
    // The half-load charges, read once: the p50 and p99 from ingest to posted,
    // then where a p99 goes, by stage and by 2 s of arrival, so that a miss says
    // whether it was the turns or the posts, and steady or a transient.
    const { rows: [latency] } = await sql.query<{ n: string; p50: number; p99: number; decided: number; queued: number; posted: number; worst: { from_second: number; n: number; p99: number } | null }>(
      `with t as (select e.first_seen_at as seen, extract(epoch from (o.posted_at - e.first_seen_at)) * 1000 as ms,
                         extract(epoch from (e.decided_at - e.first_seen_at)) * 1000 as decided,
                         extract(epoch from (o.created_at - e.decided_at)) * 1000 as queued,
                         extract(epoch from (o.posted_at - o.created_at)) * 1000 as posted
                  from erp_outbox o join entry_revision e on e.entry_id = o.entry_id and e.revision = o.revision
                  where o.entry_id like 'lat-%' and o.kind = 'charge' and o.status = 'posted'),
            slices as (select floor(extract(epoch from t.seen - f.first) / 2) * 2 as from_second, count(*) as n, percentile_cont(0.99) within group (order by ms) as p99
                       from t, (select min(seen) as first from t) f group by 1)
       select count(*) as n, percentile_cont(0.5) within group (order by ms) as p50, percentile_cont(0.99) within group (order by ms) as p99,
              percentile_cont(0.99) within group (order by decided) as decided, percentile_cont(0.99) within group (order by queued) as queued,
              percentile_cont(0.99) within group (order by posted) as posted,
              (select to_jsonb(s) from slices s order by p99 desc limit 1) as worst
       from t`);
    // The rate every offered entry (charged or not) reached the stream at, beside
    // the rate offered: a load that came in bursts would show here, and its
    // latency would not be half load's.
    const { rows: [arrival] } = await sql.query<{ n: string; span: number | null }>(
      `select count(*) as n, extract(epoch from max(first_seen_at) - min(first_seen_at))::float8 as span from entry_revision where entry_id like 'lat-%'`);
    const arrivedPerSecond = arrival?.span ? Math.round(Number(arrival.n) / arrival.span) : 0;
    return {
      billstream: { entries: decided, seconds, perSecond, peakRssMiB: Math.round(peak), cpuSeconds, postgresCpuSeconds, mainThreadSeconds, mainThreadWaitingSeconds },
      latency: { offeredPerSecond: offered, arrivedPerSecond, entries: Number(latency?.n ?? 0), p50Ms: Math.round(latency?.p50 ?? 0), p99Ms: Math.round(latency?.p99 ?? 0),
        stagesP99Ms: { decided: Math.round(latency?.decided ?? 0), queued: Math.round(latency?.queued ?? 0), posted: Math.round(latency?.posted ?? 0) },
        worstSlice: { fromSecond: Number(latency?.worst?.from_second ?? 0), entries: Number(latency?.worst?.n ?? 0), p99Ms: Math.round(latency?.worst?.p99 ?? 0) } },
    };
  } finally {
    clearInterval(sampler);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await sql.end();
  }
}

export async function weekCloseBench(options: WeekCloseBenchOptions, log: Log): Promise<WeekCloseBenchResult> {
  log(`generating a week close of ${options.entries} entries over ${options.regions.length} regions`);
  const generated = new GeneratedWeek(generateWeekClose({ entries: options.entries, regions: options.regions, firstRegionShare: 0.5, projects: Math.max(300, Math.floor(options.entries / 300)), consultants: Math.max(600, Math.floor(options.entries / 150)), seed: options.seed }));
  const services = await startServices(log);
  try {
    const brokerLimit = await measureBrokerLimit(services, generated.week.messages, log);
    log(`broker limit: ${Math.round(brokerLimit.perSecond)} messages/s`);
    const naive = await measureNaive(services, generated.week, Math.min(options.naiveEntries, options.entries), log);
    log(`naive: ${Math.round(naive.perSecond)} entries/s`);
    const { billstream, latency } = await measureBillstream(services, generated, options, log);
    return {
      postgres: await postgresSettings(services.databaseUrl),
      entries: options.entries, brokerLimit, naive, billstream,
      ratios: { toBrokerLimit: billstream.perSecond / brokerLimit.perSecond, toNaive: billstream.perSecond / naive.perSecond },
      latencyAtHalfLoad: latency,
    };
  } finally {
    await stopServices(services);
  }
}

/** Issue 5's targets for a week close, each with what this run measured and whether it met it. */
export interface WeekCloseTargets {
  toBrokerLimit: { value: number; atLeast: number; met: boolean };
  toNaive: { value: number; atLeast: number; met: boolean };
  peakRssMiB: { value: number; under: number; met: boolean };
  p99AtHalfLoadMs: { value: number; under: number; met: boolean };
}

export const WEEK_CLOSE_TARGETS = { toBrokerLimit: 0.5, toNaive: 10, peakRssMiB: 512, p99AtHalfLoadMs: 2000 } as const;

/** Judged on the unrounded figures: a ratio of 0.496 misses 0.5 however it is printed. */
export function weekCloseTargets(result: Pick<WeekCloseBenchResult, 'ratios' | 'billstream' | 'latencyAtHalfLoad'>): WeekCloseTargets {
  const t = WEEK_CLOSE_TARGETS;
  return {
    toBrokerLimit: { value: result.ratios.toBrokerLimit, atLeast: t.toBrokerLimit, met: result.ratios.toBrokerLimit >= t.toBrokerLimit },
    toNaive: { value: result.ratios.toNaive, atLeast: t.toNaive, met: result.ratios.toNaive >= t.toNaive },
    peakRssMiB: { value: result.billstream.peakRssMiB, under: t.peakRssMiB, met: result.billstream.peakRssMiB < t.peakRssMiB },
    p99AtHalfLoadMs: { value: result.latencyAtHalfLoad.p99Ms, under: t.p99AtHalfLoadMs, met: result.latencyAtHalfLoad.p99Ms < t.p99AtHalfLoadMs },
  };
}

/**
 * A bar chart of the three rates, as SVG for the README, with what the ratios
 * and the other targets came to under it: the bars alone would hide that the
 * naive row is a sliver and the broker's row the scale.
 */
export function weekCloseChart(result: WeekCloseBenchResult, targets: WeekCloseTargets = weekCloseTargets(result)): string {
  const bars = [
    { label: 'broker limit', value: result.brokerLimit.perSecond, colour: '#8a8f98' },
    { label: 'billstream', value: result.billstream.perSecond, colour: '#2f6fdf' },
    { label: 'naive pipeline', value: result.naive.perSecond, colour: '#d9822b' },
  ];
  const max = Math.max(...bars.map((b) => b.value));
  const rows = bars.map((b, i) => {
    const width = Math.max(2, Math.round((b.value / max) * 420));
    const y = 40 + i * 44;
    return `<text x="10" y="${y + 20}" font-size="14">${b.label}</text><rect x="130" y="${y}" width="${width}" height="28" fill="${b.colour}"/>` +
      `<text x="${136 + width}" y="${y + 20}" font-size="13">${Math.round(b.value).toLocaleString('en-US')}/s</text>`;
  }).join('\n  ');
  const { toBrokerLimit, toNaive, p99AtHalfLoadMs, peakRssMiB } = targets;
  const verdict = (met: boolean) => (met ? 'met' : 'missed');
  const footer = [
    `billstream / broker limit ${toBrokerLimit.value.toFixed(3)} (target ≥ ${toBrokerLimit.atLeast}: ${verdict(toBrokerLimit.met)})`,
    `billstream / naive ${toNaive.value.toFixed(1)}× (target ≥ ${toNaive.atLeast}×: ${verdict(toNaive.met)})`,
    // "under", not "<": the text is the SVG's own markup.
    `p99 at half load ${Math.round(p99AtHalfLoadMs.value).toLocaleString('en-US')} ms (target under ${p99AtHalfLoadMs.under.toLocaleString('en-US')} ms: ${verdict(p99AtHalfLoadMs.met)}), ` +
      `peak RSS ${Math.round(peakRssMiB.value)} MiB (target under ${peakRssMiB.under} MiB: ${verdict(peakRssMiB.met)})`,
  ].map((line, i) => `<text x="10" y="${192 + i * 20}" font-size="13">${line}</text>`).join('\n  ');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="680" height="262" font-family="sans-serif">
  <text x="10" y="22" font-size="15" font-weight="bold">Week close of ${result.entries.toLocaleString('en-US')} entries: messages or entries per second</text>
  ${rows}
  ${footer}
</svg>
`;
}
