// GET /v1/entries/{entryId} (CONTRACT §5): the lifecycle of every revision of a
// time entry, read from the ledger: the stage it reached and when, what it was
// billed, the exceptions it raised and the ERP documents it produced.
import type { MikroORM } from '@mikro-orm/postgresql';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ID_PATTERN, REASONS } from '../../pipeline/model/records.ts';
import { HTTP_ERROR_CODES, HttpError } from './errors.ts';
import { hoursOrNull, instantSql, moneyOrNull } from './ledger-sql.ts';

export interface RevisionStages {
  firstSeenAt: string | null;
  approvedAt: string | null;
  enrichedAt: string | null;
  decidedAt: string | null;
  postedAt: string | null;
}

export interface EntryException {
  id: string;
  code: string;
  status: string;
  message: string;
}

export interface ErpDocument {
  externalId: string;
  /** charge | reversal */
  kind: string;
  documentId: string | null;
  /** pending | posted | rejected */
  status: string;
  amount: string;
  hours: string;
  invoiceId: string | null;
}

export interface RevisionLifecycle {
  revision: number | null;
  /** submitted | approved | rejected, as the revision said */
  status: string | null;
  /**
   * The furthest stage reached: the ledger's stage (waiting, charged,
   * non_billable, not_chargeable, held, exception, reversed, stale, ...), with
   * `charged` advanced to `posted` once the ERP holds the charge and to
   * `invoiced` once an invoice carries it. `quarantined` for a revision known
   * only from an exception (it never passed validation).
   */
  stage: string;
  stages: RevisionStages;
  billable: boolean | null;
  role: string | null;
  rate: string | null;
  amount: string | null;
  currency: string | null;
  hours: string | null;
  exceptions: EntryException[];
  erpDocuments: ErpDocument[];
  invoiceId: string | null;
  traceId: string | null;
  /** What a waiting revision waits for (project, assignment, rate), else null. */
  waitingFor: string | null;
}

export interface EntryLifecycle {
  entryId: string;
  projectId: string | null;
  revisions: RevisionLifecycle[];
}

interface RevisionRow {
  revision: number;
  project_id: string;
  status: string;
  stage: string;
  waiting_for: string | null;
  billable: boolean | null;
  role: string | null;
  rate_minor: string | null;
  amount_minor: string | null;
  currency: string | null;
  hours_hundredths: string;
  trace_id: string | null;
  first_seen_at: string;
  approved_at: string | null;
  enriched_at: string | null;
  decided_at: string | null;
}

interface ExceptionRow {
  id: string;
  code: string;
  status: string;
  message: string;
  revision: number | null;
  project_id: string | null;
  record: unknown;
  first_seen_at: string;
}

interface DocumentRow {
  external_id: string;
  kind: string;
  revision: number | null;
  document_id: string | null;
  status: string;
  amount_minor: string;
  hours_hundredths: string;
  invoice_id: string | null;
  posted_at: string | null;
}

const paramsSchema = z.object({ entryId: z.string().regex(ID_PATTERN, { error: REASONS.id }) });

