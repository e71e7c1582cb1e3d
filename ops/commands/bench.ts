// `billstream bench <scenario>`: measurements of billstream end to end, each
// scenario a function over a private billstream (its own nats-server, a fresh
// database, the ERP sandbox in-process) that returns a report; the command
// prints the report's table and writes its JSON under bench-results/.
//
//   bench pipeline [--entries N] [--tracing off|on|both] [--rounds N] [--seed N]
//     a generated week close (ops/demo/week-close.ts) through the pipeline, with
//     tracing off and on (ratio 1.0 unless --ratio, OTLP/HTTP protobuf to an in-process
//     receiver that accepts and counts, so export costs what it costs), in the
//     same run: entries decided and posted per second, and their ratio. A
//     small unreported warm-up goes first and the modes swap order each round:
//     on two cores shared with PostgreSQL and nats-server, a cold first run is
//     otherwise slower by more than tracing costs.
//
// A scenario is `(options, log) => Promise<BenchReport>`; a new one (say, the
// broker's limit against a naive pipeline) is one more entry in SCENARIOS that
// uses `withPrivateBillstream` the same way.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { startErpSandbox } from '../../connectors/erp/sandbox.ts';
import { loadConfig } from '../config.ts';
import { generateWeekClose, messagePayload, type IngestMessage } from '../demo/week-close.ts';
import { publishBounded, referenceCaughtUp } from '../demo/publishing.ts';
import { ensureNats, ensurePostgres, recreateDatabase, withDatabase } from '../embedded/services.ts';
import { weekCloseBench, weekCloseChart, weekCloseTargets, type WeekCloseTargets } from '../bench/week-close-bench.ts';
import { cpuBudget, type CpuBudget } from '../bench/cpu-budget.ts';
import { startOtlpReceiver } from '../otlp-receiver.ts';
import { startRuntime, type Runtime } from '../runtime.ts';
import { startTelemetry, type Telemetry } from '../telemetry.ts';

type Log = (line: string) => void;

/** What a scenario hands back: a table for people, JSON for the record. */
export interface BenchReport {
  /** File name under bench-results/. */
  file: string;
  lines: string[];
  json: Record<string, unknown>;
}

interface Scenario {
  usage: string;
  run(args: string[], log: Log): Promise<BenchReport>;
}

