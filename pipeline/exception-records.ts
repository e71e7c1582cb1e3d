// Exception rows and their NATS announcements, built the same way wherever an
// exception arises (quarantine, actor turn, ERP rejection), so the queue's ids
// are stable: the same failure of the same record revision is one exception
// whose attempts grow, never a second row.
import { createHash } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { ID_PATTERN, REGION_PATTERN } from './model/records.ts';
import { nativeQuery } from './state/native-sql.ts';
import { queueNatsMessages, type NatsOutboxRow } from './nats-outbox.ts';
import type { ExceptionCode, FieldError } from './model/types.ts';

export interface ExceptionRow {
  id: string;
  code: ExceptionCode;
  record_kind: string;
  entry_id: string | null;
  revision: number | null;
  project_id: string | null;
  region: string;
  message: string;
  errors: FieldError[] | null;
  record: unknown;
  raw: string | null;
}

export interface ExceptionInput {
  code: ExceptionCode;
  recordKind: string;
  /** The record's own id (entryId, milestoneId, ...), when it has a usable one. */
  recordId?: string | null;
  revision?: number | null;
  projectId?: string | null;
  region: string;
  message: string;
  errors?: FieldError[];
  record?: unknown;
  raw?: string | null;
  /** Distinguishes exceptions of records without a usable id (e.g. a stream sequence). */
  discriminator?: string;
}

export function exceptionId(input: Pick<ExceptionInput, 'code' | 'recordKind' | 'recordId' | 'revision' | 'discriminator'>): string {
  const basis = [input.code, input.recordKind, input.recordId ?? '', input.revision ?? '', input.discriminator ?? ''].join('\u0000');
  return `exc_${createHash('sha256').update(basis).digest('hex').slice(0, 24)}`;
}

export function exceptionRow(input: ExceptionInput): ExceptionRow {
  const projectId = input.projectId && ID_PATTERN.test(input.projectId) ? input.projectId : null;
  return {
    id: exceptionId(input),
    code: input.code,
    record_kind: input.recordKind,
    entry_id: input.recordKind === 'time' ? (input.recordId ?? null) : null,
    revision: input.revision ?? null,
    project_id: projectId,
    region: REGION_PATTERN.test(input.region) ? input.region : 'unrouted',
    message: input.message,
    errors: input.errors ?? null,
    record: input.record ?? null,
    raw: input.raw ?? null,
  };
}

export function exceptionAnnouncement(row: ExceptionRow, firstSeenAt: Date, attempts: number, headers: Record<string, string> | null = null): NatsOutboxRow {
  return {
    subject: `exceptions.${row.code}.${row.region}.${row.project_id ?? 'unknown'}`,
    msg_id: `exception:${row.id}:${attempts}`,
    payload: {
      id: row.id, code: row.code, message: row.message, errors: row.errors, recordKind: row.record_kind,
      record: row.record ?? row.raw, firstSeen: firstSeenAt.toISOString(), attempts,
    },
    headers,
  };
}

/**
 * Stores exceptions (an existing open one counts another attempt) and queues
 * their announcements, inside the caller's transaction.
 */
export async function recordExceptions(em: EntityManager, rows: readonly ExceptionRow[], headersFor?: (row: ExceptionRow) => Record<string, string> | null): Promise<void> {
  if (rows.length === 0) return;
  const stored = await nativeQuery<{ id: string; first_seen_at: Date | string; attempts: number }>(em,
    `insert into billing_exception as t (id, code, status, record_kind, entry_id, revision, project_id, region, message, errors, record, raw)
     select x.id, x.code, 'open', x.record_kind, x.entry_id, x.revision, x.project_id, x.region, x.message, x.errors, x.record, x.raw
     from jsonb_to_recordset($1::jsonb) as x(id text, code text, record_kind text, entry_id text, revision int, project_id text,
       region text, message text, errors jsonb, record jsonb, raw text)
     on conflict (id) do update set attempts = t.attempts + 1, last_seen_at = now(), message = excluded.message,
       status = case when t.status = 'dismissed' then t.status else 'open' end
     returning id, first_seen_at, attempts`,
    [JSON.stringify(dedupeById(rows))],
  );
  const byId = new Map(dedupeById(rows).map((r) => [r.id, r]));
  await queueNatsMessages(em, stored.map((s) => {
    const row = byId.get(s.id) as ExceptionRow;
    return exceptionAnnouncement(row, new Date(s.first_seen_at), s.attempts, headersFor?.(row) ?? null);
  }));
}

function dedupeById(rows: readonly ExceptionRow[]): ExceptionRow[] {
  return [...new Map(rows.map((r) => [r.id, r])).values()];
}

/**
 * Adds to the pipeline's counters inside the caller's transaction. Each
 * connection writes its own shard of a counter (the `pipeline_counter` view sums
 * them): with one row per counter, every concurrent turn would wait on that
 * row's lock until the turn before it committed.
 */
export async function addToCounters(em: EntityManager, deltas: Record<string, number>): Promise<void> {
  const rows = Object.entries(deltas).filter(([, v]) => v !== 0).map(([name, value]) => ({ name, value }));
  if (rows.length === 0) return;
  await nativeQuery(em,
    `insert into pipeline_counter_shard as t (name, shard, value)
     select x.name, pg_backend_pid() % 64, x.value from jsonb_to_recordset($1::jsonb) as x(name text, value bigint)
     on conflict (name, shard) do update set value = t.value + excluded.value`,
    [JSON.stringify(rows)],
  );
}
