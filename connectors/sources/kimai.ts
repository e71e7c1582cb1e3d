// Kimai timesheets → canonical `time` records, and the pull that reads
// `GET /api/timesheets?user=all&modified_after=…` page by page (`page`, `size`;
// the `X-Total-Pages` header says how many, a page past the last answers 404).
//
// The awkward parts: `begin`/`end` are in the user's local time with an offset
// (`2026-03-02T09:00:00+0100`), so the work date is the date as written;
// `duration` is seconds (breaks already taken off); `end: null` is a running
// record and is skipped; `exported: true` means the record went out with an
// invoice or export, which billstream takes as approved. `modified_after` is
// read in the API user's time zone, and the entity shows no modification time:
// the watermark is the run's start (less an overlap) in that zone, and the
// revision ledger gives an entry a new revision only when its content changed.
import { ConnectorProtocolError } from '../connector-errors.ts';
import type { ConnectorHttpClient } from '../http-client.ts';
import { fingerprint, hoursFromSeconds, isObject, readDate, TimeDraft, utcInstant, type MapContext, type MapOutcome } from './mapping.ts';
import type { PullPage, RunStart, SourcePuller } from './pull-client.ts';

export interface KimaiTimesheet {
  id: number;
  begin: string;
  end: string | null;
  duration: number | null;
  break?: number | null;
  /** An id, or the object with `full=true`. */
  user: number | { id: number };
  project: number | { id: number };
  activity: number | { id: number };
  description?: string | null;
  exported?: boolean;
  billable?: boolean;
  [field: string]: unknown;
}

/**
 * One Kimai timesheet record as a canonical record.
 *
 * entryId `kimai-<id>`; revision from the ledger (`ctx.revision`); idempotency
 * key `kimai:<id>:<content fingerprint>`. Template paths: `project`, `user`,
 * `activity` (an object's `id` is used when the record is expanded).
 */
export function mapKimaiTimesheet(entry: unknown, ctx: MapContext): MapOutcome {
  if (!isObject(entry) || typeof entry.id !== 'number') {
    return { kind: 'invalid', sourceId: '?', errors: [{ field: '(record)', reason: 'is no Kimai timesheet: it has no numeric id' }] };
  }
  const sourceId = String(entry.id);
  if (entry.end === null || entry.end === undefined) {
    return { kind: 'skipped', sourceId, reason: 'the record is still running (end is null)' };
  }
  const draft = new TimeDraft('kimai', sourceId, ctx, entry);
  draft.mapIds();
  if (ctx.revision === undefined) draft.fail('revision', 'Kimai shows no modification time; the revision ledger must provide one');
  else draft.record.revision = ctx.revision;

  const begin = typeof entry.begin === 'string' ? entry.begin : '';
  // The date as the user wrote it: Kimai's begin is local time with its offset.
  const workDate = readDate(draft, 'workDate', 'begin', begin.slice(0, 10));
  if (workDate) draft.record.workDate = workDate;

  const seconds = durationOf(entry);
  if (seconds === null) draft.fail('hours', `duration ${JSON.stringify(entry.duration ?? null)} is no whole number of seconds, and begin/end give none`);
  else draft.record.hours = hoursFromSeconds(seconds);

  draft.record.status = entry.exported === true ? 'approved' : draft.templateStatus('submitted');
  if (typeof entry.description === 'string' && entry.description !== '') draft.record.notes = entry.description;
  if (typeof entry.billable === 'boolean') draft.record.sourceBillable = entry.billable;
  if (typeof entry.exported === 'boolean') draft.record.sourceLocked = entry.exported;
  return draft.finish(`kimai:${sourceId}:${fingerprint(entry)}`);
}

function durationOf(entry: Record<string, unknown>): number | null {
  if (typeof entry.duration === 'number' && Number.isSafeInteger(entry.duration) && entry.duration > 0) return entry.duration;
  const begin = typeof entry.begin === 'string' ? utcInstant(entry.begin) : null;
  const end = typeof entry.end === 'string' ? utcInstant(entry.end) : null;
  if (begin === null || end === null) return null;
  const breakSeconds = typeof entry.break === 'number' ? entry.break : 0;
  const seconds = Math.round((Date.parse(end) - Date.parse(begin)) / 1000) - breakSeconds;
  return seconds >= 0 ? seconds : null;
}

export interface KimaiPullOptions {
  /** Time zone of the API user, in which Kimai reads `modified_after`, `begin` and `end`. @default UTC */
  timeZone?: string;
  /** The watermark is the run's start less this, so clock skew between us and Kimai loses nothing. @default 300 */
  overlapSeconds?: number;
  /** @default 250 */
  pageSize?: number;
}

/** Local wall-clock time `YYYY-MM-DDTHH:mm:ss` of an instant in a zone: Kimai's HTML5 date-time parameter. */
export function kimaiLocalDateTime(instant: string, timeZone: string): string {
  const format = new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  });
  const p = Object.fromEntries(format.formatToParts(Date.parse(instant)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}`;
}

/** `GET timesheets?user=all`: incremental on `modified_after`, backfill on `begin`/`end`, numbered pages. */
export function kimaiPuller(options: KimaiPullOptions = {}): SourcePuller<KimaiTimesheet> {
  const timeZone = options.timeZone ?? 'UTC';
  const overlapMs = (options.overlapSeconds ?? 300) * 1000;
  const pageSize = options.pageSize ?? 250;
  return {
    source: 'kimai',
    usesLedger: true,
    first(run: RunStart) {
      const query = new URLSearchParams({ user: 'all', size: String(pageSize), page: '1', orderBy: 'id', order: 'ASC' });
      if (run.range) {
        query.set('begin', `${run.range.from}T00:00:00`);
        if (run.range.to) query.set('end', `${run.range.to}T23:59:59`);
      } else if (run.watermark) {
        query.set('modified_after', kimaiLocalDateTime(run.watermark, timeZone));
      }
      return `timesheets?${query.toString()}`;
    },
    async fetch(http: ConnectorHttpClient, position: string): Promise<PullPage<KimaiTimesheet>> {
      const { status, headers, body } = await http.request(position, { allowStatus: [404] });
      if (status === 404) return { entries: [], next: null };
      if (!Array.isArray(body)) throw new ConnectorProtocolError('kimai', `the answer to ${position} is no list of timesheets`);
      const [path = '', queryText = ''] = position.split('?');
      const query = new URLSearchParams(queryText);
      const page = Number(query.get('page') ?? '1');
      const totalPages = Number(headers.get('x-total-pages') ?? Number.NaN);
      const more = Number.isFinite(totalPages) ? page < totalPages : body.length >= pageSize;
      query.set('page', String(page + 1));
      const total = Number(headers.get('x-total-count') ?? Number.NaN);
      return { entries: body as KimaiTimesheet[], next: more ? `${path}?${query.toString()}` : null, ...(Number.isFinite(total) ? { total } : {}) };
    },
    watermarkOf: () => null,
    runWatermark: (run) => new Date(Date.parse(run.startedAt) - overlapMs).toISOString(),
    sourceIdOf: (entry) => String(entry.id),
    map: mapKimaiTimesheet,
  };
}
