// Master data through templates: a CSV or JSON file (or an HTTP answer) of
// projects with their tasks, assignments, consultants or rate cards becomes
// canonical records. Rows that share the template's `groupBy` value make one
// record; every record is validated against CONTRACT §2; rate cards of one
// contract and role whose effective ranges overlap are refused, both of them,
// with an error that names both. Pure: the caller publishes.
import { createHash } from 'node:crypto';
import { defaultMsgId, recordId, validateRecord } from '../../pipeline/model/records.ts';
import type { RecordByKind, RecordKind } from '../../pipeline/model/types.ts';
import { isCsvFormatError, parseCsvRecords } from '../csv.ts';
import { evaluate, isPlainObject, valueAt, type Template } from './template.ts';

/** One canonical record made from one or more rows. */
export interface MappedRecord {
  kind: RecordKind;
  record: Record<string, unknown>;
  /** Stable for equal content: `tpl:<template>:<kind>:<id>:<revision>:<content hash>`. */
  msgId: string;
  /** Where it came from: CSV line numbers, or 1-based positions in the JSON list. */
  rows: number[];
}

export interface MappingError {
  rows: number[];
  field: string;
  reason: string;
}

export interface MasterDataResult {
  template: { name: string; version: number };
  records: MappedRecord[];
  errors: MappingError[];
}

interface Row {
  at: number;
  value: unknown;
}

/** The rows of a file as the template reads it. @throws only for a file that is no CSV or JSON at all. */
export function readRows(template: Template, content: string | unknown): { rows: Row[] } | { error: string } {
  if (template.input.format === 'csv') {
    if (typeof content !== 'string') return { error: 'the template reads CSV but the input is no text' };
    try {
      const { records } = parseCsvRecords(content, template.input.delimiter);
      return { rows: records.map((r) => ({ at: r.line, value: r.values })) };
    } catch (err) {
      if (isCsvFormatError(err)) return { error: err.message };
      throw err;
    }
  }
  let document: unknown = content;
  if (typeof content === 'string') {
    try {
      document = JSON.parse(content);
    } catch (err) {
      return { error: `the input is no JSON: ${(err as Error).message}` };
    }
  }
  const list = template.input.recordsPath ? valueAt(document, template.input.recordsPath) : document;
  if (!Array.isArray(list)) {
    return { error: template.input.recordsPath ? `"${template.input.recordsPath}" in the document is no list of records` : 'the document is no list of records; set input.recordsPath' };
  }
  return { rows: list.map((value, i) => ({ at: i + 1, value })) };
}

/**
 * Maps a whole file with a template.
 *
 * @param content CSV text, JSON text, or an already parsed JSON document.
 */
export function mapMasterData(template: Template, content: string | unknown): MasterDataResult {
  const result: MasterDataResult = { template: { name: template.name, version: template.version }, records: [], errors: [] };
  const read = readRows(template, content);
  if ('error' in read) {
    result.errors.push({ rows: [], field: '(file)', reason: read.error });
    return result;
  }

  const groups = new Map<string, Row[]>();
  for (const row of read.rows) {
    if (!isPlainObject(row.value)) {
      result.errors.push({ rows: [row.at], field: '(record)', reason: 'is no object' });
      continue;
    }
    let key = `#${row.at}`;
    if (template.groupBy) {
      const group = evaluate(template.groupBy, row.value);
      if (group.kind === 'error') {
        result.errors.push({ rows: [row.at], field: '(groupBy)', reason: group.reason });
        continue;
      }
      if (group.kind === 'value') key = `=${JSON.stringify(group.value)}`;
    }
    const rows = groups.get(key);
    if (rows) rows.push(row);
    else groups.set(key, [row]);
  }

  for (const rows of groups.values()) {
    const first = rows[0] as Row;
    const at = rows.map((r) => r.at);
    const record: Record<string, unknown> = {};
    const errors: MappingError[] = [];
    for (const [field, expr] of Object.entries(template.fields)) {
      const value = evaluate(expr, first.value, { group: rows.map((r) => r.value) });
      if (value.kind === 'error') errors.push({ rows: at, field, reason: value.reason });
      else if (value.kind === 'value') record[field] = value.value;
    }
    if (errors.length > 0) {
      result.errors.push(...errors);
      continue;
    }
    const validation = validateRecord(template.kind, record);
    if (!validation.ok) {
      result.errors.push(...validation.errors.map((e) => ({ rows: at, field: e.field, reason: e.reason })));
      continue;
    }
    const canonical = validation.record as Record<string, unknown>;
    result.records.push({ kind: template.kind, record: canonical, msgId: masterDataMsgId(template, canonical), rows: at });
  }

  if (template.kind === 'ratecard') rejectOverlappingRatecards(result);
  return result;
}

/** Changes with the content (so an edit is never dropped as a duplicate) and stays put when the content does. */
export function masterDataMsgId(template: Pick<Template, 'name' | 'kind'>, record: Record<string, unknown>): string {
  const hash = createHash('sha256').update(JSON.stringify(record)).digest('hex').slice(0, 16);
  const base = defaultMsgId(template.kind, record as unknown as RecordByKind[RecordKind]);
  return `tpl:${template.name}:${base}:${hash}`;
}

interface Span {
  mapped: MappedRecord;
  from: string;
  to: string | null;
}

/**
 * Refuses rate cards whose effective ranges overlap for one contract and role:
 * two rates for one day would make the rate of an entry depend on arrival order.
 * Both are removed from the records; each gets an error naming the other.
 */
export function rejectOverlappingRatecards(result: MasterDataResult): void {
  const byKey = new Map<string, Span[]>();
  for (const mapped of result.records) {
    if (mapped.kind !== 'ratecard') continue;
    const card = mapped.record as unknown as RecordByKind['ratecard'];
    const key = `${card.contractId}\u0000${card.role}`;
    const spans = byKey.get(key) ?? [];
    spans.push({ mapped, from: card.effectiveFrom, to: card.effectiveTo ?? null });
    byKey.set(key, spans);
  }
  const rejected = new Set<MappedRecord>();
  const describe = (s: Span) => `${s.from} → ${s.to ?? 'open'} (${s.mapped.rows.length === 1 ? 'row' : 'rows'} ${s.mapped.rows.join(', ')})`;
  for (const spans of byKey.values()) {
    for (let i = 0; i < spans.length; i++) {
      for (let j = i + 1; j < spans.length; j++) {
        const a = spans[i] as Span;
        const b = spans[j] as Span;
        // effectiveTo is exclusive: [from, to).
        const overlap = (b.to === null || a.from < b.to) && (a.to === null || b.from < a.to);
        if (!overlap) continue;
        const card = a.mapped.record as unknown as RecordByKind['ratecard'];
        const reason = `ratecard of contract ${card.contractId}, role ${card.role}: ${describe(a)} overlaps ${describe(b)}; effective ranges of one contract and role must not overlap (effectiveTo is exclusive)`;
        for (const span of [a, b]) {
          rejected.add(span.mapped);
          result.errors.push({ rows: span.mapped.rows, field: 'effectiveFrom', reason });
        }
      }
    }
  }
  if (rejected.size > 0) result.records = result.records.filter((r) => !rejected.has(r));
}

/** `consultant c-1`, `ratecard C-1:senior:2026-01-01`: a record as a person names it. */
export function describeRecord(mapped: Pick<MappedRecord, 'kind' | 'record'>): string {
  return `${mapped.kind} ${recordId(mapped.kind, mapped.record as unknown as RecordByKind[RecordKind])}`;
}
