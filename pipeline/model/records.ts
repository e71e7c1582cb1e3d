// The schemas of the canonical records of CONTRACT §2, and the functions that
// turn untrusted input into them. Every rule carries its own reason in plain
// words, so an exception or an HTTP 202 `rejected` list can say which field of
// which record broke which rule without re-wording zod's messages.
import { z, type ZodType } from 'zod';
import { formatHours, isMoneyFormatError, parseHours } from './money.ts';
import { RECORD_KINDS, type FieldError, type RecordByKind, type RecordKind, type TimeRecord, type Validation } from './types.ts';

/** Ids become NATS subject tokens (CONTRACT §1), so only subject-safe characters are allowed. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Region tokens of CONTRACT §1. `global` (for consultant and ratecard records) matches it as well. */
export const REGION_PATTERN = /^[a-z0-9]{2,16}$/;
/** The wire form of money: a decimal string with exactly 2 decimals. */
export const MONEY_PATTERN = /^-?\d+\.\d{2}$/;
/** ISO 4217 codes are three capital letters; whether the code exists is the ERP's concern. */
export const CURRENCY_PATTERN = /^[A-Z]{3}$/;
const DATE_SHAPE = /^(\d{4})-(\d{2})-(\d{2})$/;
// A zero offset is UTC too; some senders write +00:00 instead of Z.
const UTC_SUFFIX = /(?:Z|\+00:?00)$/;

/** The reasons a field can be refused for, one per rule, shared by schemas and tests. */
export const REASONS = {
  required: 'is required',
  notObject: 'must be a JSON object',
  id: 'must be 1–64 characters of A-Z, a-z, 0-9, _ or -',
  region: 'must be a region of 2–16 characters of a-z or 0-9, e.g. "emea"',
  date: 'must be a date YYYY-MM-DD that exists in the calendar',
  instant: 'must be an ISO-8601 UTC instant, e.g. "2026-11-20T17:30:00Z"',
  money: 'must have exactly 2 decimals, e.g. "1125.00"',
  currency: 'must be an ISO 4217 currency code of 3 capital letters, e.g. "EUR"',
  hoursType: 'must be a number or a decimal string, e.g. 7.5 or "7.50"',
  hoursRange: 'must be greater than 0 and at most 24',
  hoursDecimals: 'must have at most 2 decimals, e.g. "7.50"',
  revision: 'must be an integer of at least 1',
  boolean: 'must be true or false',
  text: 'must be a non-empty string of at most 256 characters',
  notes: 'must be a string',
  tasks: 'must be a non-empty list of {taskId, billable}',
  endDate: 'must be on or after startDate',
  effectiveTo: 'must be after effectiveFrom',
  oneOf: (values: readonly string[]) => `must be one of ${values.join(', ')}`,
} as const;

type Issue = z.core.$ZodRawIssue;

/**
 * A zod error map that says "is required" for a missing field and `reason` otherwise.
 *
 * zod reports a missing key as a wrong type whose input is undefined; users
 * think of it as a missing field, so it gets its own words.
 */
function because(reason: string): { error: (issue: Issue) => string } {
  return { error: (issue) => (issue.input === undefined ? REASONS.required : reason) };
}

/** True when `text` is YYYY-MM-DD and names a day that exists (no 2026-02-30, leap years honoured). */
export function isCalendarDate(text: string): boolean {
  const match = DATE_SHAPE.exec(text);
  if (match === null) return false;
  const year = Number(match[1]);
  const month = Number(match[2]);
  const day = Number(match[3]);
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const daysInMonth = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
  return day <= daysInMonth;
}

const id = () => z.string(because(REASONS.id)).regex(ID_PATTERN, because(REASONS.id));
const region = () => z.string(because(REASONS.region)).regex(REGION_PATTERN, because(REASONS.region));
const date = () => z.string(because(REASONS.date)).refine(isCalendarDate, because(REASONS.date));
const instant = () =>
  z.iso
    // abort: a text that is no datetime at all needs one reason, not two.
    .datetime({ offset: true, abort: true, ...because(REASONS.instant) })
    .refine((text) => UTC_SUFFIX.test(text), because(REASONS.instant));
