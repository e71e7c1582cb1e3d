// `billstream backfill --source harvest --from 2026-01-01 [--to 2026-01-31]`
// re-reads a date range from a time-capture source into ingest, with a
// progress bar and ETA. Safe to interrupt (Ctrl-C) and re-run: the range has
// its own cursor in KV (billstream_cursors), so the next run resumes at the
// first page not fully published, and every record carries its idempotency
// key, so what is published twice changes nothing downstream.
// `--source toggl --file export.csv` reads a Toggl detailed-report export instead.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { parseConnectorConfig, type ConnectorSpec } from '../../connectors/connector-spec.ts';
import { KV_BUCKETS, openBucket } from '../../connectors/kv-store.ts';
import { connectNats } from '../../connectors/nats/connection.ts';
import { ensureTopology } from '../../connectors/nats/topology.ts';
import { RevisionLedger } from '../../connectors/sources/cursor-store.ts';
import { fingerprint, isSourceName, SOURCE_NAMES, type MapOutcome, type SourceName } from '../../connectors/sources/mapping.ts';
import type { PullProgress } from '../../connectors/sources/pull-client.ts';
import { openSourcePull, SOURCE_CONNECTORS, sourceConfigFromEnv, type SourceConfig } from '../../connectors/sources/source-connectors.ts';
import { mapTogglCsvRow, readTogglCsv, togglCsvEntryId } from '../../connectors/sources/toggl.ts';
import { openTemplateBucket, TemplateRegistry } from '../../connectors/templates/template-store.ts';
import { isCalendarDate } from '../../pipeline/model/records.ts';
import { RECORD_KINDS } from '../../pipeline/model/types.ts';
import { loadConfig } from '../config.ts';
import { natsPublisher, type ProjectRegionLookup } from '../connector-host.ts';

const USAGE = `usage: billstream backfill --source <${SOURCE_NAMES.join('|')}> --from YYYY-MM-DD [--to YYYY-MM-DD] [--config connector.json] [--template name]
       billstream backfill --source toggl --file export.csv [--template name]

The source's settings come from --config (its connector config, see \`billstream connectors <source>\`) over the
environment (e.g. HARVEST_TOKEN, HARVEST_ACCOUNT_ID). NATS_URL and DATABASE_URL as for \`billstream start\`.`;

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * One line of progress: a bar and the ETA when the total is known, the count and rate otherwise.
 *
 * @param done entries handled so far in the whole run; `doneAtStart` of them before this process started (they do not count for the rate).
 */
export function renderProgress(p: { done: number; doneAtStart: number; total?: number; elapsedMs: number; width?: number }): string {
  const rate = p.elapsedMs > 0 ? (p.done - p.doneAtStart) / (p.elapsedMs / 1000) : 0;
  const rateText = `${rate.toFixed(rate < 10 ? 1 : 0)}/s`;
  if (p.total === undefined || p.total === 0) return `${p.done} entries  ${rateText}  ${formatDuration(p.elapsedMs)} elapsed`;
  const width = p.width ?? 30;
  const fraction = Math.min(1, p.done / p.total);
  const filled = Math.round(fraction * width);
  const eta = rate > 0 ? formatDuration(((p.total - p.done) / rate) * 1000) : '?';
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${p.done}/${p.total} entries  ${rateText}  ETA ${fraction >= 1 ? '0s' : eta}`;
}

/** Project regions from the ledger, for records whose template maps no region. Empty when the ledger is out of reach. */
async function ledgerRegions(databaseUrl: string, log: (line: string) => void): Promise<ProjectRegionLookup> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1, connectionTimeoutMillis: 3000 });
  try {
    const { rows } = await pool.query<{ project_id: string; region: string }>('select project_id, region from project');
    const regions = new Map(rows.map((r) => [r.project_id, r.region]));
    return (projectId) => regions.get(projectId);
  } catch (err) {
    log(`billstream: the ledger is out of reach (${err instanceof Error ? err.message : String(err)}); records need a "region" from their template`);
    return () => undefined;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

export async function runBackfill(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { source: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, config: { type: 'string' }, template: { type: 'string' }, file: { type: 'string' } },
  });
  const source = values.source;
  if (!source || !isSourceName(source)) {
    console.error(`${source ? `billstream: unknown source '${source}'\n\n` : ''}${USAGE}`);
    return 2;
  }
  if (values.file !== undefined && source !== 'toggl') {
    console.error('billstream: --file reads a Toggl detailed-report CSV export; use --source toggl');
    return 2;
  }
  if (values.file === undefined && (!values.from || !isCalendarDate(values.from) || (values.to !== undefined && (!isCalendarDate(values.to) || values.to < values.from)))) {
    console.error(`billstream: --from (and --to, not before it) must be dates YYYY-MM-DD\n\n${USAGE}`);
    return 2;
  }

  const billstream = loadConfig();
  const log = (line: string) => console.error(line);
  const nc = await connectNats({ url: billstream.NATS_URL, name: 'billstream-backfill' });
  const registry = new TemplateRegistry(await openTemplateBucket(nc), { onError: (err) => log(`templates: ${String(err)}`) });
  try {
    // Producers may run before billstream first did: the streams are there for them.
    await ensureTopology(await jetstreamManager(nc), RECORD_KINDS, { maxAckPending: billstream.BILLSTREAM_MAX_ACK_PENDING, ackWaitMs: billstream.BILLSTREAM_ACK_WAIT_SECONDS * 1000 });
    await registry.start();
    const publish = natsPublisher(jetstream(nc), await ledgerRegions(billstream.DATABASE_URL, log));

    const fileInput = values.config ? (JSON.parse(await readFile(values.config, 'utf8')) as Record<string, unknown>) : {};
    const input: Record<string, unknown> = { ...sourceConfigFromEnv(source), ...fileInput };
    if (values.template) input.template = values.template;
    if (values.file !== undefined) {
      const templateName = typeof input.template === 'string' ? input.template : 'toggl';
      return await backfillTogglCsv(values.file, templateName, { nc, registry, publish, log });
    }
    const spec: Pick<ConnectorSpec, 'name' | 'config'> = SOURCE_CONNECTORS[source];
    const config = parseConnectorConfig(spec, input) as SourceConfig;
    if (!registry.get(config.template)) {
      log(`billstream: template ${config.template} is not in ${KV_BUCKETS.templates}; store one with \`billstream template put <file>\` (templates there: ${registry.names().join(', ') || 'none'})`);
      return 1;
    }
    return await backfillRange(source, config, { from: values.from as string, ...(values.to ? { to: values.to } : {}) }, { nc, registry, publish, log });
  } finally {
    await registry.stop();
    await nc.drain().catch(() => undefined);
  }
}

