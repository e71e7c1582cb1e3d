// Invoicing (CONTRACT §5 `POST /v1/billing/close`, §4 `invoice.status.*`): a
// period close puts each project's posted, uninvoiced ERP documents with
// workDate ≤ periodEnd on one ERP invoice, and a poller follows the invoices'
// status in the ERP afterwards.
//
// Each project is invoiced inside a transaction holding its project_billing row
// `for update`, the lock every actor turn takes: no turn of the project decides
// money while its invoice is cut, and two closes running at once serialise on
// the row. Idempotent three times over: the invoice table's unique
// (project_id, period_end) answers a second close with the first invoice; the
// ERP's Idempotency-Key `invoice:<projectId>:<periodEnd>` answers a retried
// request with the invoice it already made; and when the ledger lost an invoice
// the ERP holds (a crash between the ERP's answer and the commit, with the
// request changed since), the ERP's invoice for the period is adopted.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { SpanStatusCode } from '@opentelemetry/api';
import { EntryTracing, SPAN_NAMES, TRACE_ATTRIBUTES, traceHeadersOf } from './entry-tracing.ts';
import { queueNatsMessages, type NatsOutboxRow } from './nats-outbox.ts';
import { formatMoney, parseMoney } from './model/money.ts';
import { PeriodicTask } from './periodic-task.ts';

/** Invoice statuses after which the ERP changes nothing more; the poller stops asking. Mirrors the partial index of the migration. */
export const FINAL_INVOICE_STATUSES = ['paid', 'void', 'cancelled'] as const;

export interface ErpInvoiceRequest {
  projectId: string;
  customerId: string;
  /** `YYYY-MM-DD` */
  periodEnd: string;
  documentIds: string[];
}

/** An invoice as the ERP shows it; only what invoicing reads. */
export interface ErpInvoiceView {
  invoiceId: string;
  status: string;
  periodEnd: string;
  total: string;
  currency: string;
  lines: { documentId: string; kind: string; amount: string }[];
}

/** What invoicing needs of an ERP connector; ops wires the cloud ERP client in (pipeline imports no connector). */
export interface InvoicingErpPort {
  /** Same key, same request: the same invoice, never a second one. */
  createInvoice(request: ErpInvoiceRequest, idempotencyKey: string): Promise<{ invoiceId: string; status: string }>;
  getInvoice(invoiceId: string): Promise<ErpInvoiceView>;
  listInvoices(projectId: string): Promise<{ invoiceId: string; periodEnd: string; status: string }[]>;
}

/** An `invoice` span links to at most this many entry spans; an invoice of 10,000 lines would otherwise carry 10,000 links. */
export const MAX_SPAN_LINKS = 128;

export interface InvoicingOptions {
  /** Projects invoiced at once during a close. @default 4 */
  concurrency?: number;
  /** Each invoice is an `invoice` span linked to the spans of the entries it bills. @default EntryTracing.off */
  tracing?: EntryTracing;
  /** Called after a commit queued invoice.status messages (wakes the NATS relay). */
  onQueued?: () => void;
}

export interface InvoiceSummary {
  invoiceId: string;
  projectId: string;
  region: string;
  customerId: string;
  periodEnd: string;
  status: string;
  /** Sum of the invoice's documents (charges and milestones less reversals). */
  total: string;
  charged: string;
  reversed: string;
  currency: string;
  documentCount: number;
  createdAt: string;
}

/** `created` by this close, `existing` from an earlier close of the period, `adopted` from the ERP after the ledger lost it. */
export type InvoiceOutcome = 'created' | 'existing' | 'adopted';

export interface CloseReport {
  periodEnd: string;
  invoices: (InvoiceSummary & { outcome: InvoiceOutcome })[];
  /** Projects whose invoice could not be made; closing again retries them, and only them. */
  failed: { projectId: string; error: string }[];
}

export const INVOICING_ERROR_CODES = {
  mixedCurrency: 'mixed_currency',
  invalidPeriod: 'invalid_period',
} as const;
export type InvoicingErrorCode = (typeof INVOICING_ERROR_CODES)[keyof typeof INVOICING_ERROR_CODES];

export class InvoicingError extends Error {
  readonly code: InvoicingErrorCode;

  constructor(code: InvoicingErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvoicingError';
    this.code = code;
  }
}

export function isInvoicingError(err: unknown): err is InvoicingError {
  return err instanceof InvoicingError;
}

interface UninvoicedRow {
  id: string;
  document_id: string;
  kind: string;
  amount_minor: string;
  currency: string;
  region: string;
  customer_id: string | null;
  trace_parent: string | null;
}

