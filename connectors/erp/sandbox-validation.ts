// What the sandbox checks before a posting may touch its books, as pure
// functions: the shape of each line and its money (integer cents, never floats).
import { ERP_TRANSACTION_KINDS } from './types.ts';
import type { ErpDocument, ErpLineError, ErpLineErrorCode, ErpTransactionKind } from './types.ts';

const ID = /^[A-Za-z0-9_-]{1,64}$/;
// externalIds are the caller's keys (e.g. `charge:E-17:2`); any visible ASCII is allowed.
const EXTERNAL_ID = /^[\x21-\x7e]{1,200}$/;
const DECIMAL_2 = /^-?\d{1,12}\.\d{2}$/;
const CURRENCY = /^[A-Z]{3}$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

export const MAX_LINES_PER_POSTING = 1000;

/** Two-decimal string to integer cents; null when it is not exactly that shape. */
export function parseCents(value: unknown): bigint | null {
  if (typeof value !== 'string' || !DECIMAL_2.test(value)) return null;
  const negative = value.startsWith('-');
  const digits = value.replace('-', '').replace('.', '');
  const cents = BigInt(digits);
  return negative ? -cents : cents;
}

export function formatCents(cents: bigint): string {
  const negative = cents < 0n;
  const abs = negative ? -cents : cents;
  const whole = abs / 100n;
  const fraction = (abs % 100n).toString().padStart(2, '0');
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}

/** hours × rate in cents, rounded half away from zero to whole cents (CONTRACT §1). */
export function lineAmountCents(hoursCents: bigint, rateCents: bigint): bigint {
  const product = hoursCents * rateCents; // in 1/10 000 of the currency unit
  const negative = product < 0n;
  const abs = negative ? -product : product;
  const rounded = abs / 100n + (abs % 100n >= 50n ? 1n : 0n);
  return negative ? -rounded : rounded;
}

export function isIsoDate(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const match = DATE.exec(value);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID.test(value);
}

/** A posted line that passed every check, ready for the books: a document before the ERP numbers it. */
export type ValidLine = Omit<ErpDocument, 'documentId' | 'invoiceId' | 'createdAt'>;

export type PostingValidation =
  | { ok: true; lines: ValidLine[] }
  | { ok: false; status: 400; code: string; message: string }
  | { ok: false; status: 422; errors: ErpLineError[] };

/**
 * Checks a `POST /api/v1/billable-transactions` body. A malformed envelope is a
 * 400; any invalid line makes the whole posting a 422 listing every problem of
 * every line, so the caller sees all of them at once.
 */
export function validatePosting(body: unknown): PostingValidation {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { transactions?: unknown }).transactions)) {
    return { ok: false, status: 400, code: 'invalid_request', message: 'body must be an object with a transactions array' };
  }
  const transactions = (body as { transactions: unknown[] }).transactions;
  if (transactions.length === 0) {
    return { ok: false, status: 400, code: 'invalid_request', message: 'transactions must hold at least one line' };
  }
  if (transactions.length > MAX_LINES_PER_POSTING) {
    return {
      ok: false,
      status: 400,
      code: 'too_many_lines',
      message: `transactions holds ${transactions.length} lines; at most ${MAX_LINES_PER_POSTING} per posting`,
    };
  }
  const lines: ValidLine[] = [];
  const errors: ErpLineError[] = [];
  transactions.forEach((raw, index) => {
    const result = validateLine(raw, index);
    if (result.ok) lines.push(result.line);
    else errors.push(...result.errors);
  });
  return errors.length > 0 ? { ok: false, status: 422, errors } : { ok: true, lines };
}

type LineValidation = { ok: true; line: ValidLine } | { ok: false; errors: ErpLineError[] };

