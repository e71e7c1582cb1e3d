// Harvest API v2 time entries → canonical `time` records, and the pull that
// reads them: `GET /v2/time_entries?updated_since=…` page by page through
// `links.next` (Bearer token plus the `Harvest-Account-Id` header).
//
// The awkward parts: `hours` is decimal hours as a JSON number (rounded half
// away from zero to 2 decimals on its digits, never through a float product);
// a running timer (`is_running`) is still changing and is skipped; approval is
// `is_closed` (approved via Timesheet Approval), `is_locked` only says the entry
// can no longer be edited (approved, invoiced or in a locked period);
// `billable` is Harvest's view, kept as `sourceBillable` — billstream decides
// billability from its own project, task and assignment (CONTRACT §3.5).
import { z } from 'zod';
import { ConnectorProtocolError } from '../connector-errors.ts';
import type { ConnectorHttpClient } from '../http-client.ts';
import {
  hoursFromDecimal,
  isObject,
  readDate,
  revisionFromInstant,
  TimeDraft,
  utcInstant,
  type MapContext,
  type MapOutcome,
} from './mapping.ts';
import type { PullPage, RunStart, SourcePuller } from './pull-client.ts';

/** The fields of a Harvest v2 time entry billstream reads; the rest passes untouched. */
export interface HarvestTimeEntry {
  id: number;
  spent_date: string;
  hours: number | null;
  notes?: string | null;
  is_locked?: boolean;
  is_closed?: boolean;
  is_running?: boolean;
  billable?: boolean;
  updated_at: string;
  user?: { id: number; name?: string };
  project?: { id: number; name?: string; code?: string | null };
  task?: { id: number; name?: string };
  [field: string]: unknown;
}

/**
 * One Harvest time entry as a canonical record.
 *
 * entryId `harvest-<id>`, revision from `updated_at`, idempotency key
 * `harvest:<id>:<updated_at>`; `is_closed` → approved, otherwise the
 * template's status (default submitted).
 */
export function mapHarvestEntry(entry: unknown, ctx: MapContext): MapOutcome {
  if (!isObject(entry) || (typeof entry.id !== 'number' && typeof entry.id !== 'string')) {
    return { kind: 'invalid', sourceId: '?', errors: [{ field: '(record)', reason: 'is no Harvest time entry: it has no numeric id' }] };
  }
  const sourceId = String(entry.id);
  if (entry.is_running === true) return { kind: 'skipped', sourceId, reason: 'the timer is still running; the entry is read again once it stops' };
  const draft = new TimeDraft('harvest', sourceId, ctx, entry);
  draft.mapIds();

  const updatedAt = typeof entry.updated_at === 'string' ? utcInstant(entry.updated_at) : null;
  const revision = updatedAt === null ? null : revisionFromInstant(updatedAt);
  if (updatedAt === null || revision === null) draft.fail('revision', `updated_at ${JSON.stringify(entry.updated_at ?? null)} is no instant; the revision is derived from it`);
  else draft.record.revision = revision;

  const workDate = readDate(draft, 'workDate', 'spent_date', entry.spent_date);
  if (workDate) draft.record.workDate = workDate;

  const hours = typeof entry.hours === 'number' || typeof entry.hours === 'string' ? hoursFromDecimal(entry.hours) : null;
  if (hours === null) draft.fail('hours', `hours ${JSON.stringify(entry.hours ?? null)} is no decimal number of hours`);
  else draft.record.hours = hours;

  draft.record.status = entry.is_closed === true ? 'approved' : draft.templateStatus('submitted');
  if (typeof entry.notes === 'string' && entry.notes !== '') draft.record.notes = entry.notes;
  if (typeof entry.billable === 'boolean') draft.record.sourceBillable = entry.billable;
  if (typeof entry.is_locked === 'boolean') draft.record.sourceLocked = entry.is_locked;

  return draft.finish(`harvest:${sourceId}:${updatedAt ?? 'unknown'}`);
}

const harvestPageSchema = z.looseObject({
  time_entries: z.array(z.looseObject({ id: z.union([z.number(), z.string()]) })),
  total_entries: z.number().optional(),
  links: z.looseObject({ next: z.string().nullable().optional() }).optional(),
});

export interface HarvestPullOptions {
  /** Entries per page (Harvest allows at most 2000). @default 2000 */
  perPage?: number;
  /** `updated_since` of the very first incremental run; without it that run reads every entry of the account. */
  initialUpdatedSince?: string;
}

/** `GET /v2/time_entries`: incremental on `updated_since`, backfill on `from`/`to`, pages through `links.next`. */
export function harvestPuller(options: HarvestPullOptions = {}): SourcePuller<HarvestTimeEntry> {
  const perPage = options.perPage ?? 2000;
  return {
    source: 'harvest',
    usesLedger: false,
    first(run: RunStart) {
      const query = new URLSearchParams({ per_page: String(perPage) });
      if (run.range) {
        query.set('from', run.range.from);
        if (run.range.to) query.set('to', run.range.to);
      } else if (run.watermark ?? options.initialUpdatedSince) {
        query.set('updated_since', (run.watermark ?? options.initialUpdatedSince) as string);
      }
      return `time_entries?${query.toString()}`;
    },
    async fetch(http: ConnectorHttpClient, position: string): Promise<PullPage<HarvestTimeEntry>> {
      const { body } = await http.getJson(position);
      const parsed = harvestPageSchema.safeParse(body);
      if (!parsed.success) {
        throw new ConnectorProtocolError('harvest', `the answer to ${position} is no page of time entries: ${parsed.error.issues[0]?.message ?? ''}`);
      }
      return {
        entries: parsed.data.time_entries as HarvestTimeEntry[],
        next: parsed.data.links?.next ?? null,
        ...(parsed.data.total_entries !== undefined ? { total: parsed.data.total_entries } : {}),
      };
    },
    watermarkOf: (entry) => (typeof entry.updated_at === 'string' ? utcInstant(entry.updated_at) : null),
    runWatermark: () => null,
    sourceIdOf: (entry) => String(entry.id),
    map: mapHarvestEntry,
  };
}
