// GET /v1/entries/{entryId} (CONTRACT §5): the lifecycle of every revision of a
// time entry, read from the ledger: the stage it reached and when, what it was
// billed, the exceptions it raised and the ERP documents it produced.
import type { MikroORM } from '@mikro-orm/postgresql';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ID_PATTERN, REASONS } from '../../pipeline/model/records.ts';
import { errorBodySchema, HTTP_ERROR_CODES, HttpError } from './errors.ts';
import { hoursOrNull, instantSql, moneyOrNull } from './ledger-sql.ts';

const instant = z.string().nullable();
const money = z.string().nullable();

export const revisionStagesSchema = z.object({
  firstSeenAt: instant.describe('When billstream first received the revision'),
  approvedAt: instant.describe('When the source approved it (its approvedAt)'),
  enrichedAt: instant.describe('When it was enriched with project, assignment and rate'),
  decidedAt: instant.describe('When its project actor decided it (charged, held, exception, ...)'),
  postedAt: instant.describe('When the ERP accepted its charge'),
  invoicedAt: instant.describe('When an invoice took its charge'),
});
export type RevisionStages = z.infer<typeof revisionStagesSchema>;

export const entryExceptionSchema = z.object({ id: z.string(), code: z.string(), status: z.string(), message: z.string() });
export type EntryException = z.infer<typeof entryExceptionSchema>;

export const erpDocumentSchema = z.object({
  externalId: z.string(),
  kind: z.string().describe('charge | reversal'),
  documentId: z.string().nullable().describe('The ERP document, once posted'),
  status: z.string().describe('pending | posted | rejected'),
  amount: z.string(),
  hours: z.string(),
  invoiceId: z.string().nullable(),
});
export type ErpDocument = z.infer<typeof erpDocumentSchema>;

export const revisionLifecycleSchema = z.object({
  revision: z.number().int().nullable(),
  status: z.string().nullable().describe('submitted | approved | rejected, as the revision said'),
  stage: z.string().describe(
    "The furthest stage reached: the ledger's stage (waiting, charged, non_billable, not_chargeable, held, exception, reversed, stale), "
    + 'with charged advanced to posted once the ERP holds the charge and to invoiced once an invoice carries it; quarantined for a revision known only from an invalid_record exception'),
  stages: revisionStagesSchema,
  billable: z.boolean().nullable(),
  role: z.string().nullable(),
  rate: money,
  amount: money,
  currency: z.string().nullable(),
  hours: z.string().nullable(),
  exceptions: z.array(entryExceptionSchema),
  erpDocuments: z.array(erpDocumentSchema),
  documentIds: z.array(z.string()).describe("The ERP documentIds of the revision's documents"),
  invoiceId: z.string().nullable(),
  invoiceStatus: z.string().nullable().describe('The invoice status as last read from the ERP (draft, issued, paid, ...)'),
  traceId: z.string().nullable(),
  waitingFor: z.string().nullable().describe('What a waiting revision waits for (project, assignment, rate), else null'),
});
export type RevisionLifecycle = z.infer<typeof revisionLifecycleSchema>;

export const entryLifecycleSchema = z.object({
  entryId: z.string(),
  projectId: z.string().nullable(),
  revisions: z.array(revisionLifecycleSchema),
}).describe('The lifecycle of every revision of a time entry');
export type EntryLifecycle = z.infer<typeof entryLifecycleSchema>;

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
  invoice_status: string | null;
  invoiced_at: string | null;
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
    // An entry's documents are the charge and the reversal of each of its
    // revisions, found by externalId (`<entryId>:<revision>:charge|reversal`):
    // the outbox keeps no index by entry, which every line written would pay for.
    // Lateral probes, so the plan cannot turn into a scan of the outbox.
    em.execute<DocumentRow[]>(
      `select o.external_id, o.kind, o.revision, o.document_id, o.status, o.amount_minor, o.hours_hundredths, o.invoice_id, ${instantSql('o.posted_at')} as posted_at,
              i.status as invoice_status, ${instantSql('i.created_at')} as invoiced_at
         from entry_revision r cross join (values ('charge'), ('reversal')) as k(kind),
              lateral (select * from erp_outbox x where x.external_id = r.entry_id || ':' || r.revision || ':' || k.kind offset 0) o
              left join invoice i on i.invoice_id = o.invoice_id
        where r.entry_id = ? order by o.id`,
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
        invoicedAt: charge?.invoiced_at ?? null,
      },
      billable: row.billable,
      role: row.role,
      rate: moneyOrNull(row.rate_minor),
      amount: moneyOrNull(row.amount_minor),
      currency: row.currency,
      hours: hoursOrNull(row.hours_hundredths),
      exceptions: exceptions.filter((e) => e.revision === row.revision).map(exceptionOf),
      erpDocuments: docs.map(documentOf),
      documentIds: docs.flatMap((d) => (d.document_id === null ? [] : [d.document_id])),
      invoiceId: charge?.invoice_id ?? null,
      invoiceStatus: charge?.invoice_status ?? null,
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
      stages: { firstSeenAt: first.first_seen_at, approvedAt: null, enrichedAt: null, decidedAt: null, postedAt: null, invoicedAt: null },
      billable: null, role: null, rate: null, amount: null, currency: null, hours: null,
      exceptions: rows.map(exceptionOf),
      erpDocuments: [],
      documentIds: [],
      invoiceId: null,
      invoiceStatus: null,
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
  app.get<{ Params: z.infer<typeof paramsSchema> }>('/v1/entries/:entryId', {
    schema: {
      summary: "An entry's lifecycle",
      description: 'Every revision of the time entry: the stage it reached and when, billable, role, rate, amount, its exceptions, its ERP documents, its invoice and its traceId.',
      tags: ['entries'],
      params: paramsSchema,
      response: { 200: entryLifecycleSchema, 400: errorBodySchema, 404: errorBodySchema },
    },
  }, async (request) => {
    const lifecycle = await readEntryLifecycle(orm, request.params.entryId);
    if (lifecycle === null) {
      throw new HttpError(404, HTTP_ERROR_CODES.notFound, `entry ${request.params.entryId} is unknown: no revision of it has been ingested`, {
        details: { entryId: request.params.entryId },
      });
    }
    return lifecycle;
  });
}
