// Billing over HTTP (CONTRACT §5): the period close that invoices every
// project's posted, uninvoiced charges (POST /v1/billing/close; the rules live
// in pipeline/invoicing.ts), and one project's billing position
// (GET /v1/projects/{projectId}/billing) read from the ledger.
import type { MikroORM } from '@mikro-orm/postgresql';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { CloseReport } from '../../pipeline/invoicing.ts';
import { isCalendarDate, ID_PATTERN, REASONS } from '../../pipeline/model/records.ts';
import { requireBearer } from './auth.ts';
import { errorBodySchema, HTTP_ERROR_CODES, HttpError } from './errors.ts';
import { moneyOrNull } from './ledger-sql.ts';

const money = z.string().describe('Two-decimal amount');

const invoiceSchema = z.object({
  invoiceId: z.string(),
  projectId: z.string(),
  region: z.string(),
  customerId: z.string(),
  periodEnd: z.string(),
  status: z.string().describe('As the ERP reports it: draft, then whatever the ERP moves it to'),
  total: money.describe('Sum of the invoice\'s documents: charged less reversed'),
  charged: money,
  reversed: money,
  currency: z.string(),
  documentCount: z.number().int(),
  createdAt: z.string(),
  outcome: z.enum(['created', 'existing', 'adopted']).describe('created by this close; existing from an earlier close of the period; adopted from the ERP after the ledger had lost it'),
});

export const closeReportSchema = z.object({
  periodEnd: z.string(),
  invoices: z.array(invoiceSchema).describe('One per project with anything to invoice for the period'),
  failed: z.array(z.object({ projectId: z.string(), error: z.string() })).describe('Projects not invoiced; closing again retries them'),
}).describe('The period\'s invoices');

const PERIOD_REASON = 'must be a date YYYY-MM-DD, the last work date the invoices cover';
const closeBody = z.object({
  periodEnd: z.string({ error: PERIOD_REASON }).refine(isCalendarDate, { error: PERIOD_REASON }),
});

const projectParams = z.object({ projectId: z.string().regex(ID_PATTERN, { error: REASONS.id }) });

export const projectBillingSchema = z.object({
  projectId: z.string(),
  customerId: z.string().nullable(),
  region: z.string().nullable(),
  currency: z.string().nullable(),
  billingModel: z.string().nullable(),
  status: z.string().nullable(),
  charged: money.describe('Charges and milestones decided for the ERP, whatever their posting status'),
  reversed: money.describe('Reversals of earlier charges, as a positive sum'),
  net: money.describe('charged − reversed: what the project is billed now (what notToExceed caps)'),
  posted: money.describe('Net of the documents the ERP holds'),
  pendingPosting: money.describe('Net of the documents still on their way to the ERP'),
  rejected: money.describe('Net of the documents the ERP rejected (see erp_rejected exceptions)'),
  held: money.describe('Amounts held as cap_exceeded'),
  invoiced: money.describe('Net of the documents on an invoice'),
  uninvoiced: money.describe('Net of posted documents not yet on an invoice'),
  notToExceed: money.nullable(),
  notToExceedRemaining: money.nullable().describe('notToExceed − net; null without a cap'),
  invoices: z.object({ count: z.number().int(), lastPeriodEnd: z.string().nullable() }),
}).describe('One project\'s billing position');
export type ProjectBilling = z.infer<typeof projectBillingSchema>;

interface TotalsRow {
  charged: string;
  reversed: string;
  posted: string;
  pending: string;
  rejected: string;
  invoiced: string;
  uninvoiced: string;
  documents: number;
}