const SCENARIOS: Record<string, Scenario> = {
  weekclose: {
    usage: 'weekclose [--entries N (1000000)] [--naive-entries N (10000)] [--latency-seconds N (20)] [--seed N (2026)]',
    run: async (args, log) => {
      const { values } = parseArgs({ args, options: { entries: { type: 'string' }, 'naive-entries': { type: 'string' }, 'latency-seconds': { type: 'string' }, seed: { type: 'string' } } });
      const result = await weekCloseBench({
        entries: positiveInt('--entries', values.entries, 1_000_000), naiveEntries: positiveInt('--naive-entries', values['naive-entries'], 10_000),
        latencySeconds: positiveInt('--latency-seconds', values['latency-seconds'], 20), seed: positiveInt('--seed', values.seed, 2026),
        // Five regions, the first with half the projects and so about half the volume.
        regions: ['amer', 'emea', 'apac', 'latam', 'anz'],
      }, log);
      const targets = weekCloseTargets(result);
      await mkdir(resolve('bench-results'), { recursive: true });
      await writeFile(resolve('bench-results/weekclose.svg'), weekCloseChart(result, targets));
      const r = (n: number) => Math.round(n).toLocaleString('en-US');
      const budget = cpuBudget({ cores: cpus().length, brokerLimit: result.brokerLimit, billstream: result.billstream, toBrokerLimitTarget: targets.toBrokerLimit.atLeast });
      return {
        file: 'weekclose.json',
        json: { scenario: 'weekclose', date: new Date().toISOString(), cpus: cpus().length, ...result, targets, cpuBudget: budget },
        lines: [
          `week close of ${r(result.entries)} entries (same nats-server, PostgreSQL and ERP sandbox for every row)`,
          '',
          '  run                     per second    seconds',
          `  1. broker limit        ${r(result.brokerLimit.perSecond).padStart(11)}  ${result.brokerLimit.seconds.toFixed(1).padStart(9)}   (${r(result.brokerLimit.messages)} messages fetched, re-published, acked)`,
          `  2. naive pipeline      ${r(result.naive.perSecond).padStart(11)}  ${result.naive.seconds.toFixed(1).padStart(9)}   (${r(result.naive.entries)} entries, each with one ORM flush, one ERP call and its announcements)`,
          `  3. billstream          ${r(result.billstream.perSecond).padStart(11)}  ${result.billstream.seconds.toFixed(1).padStart(9)}   (${r(result.billstream.entries)} entry revisions decided and posted)`,
          '',
          ratiosLine(targets),
          `  latency ingest → ERP posted at half load (${r(result.latencyAtHalfLoad.offeredPerSecond)}/s offered, ${r(result.latencyAtHalfLoad.arrivedPerSecond)}/s arrived, ${r(result.latencyAtHalfLoad.entries)} entries): p50 ${r(result.latencyAtHalfLoad.p50Ms)} ms, p99 ${r(result.latencyAtHalfLoad.p99Ms)} ms (target under ${r(targets.p99AtHalfLoadMs.under)} ms: ${verdict(targets.p99AtHalfLoadMs.met)})`,
          `    p99 by stage: ingest → decided ${r(result.latencyAtHalfLoad.stagesP99Ms.decided)} ms, decided → queued for the ERP ${r(result.latencyAtHalfLoad.stagesP99Ms.queued)} ms, queued → posted ${r(result.latencyAtHalfLoad.stagesP99Ms.posted)} ms; ` +
            `worst 2 s of arrival: p99 ${r(result.latencyAtHalfLoad.worstSlice.p99Ms)} ms from ${result.latencyAtHalfLoad.worstSlice.fromSecond} s (${r(result.latencyAtHalfLoad.worstSlice.entries)} entries)`,
          `  peak RSS of the billstream process: ${r(result.billstream.peakRssMiB)} MiB (target under ${r(targets.peakRssMiB.under)} MiB: ${verdict(targets.peakRssMiB.met)})`,
          mainThreadLine(result.billstream),
          `  CPU seconds while billstream drained (${result.billstream.seconds.toFixed(1)} s on ${cpus().length} cores): ${cpuList(result.billstream.cpuSeconds)}`,
          `    PostgreSQL's by whom it worked for: ${cpuList(result.billstream.postgresCpuSeconds)}`,
          ...cpuBudgetLines(budget, targets.toBrokerLimit),
          `  PostgreSQL ${result.postgres.version}: shared_buffers ${result.postgres.sharedBuffers}, autovacuum ${result.postgres.autovacuum}${result.postgres.autovacuum === 'off' ? ' (dead row versions stay: not a production server\'s figures)' : ''}`,
          '  chart: bench-results/weekclose.svg',
        ],
      };
    },
  },
  pipeline: {
    usage: 'pipeline [--entries N (20000)] [--tracing off|on|both (both)] [--ratio R (1.0)] [--rounds N (2)] [--seed N (2026)]',
    run: (args, log) => {
      const { values } = parseArgs({ args, options: { entries: { type: 'string' }, tracing: { type: 'string' }, ratio: { type: 'string' }, rounds: { type: 'string' }, seed: { type: 'string' } } });
      const tracing = values.tracing ?? 'both';
      if (tracing !== 'off' && tracing !== 'on' && tracing !== 'both') throw new BenchOptionsError(`--tracing must be off, on or both, got '${tracing}'`);
      const ratio = values.ratio === undefined ? 1 : Number(values.ratio);
      if (!(ratio >= 0 && ratio <= 1)) throw new BenchOptionsError(`--ratio must be between 0 and 1, got '${values.ratio}'`);
      return pipelineTracingScenario({
        entries: positiveInt('--entries', values.entries, 20_000), rounds: positiveInt('--rounds', values.rounds, 2),
        seed: positiveInt('--seed', values.seed, 2026), modes: tracing === 'both' ? ['off', 'on'] : [tracing], ratio,
      }, log);
    },
  },
};

