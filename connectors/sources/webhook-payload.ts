// Time entries pushed by a source (through POST /v1/webhooks/{source}) mapped
// exactly like pulled ones. A payload may be one native entry, a list of them,
// or an envelope around one (`payload`, as Toggl's webhooks send it; `data`;
// `time_entry`). A Toggl "deleted" event whose entry lacks server_deleted_at
// is dated by the event, so it still maps to a rejected revision.
import { mapClockifyEntry } from './clockify.ts';
import type { RevisionLedger } from './cursor-store.ts';
import { mapHarvestEntry } from './harvest.ts';
import { mapKimaiTimesheet } from './kimai.ts';
import { fingerprint, isObject, type IdMapping, type MapContext, type MapOutcome, type SourceName } from './mapping.ts';
import { mapTogglEntry } from './toggl.ts';

const MAPPERS: Record<SourceName, (entry: unknown, ctx: MapContext) => MapOutcome> = {
  harvest: mapHarvestEntry,
  toggl: mapTogglEntry,
  clockify: mapClockifyEntry,
  kimai: mapKimaiTimesheet,
};

/** Sources whose entries carry no update time: their revision comes from the ledger. */
const LEDGER_SOURCES: ReadonlySet<SourceName> = new Set(['clockify', 'kimai']);

export class WebhookPayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookPayloadError';
  }
}

export const isWebhookPayloadError = (err: unknown): err is WebhookPayloadError => err instanceof WebhookPayloadError;

/** The native entries a payload holds. @throws WebhookPayloadError for a payload that holds none. */
export function entriesOfPayload(source: SourceName, payload: unknown): unknown[] {
  if (Array.isArray(payload)) return payload;
  if (!isObject(payload)) throw new WebhookPayloadError(`a ${source} webhook body must be a time entry, a list of them, or an envelope with "payload"`);
  for (const field of ['payload', 'data', 'time_entry'] as const) {
    const inner = payload[field];
    if (isObject(inner)) {
      const metadata = isObject(payload.metadata) ? payload.metadata : {};
      if (source === 'toggl' && metadata.action === 'deleted' && !inner.server_deleted_at) {
        return [{ ...inner, server_deleted_at: typeof payload.created_at === 'string' ? payload.created_at : inner.at }];
      }
      return [inner];
    }
    if (Array.isArray(inner)) return inner;
  }
  return [payload];
}

export interface WebhookMappingContext {
  ids: IdMapping;
  /** Required for Clockify and Kimai. */
  ledger?: RevisionLedger;
  /** When the webhook arrived (ISO): the revision of a changed ledger entry. */
  receivedAt: string;
}

/** Maps every entry of a webhook payload. */
export async function mapWebhookPayload(source: SourceName, payload: unknown, ctx: WebhookMappingContext): Promise<MapOutcome[]> {
  const map = MAPPERS[source];
  const outcomes: MapOutcome[] = [];
  for (const entry of entriesOfPayload(source, payload)) {
    if (LEDGER_SOURCES.has(source)) {
      if (!ctx.ledger) throw new TypeError(`${source} webhooks need the revision ledger`);
      const id = isObject(entry) && (typeof entry.id === 'string' || typeof entry.id === 'number') ? String(entry.id) : null;
      if (id === null) {
        outcomes.push(map(entry, { ids: ctx.ids }));
        continue;
      }
      const revision = await ctx.ledger.revisionFor(id, fingerprint(entry), ctx.receivedAt);
      outcomes.push(map(entry, { ids: ctx.ids, revision }));
    } else {
      outcomes.push(map(entry, { ids: ctx.ids }));
    }
  }
  return outcomes;
}