/** A project's billing position; null when the ledger knows nothing of the project. */
export async function readProjectBilling(orm: MikroORM, projectId: string): Promise<ProjectBilling | null> {
  const em = orm.em.fork();
  const [[project], [totals], [billing], [invoices]] = await Promise.all([
    em.execute<{ customer_id: string; region: string; currency: string; billing_model: string; status: string; not_to_exceed_minor: string | null }[]>(
      `select customer_id, region, currency, billing_model, status, not_to_exceed_minor from project where project_id = ?`, [projectId]),
    em.execute<TotalsRow[]>(
      `select coalesce(sum(amount_minor) filter (where kind <> 'reversal'), 0)::text as charged,
              coalesce(-sum(amount_minor) filter (where kind = 'reversal'), 0)::text as reversed,
              coalesce(sum(amount_minor) filter (where status = 'posted'), 0)::text as posted,
              coalesce(sum(amount_minor) filter (where status = 'pending'), 0)::text as pending,
              coalesce(sum(amount_minor) filter (where status = 'rejected'), 0)::text as rejected,
              coalesce(sum(amount_minor) filter (where invoice_id is not null), 0)::text as invoiced,
              coalesce(sum(amount_minor) filter (where status = 'posted' and invoice_id is null), 0)::text as uninvoiced,
              count(*)::int as documents
         from erp_outbox where project_id = ?`, [projectId]),
    em.execute<{ held_minor: string }[]>(`select held_minor from project_billing where project_id = ?`, [projectId]),
    em.execute<{ count: number; last_period_end: string | null }[]>(
      `select count(*)::int as count, to_char(max(period_end), 'YYYY-MM-DD') as last_period_end from invoice where project_id = ?`, [projectId]),
  ]);
  if (!project && !billing && (totals?.documents ?? 0) === 0) return null;
  const t = totals as TotalsRow;
  const net = BigInt(t.charged) - BigInt(t.reversed);
  const cap = project?.not_to_exceed_minor ?? null;
  return {
    projectId,
    customerId: project?.customer_id ?? null,
    region: project?.region ?? null,
    currency: project?.currency ?? null,
    billingModel: project?.billing_model ?? null,
    status: project?.status ?? null,
    charged: moneyOrNull(t.charged) ?? '0.00',
    reversed: moneyOrNull(t.reversed) ?? '0.00',
    net: moneyOrNull(net) ?? '0.00',
    posted: moneyOrNull(t.posted) ?? '0.00',
    pendingPosting: moneyOrNull(t.pending) ?? '0.00',
    rejected: moneyOrNull(t.rejected) ?? '0.00',
    held: moneyOrNull(billing?.held_minor ?? 0) ?? '0.00',
    invoiced: moneyOrNull(t.invoiced) ?? '0.00',
    uninvoiced: moneyOrNull(t.uninvoiced) ?? '0.00',
    notToExceed: moneyOrNull(cap),
    notToExceedRemaining: cap === null ? null : moneyOrNull(BigInt(cap) - net),
    invoices: { count: invoices?.count ?? 0, lastPeriodEnd: invoices?.last_period_end ?? null },
  };
}

export interface BillingRouteDeps {
  orm: MikroORM;
  /** Invoices the period: pipeline/invoicing.ts's close, with the ERP wired in. */
  closeBillingPeriod(periodEnd: string): Promise<CloseReport>;
  /** OPS_TOKEN: when set, the close requires `Authorization: Bearer <token>`. */
  opsToken?: string;
}

export function registerBillingRoutes(app: FastifyInstance, deps: BillingRouteDeps): void {
  app.post<{ Body: z.infer<typeof closeBody> }>('/v1/billing/close', {
    onRequest: requireBearer(deps.opsToken, 'OPS_TOKEN'),
    schema: {
      summary: 'Close a billing period: invoice posted, uninvoiced charges',
      description: 'For every project with posted, uninvoiced ERP documents of workDate ≤ periodEnd (charges, reversals, milestones), creates one ERP invoice '
        + '(Idempotency-Key `invoice:<projectId>:<periodEnd>`) under the project\'s actor lock, stores it, and announces it on invoice.status.<region>.<projectId>. '
        + 'Idempotent per project and period: closing again creates nothing and answers the same invoices as `existing`. '
        + 'Documents posted after a period was invoiced go on the next period\'s invoice. 502 `close_incomplete` when some project failed (details: the full report); closing again retries only those.',
      tags: ['billing'],
      security: ['opsToken'],
      body: closeBody,
      response: { 200: closeReportSchema, 400: errorBodySchema, 401: errorBodySchema, 502: errorBodySchema },
    },
  }, async (request) => {
    const report = await deps.closeBillingPeriod(request.body.periodEnd);
    if (report.failed.length > 0) {
      throw new HttpError(502, HTTP_ERROR_CODES.closeIncomplete,
        `${report.failed.length} project(s) could not be invoiced for ${report.periodEnd} (${report.failed.map((f) => `${f.projectId}: ${f.error}`).join('; ')}); ${report.invoices.length} invoice(s) stand. Closing again is safe and retries the failed projects`,
        { details: report });
    }
    return report;
  });

  app.get<{ Params: z.infer<typeof projectParams> }>('/v1/projects/:projectId/billing', {
    schema: {
      summary: 'A project\'s billing position',
      description: 'Charged, reversed, held and invoiced totals, posting status, and what remains under notToExceed.',
      tags: ['billing'],
      params: projectParams,
      response: { 200: projectBillingSchema, 400: errorBodySchema, 404: errorBodySchema },
    },
  }, async (request) => {
    const billing = await readProjectBilling(deps.orm, request.params.projectId);
    if (billing === null) {
      throw new HttpError(404, HTTP_ERROR_CODES.notFound, `project ${request.params.projectId} is unknown: no project record and nothing billed`, { details: { projectId: request.params.projectId } });
    }
    return billing;
  });
}
