// Persisting reference data: a batch of consultant, project, assignment and
// rate-card records is upserted in one statement per kind, a later revision
// replacing an earlier one and a lower one ignored (and counted as stale).
// Set-based SQL (jsonb_to_recordset) rather than one ORM flush per record:
// month-end loads bring tens of thousands of assignments at once.
import type { EntityManager } from '@mikro-orm/postgresql';
import { parseMoney } from './model/money.ts';
import type { AssignmentRecord, ConsultantRecord, ProjectRecord, RatecardRecord, RecordByKind } from './model/types.ts';
import { ratecardId, ReferenceView } from './reference-view.ts';
import { nativeQuery } from './state/native-sql.ts';

export type ReferenceKind = 'consultant' | 'project' | 'assignment' | 'ratecard';
export const REFERENCE_KINDS: readonly ReferenceKind[] = ['consultant', 'project', 'assignment', 'ratecard'];

export interface ReferenceItem<K extends ReferenceKind = ReferenceKind> {
  kind: K;
  record: RecordByKind[K];
  /** traceparent of the span that recorded it (kept for assignments, for entry links). */
  spanContext?: string | null;
}

export interface StoredReferences {
  applied: ReferenceItem[];
  stale: ReferenceItem[];
}

function idOf(item: ReferenceItem): string {
  switch (item.kind) {
    case 'consultant': return (item.record as ConsultantRecord).consultantId;
    case 'project': return (item.record as ProjectRecord).projectId;
    case 'assignment': return (item.record as AssignmentRecord).assignmentId;
    case 'ratecard': return ratecardId(item.record as RatecardRecord);
  }
}

function revisionOf(item: ReferenceItem): number {
  return (item.record as { revision?: number }).revision ?? 1;
}

const UPSERT: Record<ReferenceKind, { sql: string; row: (item: ReferenceItem) => Record<string, unknown> }> = {
  consultant: {
    sql: `insert into consultant as t (consultant_id, home_region, cost_rate_minor, currency, revision, record, updated_at)
      select x.id, x.home_region, x.cost_rate_minor, x.currency, x.revision, x.record, now()
      from jsonb_to_recordset($1::jsonb) as x(id text, home_region text, cost_rate_minor bigint, currency text, revision int, record jsonb)
      on conflict (consultant_id) do update set home_region = excluded.home_region, cost_rate_minor = excluded.cost_rate_minor,
        currency = excluded.currency, revision = excluded.revision, record = excluded.record, updated_at = now()
      where t.revision <= excluded.revision
      returning consultant_id as id`,
    row: (item) => {
      const r = item.record as ConsultantRecord;
      return { id: r.consultantId, home_region: r.homeRegion, cost_rate_minor: parseMoney(r.costRate).toString(), currency: r.currency, revision: revisionOf(item), record: r };
    },
  },
  project: {
    sql: `insert into project as t (project_id, customer_id, contract_id, region, currency, billing_model, status, legal_entity, not_to_exceed_minor, revision, record, updated_at)
      select x.id, x.customer_id, x.contract_id, x.region, x.currency, x.billing_model, x.status, x.legal_entity, x.not_to_exceed_minor, x.revision, x.record, now()
      from jsonb_to_recordset($1::jsonb) as x(id text, customer_id text, contract_id text, region text, currency text, billing_model text,
        status text, legal_entity text, not_to_exceed_minor bigint, revision int, record jsonb)
      on conflict (project_id) do update set customer_id = excluded.customer_id, contract_id = excluded.contract_id, region = excluded.region,
        currency = excluded.currency, billing_model = excluded.billing_model, status = excluded.status, legal_entity = excluded.legal_entity,
        not_to_exceed_minor = excluded.not_to_exceed_minor, revision = excluded.revision, record = excluded.record, updated_at = now()
      where t.revision <= excluded.revision
      returning project_id as id`,
    row: (item) => {
      const r = item.record as ProjectRecord;
      return {
        id: r.projectId, customer_id: r.customerId, contract_id: r.contractId, region: r.region, currency: r.currency,
        billing_model: r.billingModel, status: r.status, legal_entity: r.legalEntity,
        not_to_exceed_minor: r.notToExceed === undefined ? null : parseMoney(r.notToExceed).toString(), revision: revisionOf(item), record: r,
      };
    },
  },
  assignment: {
    sql: `insert into assignment as t (assignment_id, consultant_id, project_id, task_id, role, billable, start_date, end_date, revision, record, span_context, updated_at)
      select x.id, x.consultant_id, x.project_id, x.task_id, x.role, x.billable, x.start_date, x.end_date, x.revision, x.record, x.span_context, now()
      from jsonb_to_recordset($1::jsonb) as x(id text, consultant_id text, project_id text, task_id text, role text, billable boolean,
        start_date date, end_date date, revision int, record jsonb, span_context text)
      on conflict (assignment_id) do update set consultant_id = excluded.consultant_id, project_id = excluded.project_id, task_id = excluded.task_id,
        role = excluded.role, billable = excluded.billable, start_date = excluded.start_date, end_date = excluded.end_date,
        revision = excluded.revision, record = excluded.record, span_context = excluded.span_context, updated_at = now()
      where t.revision <= excluded.revision
      returning assignment_id as id`,
    row: (item) => {
      const r = item.record as AssignmentRecord;
      return {
        id: r.assignmentId, consultant_id: r.consultantId, project_id: r.projectId, task_id: r.taskId, role: r.role, billable: r.billable,
        start_date: r.startDate, end_date: r.endDate, revision: revisionOf(item), record: r, span_context: item.spanContext ?? null,
      };
    },
  },
  ratecard: {
    sql: `insert into ratecard as t (ratecard_id, contract_id, role, rate_minor, currency, effective_from, effective_to, revision, record, updated_at)
      select x.id, x.contract_id, x.role, x.rate_minor, x.currency, x.effective_from, x.effective_to, x.revision, x.record, now()
      from jsonb_to_recordset($1::jsonb) as x(id text, contract_id text, role text, rate_minor bigint, currency text, effective_from date,
        effective_to date, revision int, record jsonb)
      on conflict (ratecard_id) do update set rate_minor = excluded.rate_minor, currency = excluded.currency, effective_to = excluded.effective_to,
        revision = excluded.revision, record = excluded.record, updated_at = now()
      where t.revision <= excluded.revision
      returning ratecard_id as id`,
    row: (item) => {
      const r = item.record as RatecardRecord;
      return {
        id: ratecardId(r), contract_id: r.contractId, role: r.role, rate_minor: parseMoney(r.rate).toString(), currency: r.currency,
        effective_from: r.effectiveFrom, effective_to: r.effectiveTo ?? null, revision: revisionOf(item), record: r,
      };
    },
  },
};