export class BenchOptionsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BenchOptionsError';
  }
}

/** The two ratios with their targets; three decimals, and the verdict said, so a ratio just under a target never reads as met. */
export function ratiosLine(targets: Pick<WeekCloseTargets, 'toBrokerLimit' | 'toNaive'>): string {
  const { toBrokerLimit: broker, toNaive: naive } = targets;
  return `  billstream / broker limit: ${broker.value.toFixed(3)} (target at least ${broker.atLeast}: ${verdict(broker.met)})   ` +
    `billstream / naive: ${naive.value.toFixed(1)}x (target at least ${naive.atLeast}x: ${verdict(naive.met)})`;
}

function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED';
}

/**
 * How the main thread (billstream's JavaScript) spent the drain: on a CPU, and
 * ready to run but waiting for one. The two near 100% together say the thread
 * was never held back by the pipeline (I/O, locks), only by the cores it shares.
 */
export function mainThreadLine(drain: { seconds: number; mainThreadSeconds: number; mainThreadWaitingSeconds: number | null }): string {
  const percent = (s: number) => Math.round((100 * s) / drain.seconds);
  const busy = `  billstream's main thread (its JavaScript) busy ${percent(drain.mainThreadSeconds)}% of the drain (${drain.mainThreadSeconds.toFixed(1)} CPU-s)`;
  if (drain.mainThreadWaitingSeconds === null) return busy;
  return `${busy}, ready but waiting for a CPU ${percent(drain.mainThreadWaitingSeconds)}% (${drain.mainThreadWaitingSeconds.toFixed(1)} s)`;
}

/**
 * Where each entry's CPU went, and what that leaves billstream on this
 * machine: the rate the target asks for gives every process together so many
 * CPU-µs per entry, and the other processes' work for billstream's entries is
 * taken out of that first (cpu-budget.ts).
 */
export function cpuBudgetLines(budget: CpuBudget, target: Pick<WeekCloseTargets['toBrokerLimit'], 'atLeast'>): string[] {
  const micros = (n: number) => `${Math.round(n).toLocaleString('en-US')} µs`;
  const share = (n: number) => n.toFixed(3);
  const perEntry = Object.entries(budget.perEntryMicros).sort((a, b) => b[1] - a[1]);
  const total = perEntry.reduce((a, [, m]) => a + m, 0);
  const broker = Object.entries(budget.perBrokerMessageMicros).sort((a, b) => b[1] - a[1]);
  const { ceiling, ceilingWithoutErp } = budget;
  const own = budget.perEntryMicros.billstream ?? 0;
  const verdictText = ceiling.toBrokerLimit < target.atLeast
    ? `so ${target.atLeast} of the broker limit is out of reach on this machine whatever billstream's own code costs`
    : `so billstream's own process may spend ${micros(budget.targetMicrosPerEntry - ceiling.othersMicrosPerEntry)} per entry to meet it; it spent ${micros(own)}`;
  return [
    `  CPU per entry decided: ${perEntry.map(([group, m]) => `${group} ${micros(m)}`).join(', ')} (${micros(total)} in all)`,
    `  CPU per message of the broker limit: ${broker.map(([group, m]) => `${group} ${micros(m)}`).join(', ')} (${budget.brokerCoresBusy.toFixed(2)} of ${budget.cores} cores busy)`,
    `  what limits billstream: ${target.atLeast} of the broker limit leaves ${micros(budget.targetMicrosPerEntry)} per entry for every process on ${budget.cores} cores; ` +
      `the others' work for billstream's entries took ${micros(ceiling.othersMicrosPerEntry)} (${micros(ceilingWithoutErp.othersMicrosPerEntry)} without the ERP sandbox's), ` +
      `which caps billstream at ${share(ceiling.toBrokerLimit)} of the broker limit even if its own process cost nothing (${share(ceilingWithoutErp.toBrokerLimit)} without the sandbox's); ${verdictText}`,
  ];
}