interface InvoiceRow {
  invoice_id: string;
  project_id: string;
  region: string;
  customer_id: string;
  period_end: string;
  status: string;
  total_minor: string;
  charged_minor: string;
  reversed_minor: string;
  currency: string;
  document_count: number;
  created_at: string;
}

const INVOICE_COLUMNS = `invoice_id, project_id, region, customer_id, to_char(period_end, 'YYYY-MM-DD') as period_end, status, total_minor,
  charged_minor, reversed_minor, currency, document_count, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at`;

const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

/** The Idempotency-Key of a project's invoice for a period (stable across retries, instances and restarts). */
export function invoiceIdempotencyKey(projectId: string, periodEnd: string): string {
  return `invoice:${projectId}:${periodEnd}`;
}

export function summaryOf(row: InvoiceRow): InvoiceSummary {
  return {
    invoiceId: row.invoice_id,
    projectId: row.project_id,
    region: row.region,
    customerId: row.customer_id,
    periodEnd: row.period_end,
    status: row.status,
    total: formatMoney(BigInt(row.total_minor)),
    charged: formatMoney(BigInt(row.charged_minor)),
    reversed: formatMoney(BigInt(row.reversed_minor)),
    currency: row.currency,
    documentCount: row.document_count,
    createdAt: row.created_at,
  };
}

/** The `invoice.status.<region>.<projectId>` message announcing an invoice's (new) status. */
export function invoiceStatusMessage(invoice: InvoiceSummary, headers: Record<string, string> | null = null): NatsOutboxRow {
  return {
    subject: `invoice.status.${invoice.region}.${invoice.projectId}`,
    msg_id: `invoice:${invoice.invoiceId}:${invoice.status}`,
    payload: {
      invoiceId: invoice.invoiceId,
      projectId: invoice.projectId,
      customerId: invoice.customerId,
      periodEnd: invoice.periodEnd,
      status: invoice.status,
      amounts: { total: invoice.total, charged: invoice.charged, reversed: invoice.reversed, currency: invoice.currency },
      documentCount: invoice.documentCount,
      at: new Date().toISOString(),
    },
    headers,
  };
}

/** Charges and milestones count as charged, reversals (negative amounts) as reversed, both as positive sums. */
function splitAmounts(lines: readonly { kind: string; amountMinor: bigint }[]): { total: bigint; charged: bigint; reversed: bigint } {
  let charged = 0n;
  let reversed = 0n;
  for (const line of lines) {
    if (line.kind === 'reversal') reversed -= line.amountMinor;
    else charged += line.amountMinor;
  }
  return { total: charged - reversed, charged, reversed };
}

export class Invoicing {
  readonly #orm: MikroORM;
  readonly #erp: InvoicingErpPort;
  readonly #options: Required<Omit<InvoicingOptions, 'onQueued'>> & Pick<InvoicingOptions, 'onQueued'>;