interface BackfillDeps {
  nc: Awaited<ReturnType<typeof connectNats>>;
  registry: TemplateRegistry;
  publish: ReturnType<typeof natsPublisher>;
  log: (line: string) => void;
}

function progressWriter(): { update(line: string): void; done(): void } {
  const tty = process.stderr.isTTY;
  let last = 0;
  return {
    update(line) {
      if (tty) process.stderr.write(`\r${line}\u001b[K`);
      else if (Date.now() - last > 2000) {
        process.stderr.write(`${line}\n`);
        last = Date.now();
      }
    },
    done() {
      if (tty) process.stderr.write('\n');
    },
  };
}

function reportInvalid(invalid: Array<{ sourceId: string; errors: Array<{ field: string; reason: string }> }>, log: (line: string) => void): void {
  if (invalid.length === 0) return;
  log(`${invalid.length} entries could not be mapped (fix the template, then run the same backfill again):`);
  for (const i of invalid.slice(0, 20)) log(`  ${i.sourceId}: ${i.errors.map((e) => `${e.field}: ${e.reason}`).join('; ')}`);
  if (invalid.length > 20) log(`  … and ${invalid.length - 20} more`);
}

async function backfillRange(source: SourceName, config: SourceConfig, range: { from: string; to?: string }, deps: BackfillDeps): Promise<number> {
  const progress = progressWriter();
  const started = performance.now();
  const client = await openSourcePull(source, config, {
    nats: deps.nc,
    publish: deps.publish,
    template: (name) => deps.registry.resolver(name),
    range,
    onPage: (p: PullProgress) => {
      progress.update(renderProgress({ done: p.entries, doneAtStart: p.entriesBefore, ...(p.total !== undefined ? { total: p.total } : {}), elapsedMs: performance.now() - started }));
    },
  });
  const interrupt = () => {
    deps.log('\ninterrupted: stopping after the request in flight; run the same command again to resume');
    void client.stop();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    deps.log(`backfill ${source} ${range.from} → ${range.to ?? 'today'} with template ${config.template}`);
    const result = await client.run();
    progress.done();
    deps.log(`${result.complete ? 'complete' : 'interrupted'}${result.resumed ? ' (resumed)' : ''}: ${result.entries} entries read in ${result.pages} pages, ${result.published} published, ${result.skipped} skipped, ${result.invalid.length} not mapped`);
    reportInvalid(result.invalid, deps.log);
    return result.complete ? 0 : 130;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

async function backfillTogglCsv(file: string, templateName: string, deps: BackfillDeps): Promise<number> {
  if (!deps.registry.get(templateName)) {
    deps.log(`billstream: template ${templateName} is not in ${KV_BUCKETS.templates}; give --template`);
    return 1;
  }
  const rows = readTogglCsv(await readFile(file, 'utf8'));
  const ledger = new RevisionLedger(await openBucket(deps.nc, KV_BUCKETS.cursors), 'toggl');
  const progress = progressWriter();
  const started = performance.now();
  const observedAt = new Date().toISOString();
  let stopped = false;
  const interrupt = () => { stopped = true; };
  process.once('SIGINT', interrupt);
  const counts = { published: 0, skipped: 0 };
  const invalid: Array<{ sourceId: string; errors: Array<{ field: string; reason: string }> }> = [];
  try {
    for (const [index, row] of rows.entries()) {
      if (stopped) break;
      const revision = await ledger.revisionFor(`csv${togglCsvEntryId(row.values)}`, fingerprint(row.values), observedAt);
      const outcome: MapOutcome = mapTogglCsvRow(row.values, { ids: deps.registry.resolver(templateName), revision });
      if (outcome.kind === 'record') {
        await deps.publish('time', outcome.record as Record<string, unknown>, outcome.msgId);
        counts.published++;
      } else if (outcome.kind === 'skipped') counts.skipped++;
      else invalid.push({ sourceId: `line ${row.line}`, errors: outcome.errors });
      progress.update(renderProgress({ done: index + 1, doneAtStart: 0, total: rows.length, elapsedMs: performance.now() - started }));
    }
  } finally {
    process.off('SIGINT', interrupt);
  }
  progress.done();
  deps.log(`${stopped ? 'interrupted' : 'complete'}: ${rows.length} rows, ${counts.published} published, ${invalid.length} not mapped`);
  reportInvalid(invalid, deps.log);
  return stopped ? 130 : 0;
}
