// Clockify time entries → canonical `time` records, and the pull that reads
// `GET /v1/workspaces/{workspaceId}/user/{userId}/time-entries` per user, page
// by page (`X-Api-Key` header).
//
// The awkward parts: `timeInterval.duration` is an ISO-8601 duration
// (`PT1H30M`) and is null while the timer runs (so is `end`): such entries are
// skipped. Clockify writes explicit nulls (`projectId: null`, `taskId: null`):
// an entry without a project cannot be billed and fails with that reason. The
// entry keeps no update time, so the pull re-reads a lookback window each time
// and the revision ledger gives an entry a new revision only when its content
// changed. `approvalStatus`, when present, is the approval state.
import { ConnectorProtocolError } from '../connector-errors.ts';
import type { ConnectorHttpClient } from '../http-client.ts';
import {
  fingerprint,
  hoursFromSeconds,
  isObject,
  localDate,
  secondsFromIsoDuration,
  TimeDraft,
  type MapContext,
  type MapOutcome,
} from './mapping.ts';
import type { PullPage, RunStart, SourcePuller } from './pull-client.ts';

export interface ClockifyTimeEntry {
  id: string;
  userId?: string;
  projectId?: string | null;
  taskId?: string | null;
  workspaceId?: string;
  billable?: boolean;
  isLocked?: boolean;
  description?: string | null;
  timeInterval: { start: string; end: string | null; duration: string | null };
  approvalStatus?: string | null;
  [field: string]: unknown;
}

const APPROVAL_STATUS: Record<string, 'approved' | 'rejected' | 'submitted'> = {
  APPROVED: 'approved',
  REJECTED: 'rejected',
  PENDING: 'submitted',
};

/**
 * One Clockify time entry as a canonical record.
 *
 * entryId `clockify-<id>`; the revision comes from the ledger (`ctx.revision`);
 * the idempotency key is `clockify:<id>:<content fingerprint>`.
 */
export function mapClockifyEntry(entry: unknown, ctx: MapContext): MapOutcome {
  if (!isObject(entry) || typeof entry.id !== 'string' || entry.id === '') {
    return { kind: 'invalid', sourceId: '?', errors: [{ field: '(record)', reason: 'is no Clockify time entry: it has no id' }] };
  }
  const sourceId = entry.id;
  const interval = isObject(entry.timeInterval) ? entry.timeInterval : null;
  if (interval !== null && (interval.end === null || interval.end === undefined) && (interval.duration === null || interval.duration === undefined)) {
    return { kind: 'skipped', sourceId, reason: 'the timer is still running (timeInterval.end and duration are null)' };
  }
  const draft = new TimeDraft('clockify', sourceId, ctx, entry);
  draft.mapIds();
  if (ctx.revision === undefined) draft.fail('revision', 'Clockify keeps no update time; the revision ledger must provide one');
  else draft.record.revision = ctx.revision;

  if (interval === null) {
    draft.fail('workDate', 'timeInterval is missing');
  } else {
    const workDate = typeof interval.start === 'string' ? localDate(interval.start, draft.timeZone()) : null;
    if (workDate === null) draft.fail('workDate', `timeInterval.start ${JSON.stringify(interval.start ?? null)} is no instant`);
    else draft.record.workDate = workDate;
    const seconds = secondsOf(interval);
    if (seconds === null) draft.fail('hours', `timeInterval.duration ${JSON.stringify(interval.duration ?? null)} is no ISO-8601 duration such as PT1H30M`);
    else draft.record.hours = hoursFromSeconds(seconds);
  }

  const approval = typeof entry.approvalStatus === 'string' ? APPROVAL_STATUS[entry.approvalStatus] : undefined;
  draft.record.status = approval ?? draft.templateStatus('submitted');
  if (typeof entry.description === 'string' && entry.description !== '') draft.record.notes = entry.description;
  if (typeof entry.billable === 'boolean') draft.record.sourceBillable = entry.billable;
  if (typeof entry.isLocked === 'boolean') draft.record.sourceLocked = entry.isLocked;
  return draft.finish(`clockify:${sourceId}:${fingerprint(entry)}`);
}

function secondsOf(interval: Record<string, unknown>): number | null {
  if (typeof interval.duration === 'string') return secondsFromIsoDuration(interval.duration);
  // An explicit null duration with both ends known: the span between them.
  if (typeof interval.start === 'string' && typeof interval.end === 'string') {
    const span = Date.parse(interval.end) - Date.parse(interval.start);
    return Number.isNaN(span) || span < 0 ? null : Math.round(span / 1000);
  }
  return null;
}

export interface ClockifyPullOptions {
  workspaceId: string;
  /** Clockify user ids whose entries are read. */
  userIds: readonly string[];
  /** An incremental run re-reads entries started this many days back. @default 14 */
  lookbackDays?: number;
  /** @default 200 */
  pageSize?: number;
}

interface ClockifyPosition {
  user: number;
  page: number;
  start: string;
  end: string;
}

function encodePosition(p: ClockifyPosition): string {
  return new URLSearchParams({ user: String(p.user), page: String(p.page), start: p.start, end: p.end }).toString();
}

function decodePosition(text: string): ClockifyPosition {
  const q = new URLSearchParams(text);
  return { user: Number(q.get('user') ?? 0), page: Number(q.get('page') ?? 1), start: q.get('start') ?? '', end: q.get('end') ?? '' };
}

/** Per user, page by page, the entries started inside the run's window (lookback or backfill range). */
export function clockifyPuller(options: ClockifyPullOptions): SourcePuller<ClockifyTimeEntry> {
  const pageSize = options.pageSize ?? 200;
  const lookbackMs = (options.lookbackDays ?? 14) * 86_400_000;
  return {
    source: 'clockify',
    usesLedger: true,
    first(run: RunStart) {
      const start = run.range ? `${run.range.from}T00:00:00Z` : new Date(Date.parse(run.startedAt) - lookbackMs).toISOString();
      const end = run.range?.to ? `${run.range.to}T23:59:59Z` : run.startedAt;
      return encodePosition({ user: 0, page: 1, start, end });
    },
    async fetch(http: ConnectorHttpClient, positionText: string): Promise<PullPage<ClockifyTimeEntry>> {
      const position = decodePosition(positionText);
      const userId = options.userIds[position.user];
      if (userId === undefined) return { entries: [], next: null };
      const path = `workspaces/${encodeURIComponent(options.workspaceId)}/user/${encodeURIComponent(userId)}/time-entries`;
      const { body } = await http.getJson(path, { start: position.start, end: position.end, page: position.page, 'page-size': pageSize });
      if (!Array.isArray(body)) throw new ConnectorProtocolError('clockify', `the answer to ${path} is no list of time entries`);
      const more = body.length >= pageSize;
      const next = more
        ? encodePosition({ ...position, page: position.page + 1 })
        : position.user + 1 < options.userIds.length
          ? encodePosition({ ...position, user: position.user + 1, page: 1 })
          : null;
      return { entries: body as ClockifyTimeEntry[], next };
    },
    watermarkOf: () => null,
    runWatermark: (run) => run.startedAt,
    sourceIdOf: (entry) => entry.id,
    map: mapClockifyEntry,
  };
}