  constructor(orm: MikroORM, erp: InvoicingErpPort, options: InvoicingOptions = {}) {
    this.#orm = orm;
    this.#erp = erp;
    this.#options = { concurrency: 4, tracing: EntryTracing.off, ...options };
    if (!Number.isInteger(this.#options.concurrency) || this.#options.concurrency < 1) {
      throw new RangeError(`invoicing option concurrency must be an integer of at least 1, got ${this.#options.concurrency}`);
    }
  }

  /**
   * Invoices every project with posted, uninvoiced documents of workDate ≤
   * periodEnd, and reports the period's invoices made earlier as `existing`.
   * A project that fails is listed in `failed` and does not stop the others.
   *
   * @param periodEnd `YYYY-MM-DD`, the last work date the invoices cover
   * @throws {InvoicingError} `invalid_period` when periodEnd is no date
   */
  async close(periodEnd: string): Promise<CloseReport> {
    if (!DATE_PATTERN.test(periodEnd) || Number.isNaN(Date.parse(`${periodEnd}T00:00:00Z`))) {
      throw new InvoicingError(INVOICING_ERROR_CODES.invalidPeriod, `periodEnd ${JSON.stringify(periodEnd)} is not a date YYYY-MM-DD`);
    }
    const projects = await this.#orm.em.fork().execute<{ project_id: string }[]>(
      `select project_id from erp_outbox where status = 'posted' and invoice_id is null and work_date <= ?::date
       union select project_id from invoice where period_end = ?::date
       order by project_id`,
      [periodEnd, periodEnd]);

    const report: CloseReport = { periodEnd, invoices: [], failed: [] };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < projects.length) {
        const projectId = (projects[next++] as { project_id: string }).project_id;
        try {
          const result = await this.closeProject(projectId, periodEnd);
          if (result !== null) report.invoices.push(result);
        } catch (err) {
          report.failed.push({ projectId, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#options.concurrency, projects.length) }, worker));
    report.invoices.sort((a, b) => a.projectId.localeCompare(b.projectId));
    report.failed.sort((a, b) => a.projectId.localeCompare(b.projectId));
    if (report.invoices.some((i) => i.outcome !== 'existing')) this.#options.onQueued?.();
    return report;
  }

  /**
   * Invoices one project for the period under its actor's lock.
   *
   * @returns the period's invoice of the project, or null when it has nothing to invoice
   */
  async closeProject(projectId: string, periodEnd: string): Promise<(InvoiceSummary & { outcome: InvoiceOutcome }) | null> {
    return this.#orm.em.fork().transactional(async (tx) => {
      const em = tx as EntityManager;
      await em.execute(`insert into project_billing (project_id) values (?) on conflict do nothing`, [projectId]);
      await em.execute(`select project_id from project_billing where project_id = ? for update`, [projectId]);

      const [existing] = await em.execute<InvoiceRow[]>(`select ${INVOICE_COLUMNS} from invoice where project_id = ? and period_end = ?::date`, [projectId, periodEnd]);
      if (existing) return { ...summaryOf(existing), outcome: 'existing' as const };

      const rows = await em.execute<UninvoicedRow[]>(
        `select id, document_id, kind, amount_minor, currency, region, transaction->>'customerId' as customer_id, trace_parent
           from erp_outbox
          where project_id = ? and status = 'posted' and invoice_id is null and work_date <= ?::date
          order by id for update`,
        [projectId, periodEnd]);
      if (rows.length === 0) return null;

      const [project] = await em.execute<{ customer_id: string; region: string }[]>(`select customer_id, region from project where project_id = ?`, [projectId]);
      const first = rows[0] as UninvoicedRow;
      const region = project?.region ?? first.region;
      const customerId = project?.customer_id ?? first.customer_id ?? '';
      const currencies = [...new Set(rows.map((r) => r.currency))];
      if (currencies.length !== 1) {
        throw new InvoicingError(INVOICING_ERROR_CODES.mixedCurrency, `project ${projectId} has posted documents in ${currencies.join(' and ')}; an invoice is in one currency, so the project is not invoiced for ${periodEnd}`);
      }
      const links = [...new Set(rows.map((r) => r.trace_parent).filter((t): t is string => t !== null))].slice(0, MAX_SPAN_LINKS);
      const span = this.#options.tracing.startBatchSpan(SPAN_NAMES.invoice, links, {
        [TRACE_ATTRIBUTES.projectId]: projectId, [TRACE_ATTRIBUTES.region]: region, 'billstream.invoice.period_end': periodEnd, 'billstream.invoice.documents': rows.length,
      });
      try {
        const key = invoiceIdempotencyKey(projectId, periodEnd);
        const request = { projectId, customerId, periodEnd, documentIds: rows.map((r) => r.document_id) };
        let invoiceId: string;
        let status: string;
        let outcome: InvoiceOutcome = 'created';
        let billed: { documentIds: string[]; lines: { kind: string; amountMinor: bigint }[]; currency: string };
        try {
          const created = await this.#erp.createInvoice(request, key);
          invoiceId = created.invoiceId;
          status = created.status;
          billed = { documentIds: request.documentIds, lines: rows.map((r) => ({ kind: r.kind, amountMinor: BigInt(r.amount_minor) })), currency: first.currency };
        } catch (err) {
          const adopted = await this.#erpInvoiceFor(projectId, periodEnd).catch(() => null);
          if (adopted === null) throw err;
          outcome = 'adopted';
          invoiceId = adopted.invoiceId;
          status = adopted.status;
          billed = {
            documentIds: adopted.lines.map((l) => l.documentId),
            lines: adopted.lines.map((l) => ({ kind: l.kind, amountMinor: parseMoney(l.amount) })),
            currency: adopted.currency,
          };
        }
        span.setAttribute('billstream.invoice.id', invoiceId);
        const amounts = splitAmounts(billed.lines);
        const [stored] = await em.execute<InvoiceRow[]>(
          `insert into invoice (invoice_id, project_id, region, customer_id, period_end, status, total_minor, charged_minor, reversed_minor, currency, document_count, idempotency_key)
           values (?, ?, ?, ?, ?::date, ?, ?, ?, ?, ?, ?, ?)
           returning ${INVOICE_COLUMNS}`,
          [invoiceId, projectId, region, customerId, periodEnd, status, amounts.total.toString(), amounts.charged.toString(), amounts.reversed.toString(),
            billed.currency, billed.documentIds.length, key]);
        await em.execute(
          `update erp_outbox set invoice_id = ? where project_id = ? and document_id in (select jsonb_array_elements_text(?::jsonb))`,
          [invoiceId, projectId, JSON.stringify(billed.documentIds)]);
        const summary = summaryOf(stored as InvoiceRow);
        const headers = traceHeadersOf(span);
        await queueNatsMessages(em, [invoiceStatusMessage(summary, Object.keys(headers).length > 0 ? headers : null)]);
        span.end();
        return { ...summary, outcome };
      } catch (err) {
        span.recordException(err instanceof Error ? err : new Error(String(err)));
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
        span.end();
        throw err;
      }
    });
  }

  /** The ERP's invoice of the project for the period, with its lines, if it has one. */
  async #erpInvoiceFor(projectId: string, periodEnd: string): Promise<ErpInvoiceView | null> {
    const invoices = await this.#erp.listInvoices(projectId);
    const match = invoices.find((i) => i.periodEnd === periodEnd && !(FINAL_INVOICE_STATUSES as readonly string[]).includes(i.status));
    return match ? this.#erp.getInvoice(match.invoiceId) : null;
  }
}

