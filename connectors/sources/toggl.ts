// Toggl Track API v9 time entries → canonical `time` records, the Toggl
// detailed-report CSV export → the same, and the pull that reads
// `GET /api/v9/me/time_entries?since=<unix>` (entries changed since then,
// deleted ones included).
//
// The awkward parts: `duration` is seconds, converted to 2-decimal hours
// rounded half away from zero in integers; a negative duration marks a timer
// still running (it holds minus the start time) and is skipped; an entry with
// `server_deleted_at` was deleted, which billstream records as a rejected
// revision, so a charge made for it is reversed (CONTRACT §3.8). `start` is
// UTC: the work date is its day in the template's time zone. The CSV export
// carries no id and no update time: its entry id is derived from the person
// and the start, its revision comes from the revision ledger.
import { createHash } from 'node:crypto';
import { ConnectorProtocolError } from '../connector-errors.ts';
import { parseCsvRecords } from '../csv.ts';
import type { ConnectorHttpClient } from '../http-client.ts';
import {
  fingerprint,
  hoursFromSeconds,
  isObject,
  localDate,
  readDate,
  revisionFromInstant,
  secondsFromClock,
  TimeDraft,
  utcInstant,
  type MapContext,
  type MapOutcome,
} from './mapping.ts';
import type { PullPage, RunStart, SourcePuller } from './pull-client.ts';

/** The fields of a Toggl Track v9 time entry billstream reads. */
export interface TogglTimeEntry {
  id: number;
  workspace_id?: number;
  project_id?: number | null;
  task_id?: number | null;
  user_id?: number;
  billable?: boolean;
  start: string;
  stop?: string | null;
  /** Seconds; negative while the timer runs. */
  duration: number;
  description?: string | null;
  /** Last update, UTC. */
  at: string;
  server_deleted_at?: string | null;
  [field: string]: unknown;
}

/**
 * One Toggl v9 time entry as a canonical record.
 *
 * entryId `toggl-<id>`; revision and idempotency key from `at`
 * (`toggl:<id>:<at>`), or from `server_deleted_at` for a deleted entry, which
 * maps to status rejected (`toggl:<id>:<deleted at>:deleted`). Toggl keeps
 * no approvals: the status is the template's (default submitted).
 */
export function mapTogglEntry(entry: unknown, ctx: MapContext): MapOutcome {
  if (!isObject(entry) || (typeof entry.id !== 'number' && typeof entry.id !== 'string')) {
    return { kind: 'invalid', sourceId: '?', errors: [{ field: '(record)', reason: 'is no Toggl time entry: it has no numeric id' }] };
  }
  const sourceId = String(entry.id);
  if (typeof entry.duration === 'number' && entry.duration < 0) {
    return { kind: 'skipped', sourceId, reason: 'the timer is still running (negative duration); the entry is read again once it stops' };
  }
  const draft = new TimeDraft('toggl', sourceId, ctx, entry);
  draft.mapIds();

  const deletedAt = typeof entry.server_deleted_at === 'string' ? utcInstant(entry.server_deleted_at) : null;
  const updatedAt = typeof entry.at === 'string' ? utcInstant(entry.at) : null;
  const changedAt = laterOf(updatedAt, deletedAt);
  const revision = changedAt === null ? null : revisionFromInstant(changedAt);
  if (changedAt === null || revision === null) draft.fail('revision', `at ${JSON.stringify(entry.at ?? null)} is no instant; the revision is derived from it`);
  else draft.record.revision = revision;

  const timeZone = draft.timeZone();
  const workDate = typeof entry.start === 'string' ? localDate(entry.start, timeZone) : null;
  if (workDate === null) draft.fail('workDate', `start ${JSON.stringify(entry.start ?? null)} is no instant`);
  else draft.record.workDate = workDate;

  if (typeof entry.duration !== 'number' || !Number.isSafeInteger(entry.duration)) {
    draft.fail('hours', `duration ${JSON.stringify(entry.duration ?? null)} is no whole number of seconds`);
  } else {
    draft.record.hours = hoursFromSeconds(entry.duration);
  }

  draft.record.status = deletedAt !== null ? 'rejected' : draft.templateStatus('submitted');
  if (typeof entry.description === 'string' && entry.description !== '') draft.record.notes = entry.description;
  if (typeof entry.billable === 'boolean') draft.record.sourceBillable = entry.billable;

  const key = deletedAt !== null ? `toggl:${sourceId}:${deletedAt}:deleted` : `toggl:${sourceId}:${updatedAt ?? 'unknown'}`;
  return draft.finish(key);
}

