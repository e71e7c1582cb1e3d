// `billstream trace <entryId>`: the traceId of each revision and its Jaeger URL;
// when Jaeger's query API (`${JAEGER_UI_URL}/api/traces/<id>`) answers, the
// trace's span tree too: each span with its offset, duration, status, the ids
// it carries and the traces it links to (the assignment, the ERP batch).
import { loadConfig } from '../config.ts';
import { openLedger } from '../../pipeline/state/orm.ts';

/** The parts of Jaeger's JSON trace format (query API v1) the tree needs. */
export interface JaegerTrace {
  traceID: string;
  spans: {
    traceID: string;
    spanID: string;
    operationName: string;
    references?: { refType: 'CHILD_OF' | 'FOLLOWS_FROM'; traceID: string; spanID: string }[];
    /** Microseconds since the epoch. */
    startTime: number;
    /** Microseconds. */
    duration: number;
    tags?: { key: string; value: unknown }[];
  }[];
}

const SHOWN_TAGS = ['billstream.stage', 'billstream.exception_code', 'billstream.erp.external_id', 'billstream.erp.document_id', 'billstream.assignment_id', 'messaging.batch.message_count', 'error.type'];

/** Renders a trace as an indented tree, children under their parent in start order. */
export function renderSpanTree(jaeger: JaegerTrace): string[] {
  const spans = [...jaeger.spans].sort((a, b) => a.startTime - b.startTime);
  const ids = new Set(spans.map((s) => s.spanID));
  const parentOf = (s: JaegerTrace['spans'][number]) => s.references?.find((r) => r.refType === 'CHILD_OF' && r.traceID === s.traceID)?.spanID;
  const children = new Map<string | undefined, JaegerTrace['spans']>();
  for (const span of spans) {
    const parent = parentOf(span);
    const key = parent && ids.has(parent) ? parent : undefined;
    children.set(key, [...(children.get(key) ?? []), span]);
  }
  const start = spans[0]?.startTime ?? 0;
  const lines: string[] = [];
  const walk = (parent: string | undefined, depth: number) => {
    for (const span of children.get(parent) ?? []) {
      const tags = new Map((span.tags ?? []).map((t) => [t.key, t.value]));
      const failed = tags.get('otel.status_code') === 'ERROR' || tags.get('error') === true;
      const shown = SHOWN_TAGS.filter((k) => tags.has(k)).map((k) => `${k.replace(/^billstream\./, '')}=${String(tags.get(k))}`);
      const links = (span.references ?? []).filter((r) => r.refType === 'FOLLOWS_FROM' || r.traceID !== span.traceID).map((r) => `${r.traceID}/${r.spanID}`);
      const orphan = parentOf(span) !== undefined && !ids.has(parentOf(span) as string) ? ' (parent not exported)' : '';
      lines.push(
        `${'  '.repeat(depth)}${span.operationName}  +${((span.startTime - start) / 1000).toFixed(1)} ms  ${(span.duration / 1000).toFixed(2)} ms` +
        `${failed ? '  ERROR' : ''}${shown.length ? `  ${shown.join(' ')}` : ''}${links.length ? `  → links ${links.join(', ')}` : ''}${orphan}`,
      );
      walk(span.spanID, depth + 1);
    }
  };
  walk(undefined, 1);
  return lines;
}

async function fetchTrace(ui: string, traceId: string): Promise<JaegerTrace | string> {
  try {
    const res = await fetch(`${ui}/api/traces/${traceId}`, { signal: AbortSignal.timeout(3_000) });
    if (!res.ok) return `Jaeger answered ${res.status}${res.status === 404 ? ' (not exported yet, sampled out, or past its retention)' : ''}`;
    const body = (await res.json()) as { data?: JaegerTrace[] };
    return body.data?.[0] ?? 'Jaeger returned no trace';
  } catch (err) {
    return `Jaeger's query API did not answer (${err instanceof Error ? err.message : String(err)})`;
  }
}

export async function runTrace(args: string[]): Promise<number> {
  const entryId = args[0];
  if (!entryId) {
    console.error('usage: billstream trace <entryId>');
    return 2;
  }
  const config = loadConfig();
  const ui = (process.env.JAEGER_UI_URL ?? 'http://localhost:16686').replace(/\/$/, '');
  const orm = await openLedger({ databaseUrl: config.DATABASE_URL, poolSize: 1 });
  try {
    const rows = await orm.em.fork().execute<{ revision: number; stage: string; trace_id: string | null }[]>(
      'select revision, stage, trace_id from entry_revision where entry_id = ? order by revision', [entryId]);
    if (rows.length === 0) {
      console.error(`billstream: entry ${entryId} is not in the ledger`);
      return 1;
    }
    for (const row of rows) {
      const url = row.trace_id ? `${ui}/trace/${row.trace_id}` : '(no trace recorded)';
      console.log(`${entryId} revision ${row.revision} [${row.stage}] traceId ${row.trace_id ?? '-'} ${url}`);
      if (!row.trace_id) continue;
      const trace = await fetchTrace(ui, row.trace_id);
      if (typeof trace === 'string') console.log(`  (${trace})`);
      else for (const line of renderSpanTree(trace)) console.log(line);
    }
    return 0;
  } finally {
    await orm.close();
  }
}