export interface InvoiceStatusPollerOptions {
  /** Pause between polls. @default 60 s */
  intervalMs?: number;
  /** Open invoices asked about per poll, least recently checked first. @default 100 */
  batchSize?: number;
  /** Called after a status change was committed (wakes the NATS relay). */
  onChange?: (invoice: InvoiceSummary) => void;
  onError?: (err: unknown) => void;
}

/**
 * Follows open invoices in the ERP (`GET /api/v1/invoices/{id}`): a status
 * that changed is stored (the entry lifecycle reads it) and announced on
 * `invoice.status.<region>.<projectId>` in the same transaction.
 */
export class InvoiceStatusPoller {
  readonly #orm: MikroORM;
  readonly #erp: Pick<InvoicingErpPort, 'getInvoice'>;
  readonly #options: Required<Omit<InvoiceStatusPollerOptions, 'onChange' | 'onError'>> & Pick<InvoiceStatusPollerOptions, 'onChange' | 'onError'>;
  readonly #task: PeriodicTask;

  constructor(orm: MikroORM, erp: Pick<InvoicingErpPort, 'getInvoice'>, options: InvoiceStatusPollerOptions = {}) {
    this.#orm = orm;
    this.#erp = erp;
    this.#options = { intervalMs: 60_000, batchSize: 100, ...options };
    this.#task = new PeriodicTask(() => this.pollOnce(), this.#options.intervalMs, (err) => this.#options.onError?.(err));
  }

  start(): void {
    this.#task.start();
  }

  stop(): Promise<void> {
    return this.#task.stop();
  }

  /** Asks the ERP about one batch of open invoices; returns how many changed status. */
  async pollOnce(): Promise<number> {
    // The statuses are written out (constants, not input) so the open-invoice partial index serves the query.
    const final = FINAL_INVOICE_STATUSES.map((s) => `'${s}'`).join(', ');
    const open = await this.#orm.em.fork().execute<{ invoice_id: string; status: string }[]>(
      `select invoice_id, status from invoice where status not in (${final})
        order by status_checked_at nulls first limit ?`,
      [this.#options.batchSize]);
    let changed = 0;
    for (const row of open) {
      let status: string;
      try {
        status = (await this.#erp.getInvoice(row.invoice_id)).status;
      } catch (err) {
        this.#options.onError?.(err);
        continue;
      }
      const summary = await this.#orm.em.fork().transactional(async (tx) => {
        const em = tx as EntityManager;
        if (status === row.status) {
          await em.execute(`update invoice set status_checked_at = now() where invoice_id = ?`, [row.invoice_id]);
          return null;
        }
        // Conditional on the status read: of two instances polling at once, one announces the change.
        const [updated] = await em.execute<InvoiceRow[]>(
          `update invoice set status = ?, status_changed_at = now(), status_checked_at = now() where invoice_id = ? and status = ?
           returning ${INVOICE_COLUMNS}`,
          [status, row.invoice_id, row.status]);
        if (!updated) return null;
        const invoice = summaryOf(updated);
        await queueNatsMessages(em, [invoiceStatusMessage(invoice)]);
        return invoice;
      });
      if (summary) {
        changed++;
        this.#options.onChange?.(summary);
      }
    }
    return changed;
  }
}
