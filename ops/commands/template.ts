// `billstream template dry-run <template.json|name> <sample file>` shows what a
// mapping template makes of a file, publishing nothing: the records with their
// message ids and source rows, and every error with its rows, field and reason.
// A name (or `template.<name>`) is read from the billstream_templates KV bucket.
// `template put <file>` stores a template there (the running connectors pick it
// up at once); `template list` lists the stored ones.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../connectors/nats/connection.ts';
import { entriesOfPayload } from '../../connectors/sources/webhook-payload.ts';
import { isSourceName, revisionFromInstant, type MapOutcome, type SourceName } from '../../connectors/sources/mapping.ts';
import { mapClockifyEntry } from '../../connectors/sources/clockify.ts';
import { mapHarvestEntry } from '../../connectors/sources/harvest.ts';
import { mapKimaiTimesheet } from '../../connectors/sources/kimai.ts';
import { mapTogglCsvRow, mapTogglEntry, readTogglCsv } from '../../connectors/sources/toggl.ts';
import { mapMasterData, type MasterDataResult } from '../../connectors/templates/master-data.ts';
import { parseTemplate, templateResolver, type Template } from '../../connectors/templates/template.ts';
import { openTemplateBucket, templateNameOf, TemplateStore } from '../../connectors/templates/template-store.ts';

const USAGE = `usage: billstream template dry-run <template.json|name> <sample file> [--json]
       billstream template put <template.json>
       billstream template list

A name is read from the billstream_templates KV bucket (NATS_URL).`;

async function withNats<T>(work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectNats({ url: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', name: 'billstream-template' });
  try {
    return await work(nc);
  } finally {
    await nc.drain().catch(() => undefined);
  }
}

async function loadTemplate(ref: string): Promise<Template> {
  if (existsSync(ref)) return parseTemplate(JSON.parse(await readFile(ref, 'utf8')));
  const name = templateNameOf(ref);
  if (!name) throw new Error(`${ref} is neither a file nor a template name`);
  return withNats(async (nc) => new TemplateStore(await openTemplateBucket(nc)).get(name));
}

/** A source template's dry run: the sample holds native entries (or a Toggl CSV export). */
export function dryRunSource(template: Template, source: SourceName, sample: string, file: string, now: Date = new Date()): MapOutcome[] {
  const ids = templateResolver(template);
  // The ledger is not consulted in a dry run: sources without update times show the revision a first sighting now would get.
  const revision = revisionFromInstant(now.toISOString()) ?? 1;
  if (source === 'toggl' && file.toLowerCase().endsWith('.csv')) {
    return readTogglCsv(sample).map((row) => mapTogglCsvRow(row.values, { ids, revision }));
  }
  const document = JSON.parse(sample) as unknown;
  const entries = document !== null && typeof document === 'object' && Array.isArray((document as { time_entries?: unknown }).time_entries)
    ? (document as { time_entries: unknown[] }).time_entries
    : entriesOfPayload(source, document);
  const map = { harvest: mapHarvestEntry, toggl: mapTogglEntry, clockify: mapClockifyEntry, kimai: mapKimaiTimesheet }[source];
  return entries.map((entry) => map(entry, { ids, revision }));
}

function printMasterData(result: MasterDataResult): void {
  console.log(`template ${result.template.name} v${result.template.version}: ${result.records.length} records, ${result.errors.length} errors`);
  for (const r of result.records) {
    console.log(`\n${r.kind} from ${r.rows.length === 1 ? 'row' : 'rows'} ${r.rows.join(', ')}  (Nats-Msg-Id ${r.msgId})`);
    console.log(JSON.stringify(r.record, null, 2));
  }
  if (result.errors.length > 0) console.log('\nerrors:');
  for (const e of result.errors) console.log(`  ${e.rows.length === 0 ? 'file' : `${e.rows.length === 1 ? 'row' : 'rows'} ${e.rows.join(', ')}`}: ${e.field}: ${e.reason}`);
}

function printOutcomes(template: Template, outcomes: MapOutcome[]): void {
  const count = (kind: MapOutcome['kind']) => outcomes.filter((o) => o.kind === kind).length;
  console.log(`template ${template.name} v${template.version} (${template.source}): ${count('record')} records, ${count('skipped')} skipped, ${count('invalid')} invalid`);
  for (const o of outcomes) {
    if (o.kind === 'record') console.log(`\nentry ${o.sourceId}  (Nats-Msg-Id ${o.msgId})\n${JSON.stringify(o.record, null, 2)}`);
    else if (o.kind === 'skipped') console.log(`\nentry ${o.sourceId} skipped: ${o.reason}`);
    else console.log(`\nentry ${o.sourceId} invalid:\n${o.errors.map((e) => `  ${e.field}: ${e.reason}`).join('\n')}`);
  }
}

export async function runTemplate(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const [verb, ...rest] = positionals;
  switch (verb) {
    case 'dry-run': {
      const [ref, sampleFile] = rest;
      if (!ref || !sampleFile) {
        console.error(USAGE);
        return 2;
      }
      const template = await loadTemplate(ref);
      const sample = await readFile(sampleFile, 'utf8');
      if (template.kind === 'time' && template.source !== undefined) {
        if (!isSourceName(template.source)) throw new Error(`template ${template.name} names source ${template.source}, which billstream does not know`);
        const outcomes = dryRunSource(template, template.source, sample, sampleFile);
        if (values.json) console.log(JSON.stringify(outcomes, null, 2));
        else printOutcomes(template, outcomes);
        return outcomes.some((o) => o.kind === 'invalid') ? 1 : 0;
      }
      const result = mapMasterData(template, sample);
      if (values.json) console.log(JSON.stringify(result, null, 2));
      else printMasterData(result);
      return result.errors.length > 0 ? 1 : 0;
    }
    case 'put': {
      const [file] = rest;
      if (!file) {
        console.error(USAGE);
        return 2;
      }
      const input = JSON.parse(await readFile(file, 'utf8')) as unknown;
      const stored = await withNats(async (nc) => new TemplateStore(await openTemplateBucket(nc)).put(input));
      console.log(stored.changed
        ? `stored template ${stored.template.name} v${stored.template.version} (KV revision ${stored.revision}); running connectors apply it from their next file or page`
        : `template ${stored.template.name} v${stored.template.version} is stored already, unchanged`);
      return 0;
    }
    case 'list': {
      await withNats(async (nc) => {
        const store = new TemplateStore(await openTemplateBucket(nc));
        for (const name of await store.list()) {
          const template = await store.get(name).catch((err: unknown) => err as Error);
          console.log(template instanceof Error ? `${name}  (invalid: ${template.message})` : `${name}  v${template.version}  ${template.kind}${template.source ? ` (${template.source})` : ''}`);
        }
      });
      return 0;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}
