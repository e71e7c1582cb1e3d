// A turn's items built as the pipeline builds them (decoded, enriched against
// the fixtures' reference data), for specs that drive ProjectActors directly.
import { evaluateEntry } from '../../pipeline/model/billing-rules.ts';
import { decodeRecord } from '../../pipeline/model/records.ts';
import type { TimeItem } from '../../pipeline/project-actor.ts';
import { applyToView, type ReferenceItem } from '../../pipeline/reference-store.ts';
import { ReferenceView } from '../../pipeline/reference-view.ts';
import { assignment, consultant, entry, project, ratecards } from './fixtures.ts';

export const TRACE_PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** The fixtures' project p-1, its consultant, assignment and rate cards. */
export function referenceView(): ReferenceView {
  const view = new ReferenceView();
  applyToView(view, [
    { kind: 'project', record: project }, { kind: 'consultant', record: consultant }, { kind: 'assignment', record: assignment },
    ...ratecards.map((record) => ({ kind: 'ratecard', record })),
  ] as ReferenceItem[]);
  return view;
}

/** The fixture entry with `overrides`, decoded and enriched as the pipeline hands it to a turn; `traced` gives it a trace context. */
export function timeItem(view: ReferenceView, overrides: Record<string, unknown>, traced = false): TimeItem {
  const decoded = decodeRecord('time', JSON.stringify(entry(overrides)));
  if (!decoded.ok) throw new Error('fixture entry does not decode');
  const record = decoded.record;
  const snapshot = view.snapshotFor(record.projectId, record.consultantId);
  return {
    type: 'time', entry: record, outcome: evaluateEntry(record, snapshot), snapshot: { project: snapshot.project, consultant: snapshot.consultant },
    region: 'amer', receivedAt: new Date(), traceParent: traced ? TRACE_PARENT : null, traceId: traced ? TRACE_PARENT.split('-')[1] : null,
  };
}