function validateLine(raw: unknown, index: number): LineValidation {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, errors: [{ externalId: null, index, field: '(line)', code: 'invalid_field', message: `line ${index} is not an object` }] };
  }
  const line = raw as Record<string, unknown>;
  const externalId = typeof line.externalId === 'string' && EXTERNAL_ID.test(line.externalId) ? line.externalId : null;
  const errors: ErpLineError[] = [];
  const fail = (field: string, code: ErpLineErrorCode, reason: string): void => {
    errors.push({ externalId, index, field, code, message: `${externalId ?? `line ${index}`}: ${field} ${reason}` });
  };
  const present = (field: string): boolean => line[field] !== undefined && line[field] !== null;

  const requireMatch = (field: string, ok: (v: unknown) => boolean, what: string, required: boolean): void => {
    if (!present(field)) {
      if (required) fail(field, 'missing_field', 'is required');
    } else if (!ok(line[field])) {
      fail(field, 'invalid_field', `must be ${what}`);
    }
  };
  const text = (v: unknown): boolean => typeof v === 'string' && v.length >= 1 && v.length <= 64;

  if (!present('externalId')) fail('externalId', 'missing_field', 'is required');
  else if (externalId === null) fail('externalId', 'invalid_field', 'must be 1–200 visible ASCII characters');

  const kind = line.kind;
  if (!present('kind')) fail('kind', 'missing_field', 'is required');
  else if (!(ERP_TRANSACTION_KINDS as readonly unknown[]).includes(kind)) {
    fail('kind', 'unknown_kind', `must be one of ${ERP_TRANSACTION_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  }
  const knownKind = (ERP_TRANSACTION_KINDS as readonly unknown[]).includes(kind) ? (kind as ErpTransactionKind) : null;

  // A charge bills an entry, a milestone bills a milestone; a reversal undoes either.
  const hasEntry = present('entryId');
  const hasMilestone = present('milestoneId');
  if (knownKind === 'charge') requireMatch('entryId', isId, 'an id of 1–64 [A-Za-z0-9_-]', true);
  if (knownKind === 'milestone') requireMatch('milestoneId', isId, 'an id of 1–64 [A-Za-z0-9_-]', true);
  if (knownKind === 'reversal' && !hasEntry && !hasMilestone) fail('entryId', 'missing_field', 'or milestoneId is required');
  if (hasEntry && hasMilestone) fail('milestoneId', 'invalid_field', 'must not be given together with entryId');
  if (knownKind !== 'charge' && hasEntry) requireMatch('entryId', isId, 'an id of 1–64 [A-Za-z0-9_-]', false);
  if (knownKind !== 'milestone' && hasMilestone) requireMatch('milestoneId', isId, 'an id of 1–64 [A-Za-z0-9_-]', false);

  // Time fields are required on lines that bill an entry, optional on milestone lines.
  const billsTime = knownKind === 'charge' || (knownKind === 'reversal' && hasEntry);
  requireMatch('revision', (v) => Number.isSafeInteger(v) && (v as number) >= 1, 'an integer ≥ 1', true);
  requireMatch('projectId', isId, 'an id of 1–64 [A-Za-z0-9_-]', true);
  requireMatch('customerId', isId, 'an id of 1–64 [A-Za-z0-9_-]', true);
  requireMatch('consultantId', isId, 'an id of 1–64 [A-Za-z0-9_-]', billsTime);
  requireMatch('role', text, 'a string of 1–64 characters', billsTime);
  requireMatch('workDate', isIsoDate, 'a date YYYY-MM-DD', billsTime);
  requireMatch('currency', (v) => typeof v === 'string' && CURRENCY.test(v), 'an ISO 4217 code like USD', true);
  requireMatch('legalEntity', text, 'a string of 1–64 characters', true);

  const money = (field: string, required: boolean): bigint | null => {
    if (!present(field)) {
      if (required) fail(field, 'missing_field', 'is required');
      return null;
    }
    const cents = parseCents(line[field]);
    if (cents === null) {
      fail(field, 'invalid_amount', `must be a decimal string with exactly 2 decimals, got ${JSON.stringify(line[field])}`);
    }
    return cents;
  };
  const hours = money('hours', billsTime);
  const rate = money('rate', billsTime);
  const amount = money('amount', true);

  if (rate !== null && rate < 0n) fail('rate', 'invalid_amount', 'must not be negative');
  if (knownKind === 'charge' && hours !== null && hours <= 0n) fail('hours', 'invalid_amount', 'must be positive on a charge');
  if (knownKind === 'reversal' && hours !== null && hours > 0n) fail('hours', 'invalid_amount', 'must not be positive on a reversal');
  if (knownKind === 'reversal' && amount !== null && amount > 0n) fail('amount', 'invalid_amount', 'must not be positive on a reversal');
  if (knownKind === 'milestone' && amount !== null && amount <= 0n) fail('amount', 'invalid_amount', 'must be positive on a milestone');
  if (billsTime && hours !== null && rate !== null && amount !== null) {
    const expected = lineAmountCents(hours, rate);
    if (expected !== amount) {
      fail(
        'amount',
        'amount_mismatch',
        `is ${formatCents(amount)} but hours × rate = ${line.hours as string} × ${line.rate as string} = ${formatCents(expected)}`,
      );
    }
  }

  if (errors.length > 0 || externalId === null || knownKind === null || amount === null) {
    return { ok: false, errors };
  }
  const optionalText = (field: string): string | null => (present(field) ? (line[field] as string) : null);
  return {
    ok: true,
    line: {
      externalId,
      kind: knownKind,
      entryId: optionalText('entryId'),
      milestoneId: optionalText('milestoneId'),
      revision: line.revision as number,
      projectId: line.projectId as string,
      customerId: line.customerId as string,
      consultantId: optionalText('consultantId'),
      role: optionalText('role'),
      workDate: optionalText('workDate'),
      hours: hours === null ? null : formatCents(hours),
      rate: rate === null ? null : formatCents(rate),
      amount: formatCents(amount),
      currency: line.currency as string,
      legalEntity: line.legalEntity as string,
    },
  };
}

export interface ValidInvoiceRequest {
  projectId: string;
  customerId: string;
  periodEnd: string;
  documentIds: string[];
}

export type InvoiceRequestValidation =
  | { ok: true; request: ValidInvoiceRequest }
  | { ok: false; code: string; message: string; details: Array<{ field: string; reason: string }> };

/** Checks a `POST /api/v1/invoices` body; every problem is reported, each naming its field. */
export function validateInvoiceRequest(body: unknown): InvoiceRequestValidation {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, code: 'invalid_request', message: 'body must be a JSON object', details: [] };
  }
  const request = body as Record<string, unknown>;
  const problems: Array<{ field: string; reason: string }> = [];
  if (!isId(request.projectId)) problems.push({ field: 'projectId', reason: 'must be an id of 1–64 [A-Za-z0-9_-]' });
  if (!isId(request.customerId)) problems.push({ field: 'customerId', reason: 'must be an id of 1–64 [A-Za-z0-9_-]' });
  if (!isIsoDate(request.periodEnd)) problems.push({ field: 'periodEnd', reason: 'must be a date YYYY-MM-DD' });
  const documentIds = request.documentIds;
  if (!Array.isArray(documentIds) || documentIds.length === 0) {
    problems.push({ field: 'documentIds', reason: 'must be a non-empty array of document ids' });
  } else {
    documentIds.forEach((id, index) => {
      if (typeof id !== 'string' || id.length === 0 || id.length > 64) {
        problems.push({ field: `documentIds.${index}`, reason: 'must be a document id string' });
      }
    });
    if (new Set(documentIds).size !== documentIds.length) {
      problems.push({ field: 'documentIds', reason: 'must not repeat a document' });
    }
  }
  if (problems.length > 0) {
    return {
      ok: false,
      code: 'invalid_invoice',
      message: problems.map((p) => `${p.field} ${p.reason}`).join('; '),
      details: problems,
    };
  }
  return {
    ok: true,
    request: {
      projectId: request.projectId as string,
      customerId: request.customerId as string,
      periodEnd: request.periodEnd as string,
      documentIds: documentIds as string[],
    },
  };
}