/** `billstream 16.8, postgres 12.6, ...`, the largest first. */
function cpuList(groups: Readonly<Record<string, number>>): string {
  return Object.entries(groups).sort((a, b) => b[1] - a[1]).map(([group, seconds]) => `${group} ${seconds.toFixed(1)}`).join(', ');
}

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new BenchOptionsError(`${name} must be a positive integer, got '${text}'`);
  return value;
}

function isParseArgsError(err: unknown): err is Error {
  const code = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

export function benchUsage(): string {
  return Object.values(SCENARIOS).map((s) => `bench ${s.usage}`).join('\n');
}

export async function runBench(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  const scenario = name ? SCENARIOS[name] : undefined;
  if (!scenario) {
    console.error(`usage:\n  ${benchUsage().split('\n').join('\n  ')}`);
    return 2;
  }
  const usage = `usage:\n  bench ${scenario.usage}`;
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(usage);
    return 0;
  }
  let report: BenchReport;
  try {
    report = await scenario.run(rest, (line) => console.error(`  · ${line}`));
  } catch (err) {
    // parseArgs names the option it refused (unknown, or missing its value): a usage error like ours, not a crash.
    if (err instanceof BenchOptionsError || isParseArgsError(err)) { console.error(`billstream bench: ${err.message}\n${usage}`); return 2; }
    throw err;
  }
  for (const line of report.lines) console.log(line);
  const file = resolve('bench-results', report.file);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(report.json, null, 2)}\n`);
  console.log(`\nwritten to ${file}`);
  return 0;
}

// ---------------------------------------------------------------------------
// A private billstream for one measurement

export interface PrivateBillstream {
  runtime: Runtime;
  databaseUrl: string;
}

const BENCH_DATABASE = 'billstream_bench';

/**
 * Runs `fn` against a billstream of its own: a private nats-server on an empty
 * temporary store, the bench database dropped and created again, the ERP
 * sandbox in-process on it, and the runtime with `telemetry`. Everything is
 * stopped (and the store removed) however `fn` ends.
 */
export async function withPrivateBillstream<T>(
  options: { telemetry: Telemetry; graceSeconds: number; log: Log },
  fn: (billstream: PrivateBillstream) => Promise<T>,
): Promise<T> {
  const { log } = options;
  const storeDir = await mkdtemp(join(tmpdir(), 'billstream-bench-'));
  const nats = await ensureNats({ url: '', dataDir: storeDir, log: () => {} });
  try {
    const postgres = await ensurePostgres({
      url: process.env.DATABASE_URL ? withDatabase(process.env.DATABASE_URL, BENCH_DATABASE) : undefined,
      dataDir: resolve(process.env.BILLSTREAM_DATA_DIR ?? '.billstream/bench'), database: BENCH_DATABASE, log,
    });
    const databaseUrl = withDatabase(postgres.url, BENCH_DATABASE);
    try {
      await recreateDatabase(databaseUrl);
      const sandbox = await startErpSandbox({ databaseUrl, port: 0 });
      try {
        const config = loadConfig({
          NATS_URL: nats.url, DATABASE_URL: databaseUrl, ERP_BASE_URL: sandbox.url, HTTP_PORT: '0', HTTP_HOST: '127.0.0.1',
          REFERENCE_GRACE_SECONDS: String(options.graceSeconds),
        });
        const runtime = await startRuntime(config, { http: false, telemetry: options.telemetry, log });
        try {
          return await fn({ runtime, databaseUrl });
        } finally {
          await runtime.stop();
        }
      } finally {
        await sandbox.close();
      }
    } finally {
      await postgres.stop();
    }
  } finally {
    await nats.stop();
    await rm(storeDir, { recursive: true, force: true });
  }
}

/** Publishes with at most 512 acks outstanding, like a busy producer; untraced, as an outside producer would be. */
async function publishAllMessages(runtime: Runtime, messages: readonly IngestMessage[]): Promise<void> {
  const encoder = new TextEncoder();
  await publishBounded(messages, (message) => runtime.js.publish(message.subject, encoder.encode(messagePayload(message)), { msgID: message.msgId, headers: natsHeaders() }));
}

// ---------------------------------------------------------------------------
// Scenario: the pipeline with tracing off and on

interface PipelineRun {
  tracing: 'off' | 'on';
  round: number;
  seconds: number;
  decided: number;
  posted: number;
  decidedPerSecond: number;
  postedPerSecond: number;
  spans: { ended: number; exported: number; dropped: number; requests: number; bytes: number } | null;
}

/** How long the counts must stand still before the run counts as settled. */
const QUIET_MS = 2_000;

async function measurePipeline(tracing: 'off' | 'on', round: number, entries: number, seed: number, ratio: number, log: Log): Promise<PipelineRun> {
  const receiver = tracing === 'on' ? await startOtlpReceiver() : null;
  const telemetry = receiver ? startTelemetry({ endpoint: receiver.url, ratio }) : startTelemetry();
  try {
    // Never-arriving assignments stay waiting all run long (the grace is far
    // away): the measurement is what the pipeline decides, not how long it waits.
    const result = await withPrivateBillstream({ telemetry, graceSeconds: 3_600, log }, async ({ runtime }) => {
      const week = generateWeekClose({ entries, seed });
      const firstTime = week.messages.findIndex((m) => m.subject.startsWith('ingest.time.'));
      await publishAllMessages(runtime, week.messages.slice(0, firstTime));
      await referenceCaughtUp(runtime.nc);
      log(`tracing ${tracing}, round ${round}: reference data loaded; publishing ${week.messages.length - firstTime} messages`);

      const startedAt = performance.now();
      let publishing = true;
      const published = publishAllMessages(runtime, week.messages.slice(firstTime)).finally(() => { publishing = false; });
      let last = { decided: -1, posted: -1 };
      let lastChangeAt = startedAt;
      const deadline = Date.now() + 20 * 60_000;
      for (;;) {
        await new Promise((r) => setTimeout(r, 250));
        const counts = await ledgerCounts(runtime);
        if (counts.decided !== last.decided || counts.posted !== last.posted) {
          last = counts;
          lastChangeAt = performance.now();
        }
        const quiet = !publishing && counts.pendingErp === 0 && counts.pendingNats === 0 && performance.now() - lastChangeAt > QUIET_MS;
        if (quiet) break;
        if (Date.now() > deadline) throw new Error(`tracing ${tracing}: the week did not settle within 20 minutes`);
      }
      await published;
      const seconds = (lastChangeAt - startedAt) / 1000;
      return { seconds, decided: last.decided, posted: last.posted };
    });
    await telemetry.forceFlush();
    const spans = receiver
      ? { ended: telemetry.spansEnded(), exported: receiver.spanCount, dropped: Math.max(0, telemetry.spansEnded() - receiver.spanCount), requests: receiver.requests, bytes: receiver.bytes }
      : null;
    const run: PipelineRun = {
      tracing, round, ...result,
      decidedPerSecond: result.decided / result.seconds, postedPerSecond: result.posted / result.seconds, spans,
    };
    log(`tracing ${tracing}, round ${round}: ${run.decided} decided, ${run.posted} posted in ${run.seconds.toFixed(2)} s${spans ? `, ${spans.exported} spans exported` : ''}`);
    return run;
  } finally {
    await telemetry.shutdown();
    await receiver?.close();
  }
}

async function ledgerCounts(runtime: Runtime): Promise<{ decided: number; posted: number; pendingErp: number; pendingNats: number }> {
  const [row] = await runtime.orm.em.fork().execute<Record<string, string>[]>(
    `select (select count(*) from entry_revision where stage <> 'waiting') as decided,
            (select count(*) from erp_outbox where status = 'posted') as posted,
            (select count(*) from erp_pending) as pending_erp,
            (select coalesce(sum(message_count), 0) from nats_outbox_batch) as pending_nats`);
  return { decided: Number(row?.decided), posted: Number(row?.posted), pendingErp: Number(row?.pending_erp), pendingNats: Number(row?.pending_nats) };
}

export interface PipelineTracingOptions {
  entries: number;
  /** BILLSTREAM_TRACE_RATIO with tracing on. @default 1 */
  ratio?: number;
  rounds: number;
  seed: number;
  modes: ('off' | 'on')[];
}

/** The pipeline's throughput with tracing off and on; the best round of each mode counts. */
export async function pipelineTracingScenario(options: PipelineTracingOptions, log: Log): Promise<BenchReport> {
  const runs: PipelineRun[] = [];
  log('warm-up (not reported)');
  const traceRatio = options.ratio ?? 1;
  await measurePipeline(options.modes[0] ?? 'off', 0, Math.min(2_000, options.entries), options.seed + 1, traceRatio, log);
  for (let round = 1; round <= options.rounds; round++) {
    const order = round % 2 === 1 ? options.modes : [...options.modes].reverse();
    for (const mode of order) runs.push(await measurePipeline(mode, round, options.entries, options.seed, traceRatio, log));
  }
  const best = (mode: 'off' | 'on') => runs.filter((r) => r.tracing === mode).sort((a, b) => b.decidedPerSecond - a.decidedPerSecond)[0];
  const off = best('off');
  const on = best('on');
  const ratio = off && on ? { decided: on.decidedPerSecond / off.decidedPerSecond, posted: on.postedPerSecond / off.postedPerSecond } : null;
  const costPercent = ratio ? (1 - ratio.decided) * 100 : null;

  const n = (v: number) => Math.round(v).toLocaleString('en-US');
  const row = (cells: string[]) => `  ${cells[0]?.padEnd(16)}${cells.slice(1).map((c) => c.padStart(13)).join('')}`;
  const lines = [
    `bench pipeline: ${options.entries.toLocaleString('en-US')} entries (week close, seed ${options.seed}), ${options.rounds} round(s), best round shown`,
    '',
    row(['tracing', 'decided/s', 'posted/s', 'seconds', 'decided', 'posted', 'spans']),
    ...[off, on].filter((r): r is PipelineRun => r !== undefined).map((r) => row([
      r.tracing === 'on' ? `on (ratio ${(options.ratio ?? 1).toFixed(2)})` : 'off', n(r.decidedPerSecond), n(r.postedPerSecond), r.seconds.toFixed(2), n(r.decided), n(r.posted),
      r.spans ? `${n(r.spans.exported)}${r.spans.dropped ? ` (${n(r.spans.dropped)} dropped)` : ''}` : '-',
    ])),
  ];
  if (ratio && costPercent !== null) {
    lines.push(row(['on / off', ratio.decided.toFixed(3), ratio.posted.toFixed(3), '', '', '', '']));
    lines.push('', `tracing costs ${costPercent.toFixed(1)}% of decided throughput (target: under 15%) — ${costPercent < 15 ? 'within target' : 'OVER TARGET'}`);
  }
  return {
    file: 'tracing.json',
    lines,
    json: {
      scenario: 'pipeline', date: new Date().toISOString(), entries: options.entries, seed: options.seed, rounds: options.rounds,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, node: process.versions.node },
      tracingOn: { ratio: options.ratio ?? 1, exporter: 'otlp-http-protobuf to an in-process receiver (counts spans)' },
      best: { off: off ?? null, on: on ?? null },
      ratio, tracingCostPercent: costPercent, targetPercent: 15, withinTarget: costPercent === null ? null : costPercent < 15,
      runs,
    },
  };
}