const money = () => z.string(because(REASONS.money)).regex(MONEY_PATTERN, because(REASONS.money));
const currency = () => z.string(because(REASONS.currency)).regex(CURRENCY_PATTERN, because(REASONS.currency));
const revision = () => z.int(because(REASONS.revision)).min(1, because(REASONS.revision));
const flag = () => z.boolean(because(REASONS.boolean));
// Free text such as roles, sources and legal entities: matched by equality, so
// blank or unbounded values would only produce confusing misses downstream.
const text = () =>
  z
    .string(because(REASONS.text))
    .max(256, because(REASONS.text))
    .refine((value) => value.trim().length > 0, because(REASONS.text));
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, because(REASONS.oneOf(values)));

/**
 * Hours as given by a sender (JSON number or decimal string), kept as the canonical "7.50" string.
 *
 * Downstream code then never meets a float: it parses the string with
 * `parseHours` into exact hundredths.
 */
const hours = () =>
  z.union([z.number(), z.string()], because(REASONS.hoursType)).transform((value, ctx) => {
    let hundredths: bigint;
    try {
      hundredths = parseHours(value);
    } catch (err) {
      if (!isMoneyFormatError(err)) throw err;
      const reason = err.reason.startsWith('must have at most 2 decimals') ? REASONS.hoursDecimals : REASONS.hoursType;
      ctx.issues.push({ code: 'custom', message: reason, input: value });
      return z.NEVER;
    }
    if (hundredths <= 0n || hundredths > 2400n) {
      ctx.issues.push({ code: 'custom', message: REASONS.hoursRange, input: value });
      return z.NEVER;
    }
    return formatHours(hundredths);
  });

/**
 * Fields every kind may carry. `region` only routes a record that has no region
 * of its own (a time entry, a milestone); `notes` is free text that analytics
 * read, so it must at least stay text.
 */
const common = {
  revision: revision().optional(),
  region: region().optional(),
  notes: z.string(because(REASONS.notes)).optional(),
};

// looseObject: unknown fields are kept, because analytics consumers of
// `enriched.>` read fields billstream itself does not know about.

export const consultantSchema = z.looseObject({
  ...common,
  consultantId: id(),
  homeRegion: region(),
  costRate: money(),
  currency: currency(),
});

const taskSchema = z.looseObject({ taskId: id(), billable: flag() });

export const projectSchema = z.looseObject({
  ...common,
  projectId: id(),
  customerId: id(),
  contractId: id(),
  region: region(),
  currency: currency(),
  billingModel: oneOf(['tm', 'fixed_fee']),
  status: oneOf(['active', 'closed']),
  legalEntity: text(),
  tasks: z.array(taskSchema, because(REASONS.tasks)).min(1, because(REASONS.tasks)),
  notToExceed: money().optional(),
});

export const assignmentSchema = z
  .looseObject({
    ...common,
    assignmentId: id(),
    consultantId: id(),
    projectId: id(),
    taskId: id(),
    role: text(),
    billable: flag(),
    startDate: date(),
    endDate: date(),
    revision: revision(),
  })
  .check((ctx) => {
    const { startDate, endDate } = ctx.value;
    // zod runs this even when a date failed its own rule; only compare real dates.
    // ISO dates compare correctly as strings.
    if (isCalendarDate(startDate) && isCalendarDate(endDate) && endDate < startDate) {
      ctx.issues.push({ code: 'custom', path: ['endDate'], message: `${REASONS.endDate} (${startDate})`, input: endDate });
    }
  });

export const ratecardSchema = z
  .looseObject({
    ...common,
    contractId: id(),
    role: text(),
    rate: money(),
    currency: currency(),
    effectiveFrom: date(),
    effectiveTo: date().optional(),
  })
  .check((ctx) => {
    const { effectiveFrom, effectiveTo } = ctx.value;
    const comparable = effectiveTo !== undefined && isCalendarDate(effectiveFrom) && isCalendarDate(effectiveTo);
    if (comparable && effectiveTo <= effectiveFrom) {
      const message = `${REASONS.effectiveTo} (${effectiveFrom}); effectiveTo is exclusive`;
      ctx.issues.push({ code: 'custom', path: ['effectiveTo'], message, input: effectiveTo });
    }
  });

export const timeSchema = z.looseObject({
  ...common,
  entryId: id(),
  source: text(),
  revision: revision(),
  consultantId: id(),
  projectId: id(),
  taskId: id(),
  workDate: date(),
  hours: hours(),
  status: oneOf(['submitted', 'approved', 'rejected']),
  submittedAt: instant().optional(),
  approvedAt: instant().optional(),
  approvedBy: text().optional(),
});

export const milestoneSchema = z.looseObject({
  ...common,
  milestoneId: id(),
  projectId: id(),
  amount: money(),
  currency: currency(),
  status: oneOf(['complete']),
});