/** Reads one entry's lifecycle; null when the ledger has never seen the entry. */
export async function readEntryLifecycle(orm: MikroORM, entryId: string): Promise<EntryLifecycle | null> {
  const em = orm.em.fork();
  const [revisions, exceptions, documents] = await Promise.all([
    em.execute<RevisionRow[]>(
      `select revision, project_id, status, stage, waiting_for, billable, role, rate_minor, amount_minor, currency, hours_hundredths, trace_id,
              ${instantSql('first_seen_at')} as first_seen_at, ${instantSql('approved_at')} as approved_at,
              ${instantSql('enriched_at')} as enriched_at, ${instantSql('decided_at')} as decided_at
         from entry_revision where entry_id = ? order by revision`,
      [entryId],
    ),
    em.execute<ExceptionRow[]>(
      `select id, code, status, message, revision, project_id, record, ${instantSql('first_seen_at')} as first_seen_at
         from billing_exception e where entry_id = ? order by e.first_seen_at, e.id`,
      [entryId],
    ),
    em.execute<DocumentRow[]>(
      `select external_id, kind, revision, document_id, status, amount_minor, hours_hundredths, invoice_id, ${instantSql('posted_at')} as posted_at
         from erp_outbox where entry_id = ? order by id`,
      [entryId],
    ),
  ]);
  if (revisions.length === 0 && exceptions.length === 0) return null;

  const lifecycles: RevisionLifecycle[] = revisions.map((row) => {
    // A reversal row carries the revision it reverses, so it lists under that revision.
    const docs = documents.filter((d) => d.revision === row.revision);
    const charge = docs.find((d) => d.kind !== 'reversal') ?? null;
    let stage = row.stage;
    if (stage === 'charged' && charge?.status === 'posted') stage = charge.invoice_id !== null ? 'invoiced' : 'posted';
    return {
      revision: row.revision,
      status: row.status,
      stage,
      stages: {
        firstSeenAt: row.first_seen_at,
        approvedAt: row.approved_at,
        enrichedAt: row.enriched_at,
        decidedAt: row.decided_at,
        postedAt: charge?.posted_at ?? null,
      },
      billable: row.billable,
      role: row.role,
      rate: moneyOrNull(row.rate_minor),
      amount: moneyOrNull(row.amount_minor),
      currency: row.currency,
      hours: hoursOrNull(row.hours_hundredths),
      exceptions: exceptions.filter((e) => e.revision === row.revision).map(exceptionOf),
      erpDocuments: docs.map(documentOf),
      invoiceId: charge?.invoice_id ?? null,
      traceId: row.trace_id,
      waitingFor: row.waiting_for,
    };
  });

  // Revisions refused before they reached an actor (invalid_record) exist only
  // as exceptions; they are part of the entry's story too.
  const known = new Set(revisions.map((r) => r.revision));
  const quarantined = new Map<number | null, ExceptionRow[]>();
  for (const e of exceptions) {
    if (e.revision !== null && known.has(e.revision)) continue;
    quarantined.set(e.revision, [...(quarantined.get(e.revision) ?? []), e]);
  }
  for (const [revision, rows] of quarantined) {
    const first = rows[0] as ExceptionRow;
    const record = first.record !== null && typeof first.record === 'object' ? (first.record as Record<string, unknown>) : {};
    lifecycles.push({
      revision,
      status: typeof record.status === 'string' ? record.status : null,
      stage: 'quarantined',
      stages: { firstSeenAt: first.first_seen_at, approvedAt: null, enrichedAt: null, decidedAt: null, postedAt: null },
      billable: null, role: null, rate: null, amount: null, currency: null, hours: null,
      exceptions: rows.map(exceptionOf),
      erpDocuments: [],
      invoiceId: null,
      traceId: null,
      waitingFor: null,
    });
  }
  lifecycles.sort((a, b) => (a.revision ?? 0) - (b.revision ?? 0));

  const projectId = revisions.at(-1)?.project_id ?? exceptions.find((e) => e.project_id !== null)?.project_id ?? null;
  return { entryId, projectId, revisions: lifecycles };
}

function exceptionOf(row: ExceptionRow): EntryException {
  return { id: row.id, code: row.code, status: row.status, message: row.message };
}

function documentOf(row: DocumentRow): ErpDocument {
  return {
    externalId: row.external_id,
    kind: row.kind,
    documentId: row.document_id,
    status: row.status,
    amount: moneyOrNull(row.amount_minor) ?? '0.00',
    hours: hoursOrNull(row.hours_hundredths) ?? '0.00',
    invoiceId: row.invoice_id,
  };
}

export function registerEntriesRoute(app: FastifyInstance, orm: MikroORM): void {
  app.get<{ Params: z.infer<typeof paramsSchema> }>('/v1/entries/:entryId', { schema: { params: paramsSchema } }, async (request) => {
    const lifecycle = await readEntryLifecycle(orm, request.params.entryId);
    if (lifecycle === null) {
      throw new HttpError(404, HTTP_ERROR_CODES.notFound, `entry ${request.params.entryId} is unknown: no revision of it has been ingested`, {
        details: { entryId: request.params.entryId },
      });
    }
    return lifecycle;
  });
}