/** The columns of Toggl's detailed report export, as billstream reads them. */
export const TOGGL_CSV_COLUMNS = {
  user: 'User',
  email: 'Email',
  client: 'Client',
  project: 'Project',
  task: 'Task',
  description: 'Description',
  billable: 'Billable',
  startDate: 'Start date',
  startTime: 'Start time',
  endDate: 'End date',
  endTime: 'End time',
  duration: 'Duration',
  tags: 'Tags',
} as const;

/** The id of an exported row: who, and when they started. An edited row keeps it; its revision moves. */
export function togglCsvEntryId(row: Record<string, string>): string {
  const C = TOGGL_CSV_COLUMNS;
  const identity = [row[C.email] ?? row[C.user] ?? '', row[C.startDate] ?? '', row[C.startTime] ?? ''].join('|');
  return createHash('sha256').update(identity).digest('hex').slice(0, 24);
}

/**
 * One row of a Toggl CSV export (values keyed by the header) as a canonical record.
 *
 * entryId `toggl-csv<24 hex of person and start>`; the revision comes from
 * the ledger (`ctx.revision`); the idempotency key is
 * `toggl-csv:<id>:<content fingerprint>`. Template paths name columns: `Project`, `Email`, `Task`.
 */
export function mapTogglCsvRow(row: Record<string, string>, ctx: MapContext): MapOutcome {
  const C = TOGGL_CSV_COLUMNS;
  const sourceId = `csv${togglCsvEntryId(row)}`;
  const draft = new TimeDraft('toggl', sourceId, ctx, row);
  draft.mapIds();
  if (ctx.revision === undefined) draft.fail('revision', 'the Toggl export keeps no update time; the revision ledger must provide one');
  else draft.record.revision = ctx.revision;
  const workDate = readDate(draft, 'workDate', `column "${C.startDate}"`, row[C.startDate]);
  if (workDate) draft.record.workDate = workDate;
  const seconds = secondsFromClock(row[C.duration] ?? '');
  if (seconds === null) draft.fail('hours', `column "${C.duration}" ${JSON.stringify(row[C.duration] ?? '')} is no duration HH:MM:SS`);
  else draft.record.hours = hoursFromSeconds(seconds);
  draft.record.status = draft.templateStatus('submitted');
  const description = row[C.description];
  if (description) draft.record.notes = description;
  const billable = row[C.billable]?.trim().toLowerCase();
  if (billable === 'yes' || billable === 'no') draft.record.sourceBillable = billable === 'yes';
  return draft.finish(`toggl-csv:${sourceId}:${fingerprint(row)}`);
}

/** The data rows of a Toggl CSV export; the line numbers are the file's. */
export function readTogglCsv(text: string): Array<{ line: number; values: Record<string, string> }> {
  const { header, records } = parseCsvRecords(text);
  for (const column of [TOGGL_CSV_COLUMNS.startDate, TOGGL_CSV_COLUMNS.startTime, TOGGL_CSV_COLUMNS.duration]) {
    if (!header.includes(column)) throw new ConnectorProtocolError('toggl', `the CSV has no "${column}" column; export a Detailed report as CSV`);
  }
  return records;
}

export interface TogglPullOptions {
  /** On the very first run, read entries changed this many days back. @default 30 */
  initialLookbackDays?: number;
}

/**
 * `GET me/time_entries`: incremental with `since` (unix seconds, deleted entries
 * included), backfill with `start_date`/`end_date`. One answer per run, no paging.
 */
export function togglPuller(options: TogglPullOptions = {}): SourcePuller<TogglTimeEntry> {
  const lookbackDays = options.initialLookbackDays ?? 30;
  return {
    source: 'toggl',
    usesLedger: false,
    first(run: RunStart) {
      if (run.range) {
        const query = new URLSearchParams({ start_date: run.range.from, end_date: run.range.to ?? run.startedAt.slice(0, 10) });
        return `me/time_entries?${query.toString()}`;
      }
      const since = run.watermark ? Date.parse(run.watermark) : Date.parse(run.startedAt) - lookbackDays * 86_400_000;
      return `me/time_entries?since=${Math.floor(since / 1000)}`;
    },
    async fetch(http: ConnectorHttpClient, position: string): Promise<PullPage<TogglTimeEntry>> {
      const { body } = await http.getJson(position);
      if (!Array.isArray(body)) throw new ConnectorProtocolError('toggl', `the answer to ${position} is no list of time entries`);
      return { entries: body as TogglTimeEntry[], next: null, total: body.length };
    },
    watermarkOf: (entry) => laterOf(
      typeof entry.at === 'string' ? utcInstant(entry.at) : null,
      typeof entry.server_deleted_at === 'string' ? utcInstant(entry.server_deleted_at) : null,
    ),
    runWatermark: () => null,
    sourceIdOf: (entry) => String(entry.id),
    map: mapTogglEntry,
  };
}

function laterOf(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return Date.parse(b) > Date.parse(a) ? b : a;
}