/**
 * What a time field must be for `acceptValidTime`: the same rules as `timeSchema`'s,
 * each one written as the test zod runs (the datetime pattern is zod's own).
 */
const ZOD_INSTANT = z.regexes.datetime({ offset: true });
const isId = (v: unknown) => typeof v === 'string' && ID_PATTERN.test(v);
const isText = (v: unknown) => typeof v === 'string' && v.length <= 256 && v.trim().length > 0;
const isInstant = (v: unknown) => typeof v === 'string' && ZOD_INSTANT.test(v) && UTC_SUFFIX.test(v);
const TIME_STATUSES: ReadonlySet<unknown> = new Set(['submitted', 'approved', 'rejected']);
const TIME_FIELD_RULES: Readonly<Record<string, { required: boolean; passes: (v: unknown) => boolean }>> = {
  revision: { required: true, passes: (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 },
  region: { required: false, passes: (v) => typeof v === 'string' && REGION_PATTERN.test(v) },
  notes: { required: false, passes: (v) => typeof v === 'string' },
  entryId: { required: true, passes: isId },
  source: { required: true, passes: isText },
  consultantId: { required: true, passes: isId },
  projectId: { required: true, passes: isId },
  taskId: { required: true, passes: isId },
  workDate: { required: true, passes: (v) => typeof v === 'string' && isCalendarDate(v) },
  hours: { required: true, passes: (v) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) },
  status: { required: true, passes: (v) => TIME_STATUSES.has(v) },
  submittedAt: { required: false, passes: isInstant },
  approvedAt: { required: false, passes: isInstant },
  approvedBy: { required: false, passes: isText },
};
// The schema's own key order (a spread keeps `revision` where `common` put it), so a
// record accepted here serialises exactly as the schema's output would.
const TIME_KEYS = Object.keys(timeSchema.shape);
const TIME_KEY_SET: ReadonlySet<string> = new Set(TIME_KEYS);
if (TIME_KEYS.some((key) => !(key in TIME_FIELD_RULES))) throw new Error('acceptValidTime has no rule for a field timeSchema has');

/**
 * `timeSchema`'s output for a time record (parsed from JSON) that passes every
 * rule, or null when any rule fails, leaving the schema to decide and to word
 * its errors.
 *
 * Every time entry of a week close comes through here: the schema costs several
 * times as much and allocates an issue list, a payload and a context per field,
 * which is the largest share of what ingest leaves to the garbage collector.
 * Output, key order included, is the schema's (accept-valid-time.spec.ts compares
 * the two on valid and broken records).
 */
export function acceptValidTime(raw: unknown): TimeRecord | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
  const input = raw as Record<string, unknown>;
  const record: Record<string, unknown> = {};
  for (const key of TIME_KEYS) {
    const rule = TIME_FIELD_RULES[key] as { required: boolean; passes: (v: unknown) => boolean };
    if (!(key in input)) {
      if (rule.required) return null;
      continue;
    }
    const value = input[key];
    if (!rule.passes(value)) return null;
    if (key === 'hours') {
      const hundredths = hundredthsOrNull(value as string | number);
      if (hundredths === null || hundredths <= 0n || hundredths > 2400n) return null;
      record[key] = formatHours(hundredths);
    } else {
      record[key] = value;
    }
  }
  // looseObject keeps unknown fields, in the input's order, all but __proto__.
  for (const key in input) {
    if (TIME_KEY_SET.has(key) || key === '__proto__') continue;
    record[key] = input[key];
  }
  return record as unknown as TimeRecord;
}

function hundredthsOrNull(value: string | number): bigint | null {
  try {
    return parseHours(value);
  } catch (err) {
    if (isMoneyFormatError(err)) return null;
    throw err;
  }
}

/** The schema of each record kind, for code that dispatches on a kind taken from a subject or a route. */
export const recordSchemas = {
  consultant: consultantSchema,
  project: projectSchema,
  assignment: assignmentSchema,
  ratecard: ratecardSchema,
  time: timeSchema,
  milestone: milestoneSchema,
} as const satisfies Record<RecordKind, ZodType>;

/** True when `x` names one of the record kinds of CONTRACT §2 (e.g. the `<kind>` of `ingest.<kind>.…`). */
export function isRecordKind(x: string): x is RecordKind {
  return (RECORD_KINDS as readonly string[]).includes(x);
}

function toFieldErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.map((issue) => {
    if (issue.path.length === 0) {
      const reason = issue.code === 'invalid_type' ? REASONS.notObject : issue.message;
      return { field: '(record)', reason };
    }
    return { field: issue.path.map(String).join('.'), reason: issue.message };
  });
}

/**
 * Check an untrusted value against the schema of `kind`.
 *
 * Never throws: a pipeline stage quarantines what does not validate
 * (`invalid_record`), so the errors are data, each naming a dotted field path
 * and the rule it broke.
 *
 * @example validateRecord('time', { ...entry, hours: 7.5 }) // { ok: true, record: { ..., hours: '7.50' } }
 * @example validateRecord('time', { ...entry, hours: 0 })   // { ok: false, errors: [{ field: 'hours', reason: 'must be greater than 0 and at most 24' }] }
 */
export function validateRecord<K extends RecordKind>(kind: K, raw: unknown): Validation<RecordByKind[K]> {
  const schema: ZodType = recordSchemas[kind];
  try {
    const result = schema.safeParse(raw);
    if (result.success) return { ok: true, record: result.data as RecordByKind[K] };
    return { ok: false, errors: toFieldErrors(result.error.issues) };
  } catch (err) {
    // A hostile value (a throwing getter, a revoked proxy) must not take a stage down.
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, errors: [{ field: '(record)', reason: `could not be read: ${message}` }] };
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decode a message payload (bytes or text) as JSON, then validate it as `kind`.
 *
 * @example decodeRecord('time', '{') // { ok: false, errors: [{ field: '(record)', reason: 'is not valid JSON: …' }] }
 */
export function decodeRecord<K extends RecordKind>(kind: K, bytes: Uint8Array | string): Validation<RecordByKind[K]> {
  let text: string;
  try {
    text = typeof bytes === 'string' ? bytes : utf8.decode(bytes);
  } catch (err) {
    return { ok: false, errors: [{ field: '(record)', reason: `is not valid UTF-8: ${(err as Error).message}` }] };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, errors: [{ field: '(record)', reason: `is not valid JSON: ${(err as Error).message}` }] };
  }
  if (kind === 'time') {
    const record = acceptValidTime(raw);
    if (record !== null) return { ok: true, record: record as RecordByKind[K] };
  }
  return validateRecord(kind, raw);
}

/**
 * The subject key token of a record (CONTRACT §2): the id that orders it.
 *
 * Records that change one project's billing are keyed by that project, so one
 * project actor sees them in order; ratecards by contract; consultants by themselves.
 */
export function recordKey<K extends RecordKind>(kind: K, record: RecordByKind[K]): string {
  const r = record as RecordByKind[RecordKind];
  switch (kind) {
    case 'consultant':
      return (r as RecordByKind['consultant']).consultantId;
    case 'ratecard':
      return (r as RecordByKind['ratecard']).contractId;
    default:
      return (r as RecordByKind['project' | 'assignment' | 'time' | 'milestone']).projectId;
  }
}

/**
 * The record's own identity, stable across its revisions.
 *
 * A ratecard has no id field: it is identified by contract, role and the day it takes effect.
 */
export function recordId<K extends RecordKind>(kind: K, record: RecordByKind[K]): string {
  const r = record as RecordByKind[RecordKind];
  switch (kind) {
    case 'consultant':
      return (r as RecordByKind['consultant']).consultantId;
    case 'project':
      return (r as RecordByKind['project']).projectId;
    case 'assignment':
      return (r as RecordByKind['assignment']).assignmentId;
    case 'ratecard': {
      const card = r as RecordByKind['ratecard'];
      return `${card.contractId}:${card.role}:${card.effectiveFrom}`;
    }
    case 'time':
      return (r as RecordByKind['time']).entryId;
    case 'milestone':
      return (r as RecordByKind['milestone']).milestoneId;
    default:
      throw new TypeError(`unknown record kind ${String(kind)}`);
  }
}

/**
 * The default `Nats-Msg-Id` of CONTRACT §4: `<kind>:<key>:<id>:<revision>`.
 *
 * A redelivered record gets the same id, so JetStream's duplicate window
 * drops it; a new revision gets a new one. Records without a revision count as 1.
 */
export function defaultMsgId<K extends RecordKind>(kind: K, record: RecordByKind[K]): string {
  const revision = (record as { revision?: number }).revision ?? 1;
  return `${kind}:${recordKey(kind, record)}:${recordId(kind, record)}:${revision}`;
}
