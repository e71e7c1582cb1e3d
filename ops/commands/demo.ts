// `billstream demo`: a simulated week close end to end on embedded defaults.
// It brings up (or reuses) NATS and PostgreSQL, starts the ERP sandbox and the
// pipeline, publishes a generated week (duplicates, revisions, late reference
// data, invalid records, caps, milestones), shows progress, and ends with a
// reconciliation against an independent expectation of the same week.
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { startErpSandbox } from '../../connectors/erp/sandbox.ts';
import { STREAMS } from '../../connectors/nats/topology.ts';
import { extractTraceContext, injectTraceContext } from '../../pipeline/model/trace-context.ts';
import { formatMoney, parseMoney } from '../../pipeline/model/money.ts';
import { loadConfig } from '../config.ts';
import { expectedOutcome, generateWeekClose, messagePayload, type ExpectedOutcome } from '../demo/week-close.ts';
import { publishBounded, referenceCaughtUp } from '../demo/publishing.ts';
import { ensureNats, ensurePostgres, recreateDatabase, withDatabase } from '../embedded/services.ts';
import { reconcileWithErp, type ReconciliationReport } from '../reconciliation.ts';
import { startRuntime, type Runtime } from '../runtime.ts';

export interface DemoOptions {
  entries?: number;
  keepRunning?: boolean;
  seed?: number;
}

const DEMO_DATABASE = 'billstream_demo';
/** Long enough for the week's late reference data, short enough to see never-arriving assignments fail. */
const DEMO_GRACE_SECONDS = 20;

export async function runDemo(options: DemoOptions): Promise<number> {
  const say = (line: string) => console.log(line);
  const log = (line: string) => console.error(`  · ${line}`);
  const dataDir = resolve(process.env.BILLSTREAM_DATA_DIR ?? '.billstream/demo');
  const entries = options.entries ?? 100_000;
  const seed = options.seed ?? 2026;

  say(`billstream demo: a simulated week close of ${entries.toLocaleString('en-US')} time entries over three regions`);
  say('bringing up services…');
  // The demo's private broker store is its own: start each demo from an empty one,
  // so last run's messages (and their Nats-Msg-Ids) cannot shadow this run's.
  if (!process.env.NATS_URL) await rm(resolve(dataDir, 'nats'), { recursive: true, force: true });
  const nats = await ensureNats({ dataDir, log });
  const postgres = await ensurePostgres({
    url: process.env.DATABASE_URL ? withDatabase(process.env.DATABASE_URL, DEMO_DATABASE) : undefined, dataDir, database: DEMO_DATABASE, log,
  });
  const databaseUrl = withDatabase(postgres.url, DEMO_DATABASE);
  await recreateDatabase(databaseUrl);
  const sandbox = await startErpSandbox({
    databaseUrl, port: process.env.ERP_SANDBOX_PORT ? Number(process.env.ERP_SANDBOX_PORT) : 0,
    clientId: process.env.ERP_CLIENT_ID, clientSecret: process.env.ERP_CLIENT_SECRET,
  });
  const config = loadConfig({
    ...process.env, NATS_URL: nats.url, DATABASE_URL: databaseUrl, ERP_BASE_URL: sandbox.url,
    REFERENCE_GRACE_SECONDS: process.env.REFERENCE_GRACE_SECONDS ?? String(DEMO_GRACE_SECONDS),
    HTTP_PORT: process.env.HTTP_PORT ?? '8080', HTTP_HOST: process.env.HTTP_HOST ?? '127.0.0.1',
  });
  let runtime: Runtime | null = null;
  let exitCode: number;
  try {
    await resetStreams(nats.url);
    runtime = await startRuntime(config, { log }).catch(async (err: unknown) => {
      if (!String(err).includes('EADDRINUSE')) throw err;
      log(`port ${config.HTTP_PORT} is taken; the ops server takes a free one`);
      return startRuntime({ ...config, HTTP_PORT: 0 }, { log });
    });
    say(`  NATS ${nats.url}${nats.started ? ' (private)' : ''} · PostgreSQL ${redact(databaseUrl)}${postgres.started ? ' (embedded)' : ''}`);
    say(`  ERP sandbox ${sandbox.url} · ops server ${runtime.httpUrl}`);

    const week = generateWeekClose({ entries, seed });
    const expected = expectedOutcome(week);
    say(`publishing ${week.messages.length.toLocaleString('en-US')} messages (reference data, entries, duplicates, revisions, invalid records, milestones)…`);
    const startedAt = Date.now();
    // Master data first, as a firm loads it before its timesheets; the week's late
    // reference records still come after the entries that need them.
    const firstTime = week.messages.findIndex((m) => m.subject.startsWith('ingest.time.'));
    const onProgress = (published: number) => progress(runtime as Runtime, published, week.messages.length, startedAt);
    await publishWeek(runtime, week.messages.slice(0, firstTime), onProgress);
    await referenceCaughtUp(runtime.nc, 100);
    await publishWeek(runtime, week.messages.slice(firstTime), (published) => onProgress(firstTime + published));
    await waitUntilSettled(runtime, startedAt, week.messages.length);
    const seconds = (Date.now() - startedAt) / 1000;
    const report = await reconcileWithErp(runtime.orm, (projectId) => (runtime as Runtime).erp.listTransactions(projectId));
    const outcome = await ledgerOutcome(runtime);
    printSummary(say, expected, outcome, report, entries, seconds);
    exitCode = report.ok && totalsMatch(expected, report) ? 0 : 1;
    if (options.keepRunning) {
      say(`\nstill running (--keep-running): ops server ${runtime.httpUrl}, ERP sandbox ${sandbox.url}; Ctrl-C to stop`);
      await new Promise<void>((done) => { process.once('SIGINT', () => done()); process.once('SIGTERM', () => done()); });
    }
  } finally {
    await runtime?.stop();
    await sandbox.close();
    await postgres.stop();
    await nats.stop();
  }
  return exitCode;
}