/**
 * Stores a batch of reference records inside the caller's transaction. Within the
 * batch the highest revision of each record wins (the later one on a tie, as the
 * stream delivered it); against the ledger, a lower revision than stored is stale.
 */
export async function storeReferences(em: EntityManager, items: readonly ReferenceItem[]): Promise<StoredReferences> {
  const stale: ReferenceItem[] = [];
  const applied: ReferenceItem[] = [];
  for (const kind of REFERENCE_KINDS) {
    const latest = new Map<string, ReferenceItem>();
    for (const item of items) {
      if (item.kind !== kind) continue;
      const id = idOf(item);
      const seen = latest.get(id);
      if (seen && revisionOf(seen) > revisionOf(item)) { stale.push(item); continue; }
      if (seen) stale.push(seen);
      latest.set(id, item);
    }
    if (latest.size === 0) continue;
    const rows = [...latest.values()].map(UPSERT[kind].row);
    // A parameter of its own: em.execute would escape a whole batch's JSON into the statement's text.
    const written = await nativeQuery<{ id: string }>(em, UPSERT[kind].sql, [JSON.stringify(rows)]);
    const writtenIds = new Set(written.map((r) => r.id));
    for (const [id, item] of latest) (writtenIds.has(id) ? applied : stale).push(item);
  }
  return { applied, stale };
}

export function applyToView(view: ReferenceView, items: readonly ReferenceItem[]): void {
  for (const item of items) {
    switch (item.kind) {
      case 'consultant': view.putConsultant(item.record as ConsultantRecord); break;
      case 'project': view.putProject(item.record as ProjectRecord); break;
      case 'assignment': view.putAssignment(item.record as AssignmentRecord, item.spanContext); break;
      case 'ratecard': view.putRatecard(item.record as RatecardRecord); break;
    }
  }
}

/** Rebuilds the view from the ledger at start-up (or reactivation after a restart). */
export async function loadReferenceView(em: EntityManager): Promise<ReferenceView> {
  const view = new ReferenceView();
  for (const r of await em.execute<{ record: ConsultantRecord }[]>('select record from consultant')) view.putConsultant(r.record);
  for (const r of await em.execute<{ record: ProjectRecord }[]>('select record from project')) view.putProject(r.record);
  for (const r of await em.execute<{ record: RatecardRecord }[]>('select record from ratecard')) view.putRatecard(r.record);
  for (const r of await em.execute<{ record: AssignmentRecord; span_context: string | null }[]>('select record, span_context from assignment')) {
    view.putAssignment(r.record, r.span_context);
  }
  return view;
}

/** Projects whose waiting entries this batch may release. */
export function affectedProjects(view: ReferenceView, items: readonly ReferenceItem[]): Set<string> {
  const projects = new Set<string>();
  for (const item of items) {
    switch (item.kind) {
      case 'project': projects.add((item.record as ProjectRecord).projectId); break;
      case 'assignment': projects.add((item.record as AssignmentRecord).projectId); break;
      case 'ratecard': for (const p of view.projectsOfContract((item.record as RatecardRecord).contractId)) projects.add(p); break;
      case 'consultant': break;
    }
  }
  return projects;
}
