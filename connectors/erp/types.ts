// The wire shapes of the ERP API (CONTRACT §6), shared by the client and the
// sandbox that stands in for the cloud ERP. Money and hours are decimal strings
// with exactly two decimals ("1125.00", "-7.50"); nothing here is a float.

export const ERP_TRANSACTION_KINDS = ['charge', 'reversal', 'milestone'] as const;
export type ErpTransactionKind = (typeof ERP_TRANSACTION_KINDS)[number];

interface ErpTransactionCommon {
  /** The caller's key for this line; the ERP never holds two documents for one externalId. */
  externalId: string;
  /** Revision of the entry (or milestone) the line bills; milestones use 1. */
  revision: number;
  projectId: string;
  customerId: string;
  /** Two-decimal string; negative on a reversal. */
  amount: string;
  /** ISO 4217, e.g. `USD`. */
  currency: string;
  legalEntity: string;
}

/** A charge for a time entry revision, or the reversal of one (negated hours and amount). */
export interface ErpTimeTransaction extends ErpTransactionCommon {
  kind: 'charge' | 'reversal';
  entryId: string;
  consultantId: string;
  role: string;
  /** `YYYY-MM-DD`. */
  workDate: string;
  /** Two-decimal string; negative on a reversal. */
  hours: string;
  /** Two-decimal string, never negative; `amount = hours × rate` rounded half away from zero. */
  rate: string;
}

/** The one charge of a completed fixed-fee milestone. Time fields are optional and stored when given. */
export interface ErpMilestoneTransaction extends ErpTransactionCommon {
  kind: 'milestone';
  milestoneId: string;
  consultantId?: string;
  role?: string;
  workDate?: string;
  hours?: string;
  rate?: string;
}

export type ErpTransaction = ErpTimeTransaction | ErpMilestoneTransaction;

export type ErpPostStatus = 'created' | 'duplicate';

/** The ERP's answer for one posted line: the document that holds it, new or already there. */
export interface ErpPostResult {
  externalId: string;
  documentId: string;
  status: ErpPostStatus;
}

export const ERP_LINE_ERROR_CODES = [
  'missing_field',
  'invalid_field',
  'invalid_amount',
  'unknown_kind',
  'amount_mismatch',
] as const;
export type ErpLineErrorCode = (typeof ERP_LINE_ERROR_CODES)[number];

/** Why the ERP refused one line of a posting (422). */
export interface ErpLineError {
  /** Null when the line had no usable externalId; `index` then says which line it was. */
  externalId: string | null;
  /** Position of the line in the posted `transactions` array. */
  index?: number;
  /** The offending field, when the failure concerns one. */
  field?: string;
  /** One of ERP_LINE_ERROR_CODES from the sandbox; a real ERP may answer others. */
  code: string;
  message: string;
}

/** A document as the ERP lists it (`GET /api/v1/billable-transactions`). */
export interface ErpDocument {
  documentId: string;
  externalId: string;
  kind: ErpTransactionKind;
  entryId: string | null;
  milestoneId: string | null;
  revision: number;
  projectId: string;
  customerId: string;
  consultantId: string | null;
  role: string | null;
  workDate: string | null;
  hours: string | null;
  rate: string | null;
  amount: string;
  currency: string;
  legalEntity: string;
  /** Null until the document is put on an invoice. */
  invoiceId: string | null;
  createdAt: string;
}

export interface ErpInvoiceRequest {
  projectId: string;
  customerId: string;
  /** `YYYY-MM-DD`, the last day the invoice covers. */
  periodEnd: string;
  documentIds: string[];
}

export interface ErpInvoiceCreated {
  invoiceId: string;
  status: 'draft';
}

export interface ErpInvoiceSummary {
  invoiceId: string;
  projectId: string;
  customerId: string;
  periodEnd: string;
  status: string;
  currency: string;
  /** Sum of the line amounts, two-decimal string. */
  total: string;
  lineCount: number;
  createdAt: string;
}

export interface ErpInvoiceLine {
  documentId: string;
  externalId: string;
  kind: ErpTransactionKind;
  entryId: string | null;
  milestoneId: string | null;
  revision: number;
  workDate: string | null;
  hours: string | null;
  rate: string | null;
  amount: string;
}

export interface ErpInvoice extends ErpInvoiceSummary {
  lines: ErpInvoiceLine[];
}

/** One page of a list route (CONTRACT §5): `nextCursor` is null on the last page. */
export interface ErpPage<T> {
  items: T[];
  nextCursor: string | null;
}

/** Faults the sandbox injects (`POST /admin/faults`); null or 0 clears a fault. */
export interface ErpFaults {
  /** API requests beyond this many per second answer 429 with `Retry-After`. */
  rateLimitPerSecond?: number | null;
  /** Fraction (0–1) of API requests answered 503 before they touch the books. */
  errorRate?: number | null;
  /** Delay added to every API and token response, after the work is done. */
  latencyMs?: number | null;
}

/** The sandbox's books in brief (`GET /admin/stats`), for reconciliation. */
export interface ErpStats {
  documents: number;
  invoices: number;
  totalsByCurrency: Array<{ currency: string; documents: number; amount: string; invoiced: string }>;
}