/** The demo starts from empty streams; on a broker you pointed it at, that means billstream's own streams. */
async function resetStreams(url: string): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    for (const name of Object.values(STREAMS)) await jsm.streams.delete(name).catch(() => false);
  } finally {
    await nc.close();
  }
}

async function publishWeek(runtime: Runtime, messages: ReturnType<typeof generateWeekClose>['messages'], onProgress: (published: number) => void): Promise<void> {
  const encoder = new TextEncoder();
  let lastReport = 0;
  const published = await publishBounded(messages, (message) => {
    const h = natsHeaders();
    // Each record starts its own trace (an `ingest` span), as the HTTP ingest route's do.
    const span = runtime.tracing.startIngest(message.subject, message.record);
    injectTraceContext(h, extractTraceContext(span.headers));
    return runtime.js.publish(message.subject, encoder.encode(messagePayload(message)), { msgID: message.msgId, headers: h })
      .then(() => { span.end(); }, (err: unknown) => { span.end(err); throw err; });
  }, 512, (count) => { if (Date.now() - lastReport > 1000) { lastReport = Date.now(); onProgress(count); } });
  onProgress(published);
}

interface LedgerCounts { decided: number; waiting: number; pendingErp: number; pendingNats: number; posted: number }

async function ledgerCounts(runtime: Runtime): Promise<LedgerCounts> {
  const [row] = await runtime.orm.em.fork().execute<Record<string, string>[]>(
    `select (select count(*) from entry_revision where stage <> 'waiting') as decided,
            (select count(*) from entry_revision where stage = 'waiting') as waiting,
            (select count(*) from erp_pending) as pending_erp,
            (select count(*) from erp_outbox where status = 'posted') as posted,
            (select coalesce(sum(message_count), 0) from nats_outbox_batch) as pending_nats`);
  return { decided: Number(row?.decided), waiting: Number(row?.waiting), pendingErp: Number(row?.pending_erp), pendingNats: Number(row?.pending_nats), posted: Number(row?.posted) };
}

let lastLine = '';
async function progress(runtime: Runtime, published: number, total: number, startedAt: number): Promise<void> {
  const counts = await ledgerCounts(runtime);
  const seconds = Math.max(0.001, (Date.now() - startedAt) / 1000);
  const line = `  published ${published}/${total} · decided ${counts.decided} · waiting ${counts.waiting} · ERP posted ${counts.posted} (pending ${counts.pendingErp}) · ${Math.round(counts.decided / seconds)} entries/s`;
  if (line === lastLine) return;
  lastLine = line;
  if (process.stderr.isTTY) process.stderr.write(`\r${line.padEnd(120)}`);
  else console.error(line);
}

/** Settled: nothing waiting, both outboxes empty, and the decisions stopped moving. */
async function waitUntilSettled(runtime: Runtime, startedAt: number, total: number): Promise<void> {
  const deadline = Date.now() + 30 * 60_000;
  let previous = -1;
  let stableSince = Date.now();
  for (;;) {
    const counts = await ledgerCounts(runtime);
    await progress(runtime, total, total, startedAt);
    const quiet = counts.waiting === 0 && counts.pendingErp === 0 && counts.pendingNats === 0;
    if (counts.decided !== previous) { previous = counts.decided; stableSince = Date.now(); }
    if (quiet && Date.now() - stableSince > 3_000) break;
    if (Date.now() > deadline) throw new Error('the week did not settle within 30 minutes');
    await new Promise((r) => setTimeout(r, 500));
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
}

interface LedgerOutcome {
  charged: number; reversed: number; milestones: number; nonBillable: number; held: number; stale: number; duplicates: number;
  exceptionsByCode: Record<string, number>;
}

async function ledgerOutcome(runtime: Runtime): Promise<LedgerOutcome> {
  const em = runtime.orm.em.fork();
  const kinds = Object.fromEntries((await em.execute<{ kind: string; n: string }[]>(`select kind, count(*) as n from erp_outbox where status = 'posted' group by kind`)).map((r) => [r.kind, Number(r.n)]));
  const stages = Object.fromEntries((await em.execute<{ stage: string; n: string }[]>(`select stage, count(*) as n from entry_revision group by stage`)).map((r) => [r.stage, Number(r.n)]));
  const counters = Object.fromEntries((await em.execute<{ name: string; value: string }[]>(`select name, value from pipeline_counter`)).map((r) => [r.name, Number(r.value)]));
  const exceptionsByCode = Object.fromEntries((await em.execute<{ code: string; n: string }[]>(`select code, count(*) as n from billing_exception group by code order by code`)).map((r) => [r.code, Number(r.n)]));
  return {
    charged: kinds.charge ?? 0, reversed: kinds.reversal ?? 0, milestones: kinds.milestone ?? 0, nonBillable: stages.non_billable ?? 0, held: stages.held ?? 0,
    stale: counters.stale ?? 0, duplicates: (counters.duplicates ?? 0) + runtime.pipeline.duplicatesInMemory, exceptionsByCode,
  };
}

function totalsMatch(expected: ExpectedOutcome, report: ReconciliationReport): boolean {
  const currencies = new Set([...Object.keys(expected.erpTotalByCurrency), ...Object.keys(report.erpTotalByCurrency)]);
  for (const c of currencies) {
    if (parseMoney(expected.erpTotalByCurrency[c] ?? '0.00') !== parseMoney(report.erpTotalByCurrency[c] ?? '0.00')) return false;
  }
  return true;
}

function printSummary(say: (l: string) => void, expected: ExpectedOutcome, got: LedgerOutcome, report: ReconciliationReport, entries: number, seconds: number): void {
  const row = (label: string, actual: number | string, wanted: number | string) =>
    say(`  ${label.padEnd(28)} ${String(actual).padStart(14)} ${String(wanted).padStart(14)}  ${String(actual) === String(wanted) ? 'ok' : 'DIFFERS'}`);
  say('\nweek close summary                      billstream       expected');
  row('time messages published', expected.entriesIn, expected.entriesIn);
  row('charges posted', got.charged, expected.charged);
  row('reversals posted', got.reversed, expected.reversed);
  row('milestones charged', got.milestones, expected.milestonesCharged);
  row('approved non-billable', got.nonBillable, expected.nonBillable);
  row('held (cap_exceeded)', got.held, expected.held);
  const codes = [...new Set([...Object.keys(expected.exceptionsByCode), ...Object.keys(got.exceptionsByCode)])].sort();
  for (const code of codes) row(`exceptions ${code}`, got.exceptionsByCode[code] ?? 0, expected.exceptionsByCode[code] ?? 0);
  say(`  duplicates dropped: ${got.duplicates} of ${expected.duplicates} sent, stale revisions ignored: ${got.stale} of ${expected.stale} sent`);
  say('  (the rest of both never reached billstream: JetStream\'s duplicate window drops a redelivery under the same Nats-Msg-Id)');
  for (const currency of Object.keys(expected.erpTotalByCurrency).sort()) {
    row(`ERP total ${currency}`, report.erpTotalByCurrency[currency] ?? '0.00', formatMoney(parseMoney(expected.erpTotalByCurrency[currency] ?? '0.00')));
  }
  say(`\nreconciliation: ${report.ok ? 'ledger and ERP agree' : 'MISMATCH'} — ${report.matched} documents matched, ${report.missingInErp.length} missing in the ERP, ${report.unknownToLedger.length} unknown to the ledger, ${report.amountMismatches.length} amount mismatches`);
  say(`throughput: ${entries.toLocaleString('en-US')} entries settled in ${seconds.toFixed(1)} s (${Math.round(entries / seconds).toLocaleString('en-US')} entries/s, grace waits for never-arriving assignments included)`);
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
