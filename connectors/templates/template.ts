// Mapping templates: declarative, versioned JSON that says, field by field, how
// to make a canonical record (CONTRACT §2) out of someone else's row or object.
// Each field is an expression: where the value comes from (a `path` into the
// row, a `const`, a `join` of expressions, or a `collect` over rows or an
// array) and what is done to it, always in this order: trim → case → lookup →
// one conversion (date, money, integer, number, boolean) → default when
// missing. Every failure names the field, the path and the reason.
//
// One format serves two uses: master-data files (projects with tasks,
// assignments, consultants, rate cards) and the id mapping of a time-capture
// source (a `time` template with a `source`, whose projectId, consultantId and
// taskId expressions read the native entry).
import { z } from 'zod';
import { formatMoney, parseMoney } from '../../pipeline/model/money.ts';
import { isCalendarDate } from '../../pipeline/model/records.ts';
import { RECORD_KINDS } from '../../pipeline/model/types.ts';
import type { FieldResolver, Resolution } from '../connector-spec.ts';

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
const json: z.ZodType<Json> = z.lazy(() => z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(json), z.record(z.string(), json)]));

const booleanWords = z.object({
  true: z.array(z.string()).min(1).describe('Texts read as true (compared case-insensitively).'),
  false: z.array(z.string()).min(1).describe('Texts read as false.'),
});

const transforms = {
  trim: z.boolean().optional().describe('Trim white space from text values (default true).'),
  case: z.enum(['lower', 'upper']).optional().describe('Change the case of a text value.'),
  lookup: z.record(z.string(), json).optional().describe('Table from the value (as text) to what it stands for; `"*"` catches every other value. A value not in the table is an error.'),
  date: z.string().optional().describe('Read a date written in this format (tokens YYYY, MM, M, DD, D; or `iso` for an ISO date or instant) and give YYYY-MM-DD.'),
  money: z
    .union([z.literal(true), z.object({ decimal: z.enum(['.', ',']).default('.'), group: z.string().max(1).optional() })])
    .optional()
    .describe('Read an amount (at most 2 decimals; `decimal` and `group` separators) and give it with exactly 2 decimals.'),
  integer: z.literal(true).optional().describe('Read a whole number.'),
  number: z.literal(true).optional().describe('Read a number.'),
  boolean: z.union([z.literal(true), booleanWords]).optional().describe('Read yes/no, true/false, 1/0, y/n, x/empty (or the words given).'),
  default: json.optional().describe('Used when the value is missing, null or empty.'),
  optional: z.boolean().optional().describe('When the value is missing, leave the field out instead of failing.'),
};

export interface Expression {
  path?: string;
  const?: Json;
  join?: Expression[];
  separator?: string;
  collect?: { path?: string; fields: Record<string, Expression> };
  trim?: boolean;
  case?: 'lower' | 'upper';
  lookup?: Record<string, Json>;
  date?: string;
  money?: true | { decimal: '.' | ','; group?: string | undefined };
  integer?: true;
  number?: true;
  boolean?: true | { true: string[]; false: string[] };
  default?: Json;
  optional?: boolean;
}

export const expressionSchema: z.ZodType<Expression> = z.lazy(() =>
  z
    .strictObject({
      path: z.string().min(1).optional().describe('Dotted path into the row or object, e.g. `project.id`; for CSV, the column name.'),
      const: json.optional().describe('A constant value.'),
      join: z.array(expressionSchema).min(1).optional().describe('The texts of several expressions joined by `separator`.'),
      separator: z.string().optional().describe('Separator of `join` (default "-").'),
      collect: z
        .strictObject({
          path: z.string().optional().describe('An array in the row to map element by element; without it, every row of the group.'),
          fields: z.record(z.string(), expressionSchema),
        })
        .optional()
        .describe('A list of objects, one per element or grouped row (e.g. a project\'s tasks); duplicates are dropped.'),
      ...transforms,
    })
    .refine((e) => [e.path, e.const, e.join, e.collect].filter((x) => x !== undefined).length === 1, {
      message: 'an expression takes exactly one of path, const, join or collect',
    }),
);

export const TEMPLATE_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const templateSchema = z
  .strictObject({
    name: z.string().regex(TEMPLATE_NAME_PATTERN, 'must be 1–64 characters of A-Z, a-z, 0-9, _ or -').describe('The template\'s name; its KV key is `template.<name>`.'),
    version: z.int().min(1).describe('Raised with every change; the store refuses a change that keeps or lowers it.'),
    kind: z.enum(RECORD_KINDS).describe('The canonical record kind produced.'),
    source: z.string().optional().describe('For a `time` template: the time-capture source (harvest, toggl, clockify, kimai) whose native entries its id expressions read.'),
    description: z.string().optional(),
    input: z
      .strictObject({
        format: z.enum(['csv', 'json']).default('csv'),
        delimiter: z.string().length(1).default(','),
        recordsPath: z.string().optional().describe('JSON: the path of the array of records in the document (the document itself when absent).'),
      })
      .prefault({})
      .describe('How a file is read.'),
    groupBy: expressionSchema.optional().describe('Rows with the same value make one record (e.g. a project with one row per task); fields read its first row, `collect` reads them all.'),
    fields: z.record(z.string(), expressionSchema).describe('Canonical field → expression.'),
  })
  .describe('A mapping template.');

export type Template = z.output<typeof templateSchema>;
export type TemplateInput = z.input<typeof templateSchema>;

export class TemplateInvalidError extends Error {
  readonly template: string;
  readonly fields: Array<{ field: string; reason: string }>;

  constructor(template: string, fields: Array<{ field: string; reason: string }>, options: { cause?: unknown } = {}) {
    super(`template ${template} is invalid: ${fields.map((f) => `${f.field}: ${f.reason}`).join('; ')}`, { cause: options.cause });
    this.name = 'TemplateInvalidError';
    this.template = template;
    this.fields = fields;
  }
}

export const isTemplateInvalid = (err: unknown): err is TemplateInvalidError => err instanceof TemplateInvalidError;

/**
 * Validates a template (from a file, KV or a request).
 *
 * @throws TemplateInvalidError naming every invalid part, including date formats that have no year, month and day.
 */
export function parseTemplate(input: unknown): Template {
  const parsed = templateSchema.safeParse(input);
  const name = typeof (input as { name?: unknown } | null)?.name === 'string' ? (input as { name: string }).name : '(unnamed)';
  if (!parsed.success) {
    throw new TemplateInvalidError(name, parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(template)', reason: i.message })), { cause: parsed.error });
  }
  const problems: Array<{ field: string; reason: string }> = [];
  const check = (expr: Expression, at: string) => {
    if (expr.date !== undefined && expr.date !== 'iso') {
      try {
        datePattern(expr.date);
      } catch (err) {
        problems.push({ field: `${at}.date`, reason: (err as Error).message });
      }
    }
    expr.join?.forEach((e, i) => check(e, `${at}.join.${i}`));
    for (const [field, e] of Object.entries(expr.collect?.fields ?? {})) check(e, `${at}.collect.fields.${field}`);
  };
  for (const [field, expr] of Object.entries(parsed.data.fields)) check(expr, `fields.${field}`);
  if (parsed.data.groupBy) check(parsed.data.groupBy, 'groupBy');
  if (problems.length > 0) throw new TemplateInvalidError(parsed.data.name, problems);
  return parsed.data;
}

// ---- evaluation ---------------------------------------------------------------------------

/** What an expression came to: a value, nothing (missing and optional), or why it failed. */
export type Evaluation = { kind: 'value'; value: unknown } | { kind: 'absent' } | { kind: 'error'; reason: string };

export interface EvaluationScope {
  /** Every row of the record's group (for `collect` without a path). */
  group?: readonly unknown[];
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The value at a dotted path; a CSV row's column names may contain dots, so an exact key wins. */
export function valueAt(row: unknown, path: string): unknown {
  if (isPlainObject(row) && path in row) return row[path];
  let current: unknown = row;
  for (const part of path.split('.')) {
    if (Array.isArray(current) && /^\d+$/.test(part)) current = current[Number(part)];
    else if (isPlainObject(current)) current = current[part];
    // Through an explicit null the answer is null: the source said "none", it did not leave it out.
    else return current === null ? null : undefined;
  }
  return current;
}

function describeSource(expr: Expression): string {
  if (expr.path !== undefined) return `"${expr.path}"`;
  if (expr.join) return `the joined ${expr.join.map(describeSource).join(' and ')}`;
  return 'the value';
}

/** Evaluates one expression against a row (a CSV record, a JSON object, a native entry). */
export function evaluate(expr: Expression, row: unknown, scope: EvaluationScope = {}): Evaluation {
  let value: unknown;
  if (expr.const !== undefined) {
    value = expr.const;
  } else if (expr.path !== undefined) {
    value = valueAt(row, expr.path);
  } else if (expr.join) {
    const parts: string[] = [];
    for (const part of expr.join) {
      const result = evaluate(part, row, scope);
      if (result.kind === 'error') return result;
      if (result.kind === 'value') parts.push(String(result.value));
    }
    value = parts.length === 0 ? undefined : parts.join(expr.separator ?? '-');
  } else if (expr.collect) {
    return collect(expr.collect, row, scope);
  }

  if (typeof value === 'string' && expr.trim !== false) value = value.trim();
  if (value === undefined || value === null || value === '') {
    if (expr.default !== undefined) return { kind: 'value', value: expr.default };
    if (expr.optional) return { kind: 'absent' };
    const why = value === null ? 'is null' : value === '' ? 'is empty' : 'is missing';
    return { kind: 'error', reason: `${describeSource(expr)} ${why}` };
  }
  // An object where a scalar is meant (Kimai's expanded `project`): its id stands for it.
  if (isPlainObject(value) && 'id' in value && (expr.lookup || expr.integer || expr.number)) value = value.id;
  if (typeof value === 'string' && expr.case) value = expr.case === 'lower' ? value.toLowerCase() : value.toUpperCase();

  if (expr.lookup) {
    const key = String(value as string | number | boolean);
    const mapped = Object.hasOwn(expr.lookup, key) ? expr.lookup[key] : expr.lookup['*'];
    if (mapped === undefined) {
      const known = Object.keys(expr.lookup).slice(0, 5).map((k) => JSON.stringify(k)).join(', ');
      return { kind: 'error', reason: `${describeSource(expr)} ${JSON.stringify(key)} is not in the lookup table (it has ${known}${Object.keys(expr.lookup).length > 5 ? ', …' : ''})` };
    }
    value = mapped;
  }
  return convert(expr, value);
}

function convert(expr: Expression, value: unknown): Evaluation {
  const source = describeSource(expr);
  if (expr.date !== undefined) {
    const date = readDate(String(value as string), expr.date);
    return date === null ? { kind: 'error', reason: `${source} ${JSON.stringify(value)} is no date in the format ${expr.date}` } : { kind: 'value', value: date };
  }
  if (expr.money !== undefined) {
    const options = expr.money === true ? { decimal: '.' as const, group: undefined } : expr.money;
    const amount = readMoney(value, options);
    return amount === null
      ? { kind: 'error', reason: `${source} ${JSON.stringify(value)} is no amount with at most 2 decimals (decimal separator "${options.decimal}")` }
      : { kind: 'value', value: amount };
  }
  if (expr.integer) {
    const n = typeof value === 'number' ? value : /^-?\d+$/.test(String(value as string)) ? Number(value) : Number.NaN;
    return Number.isSafeInteger(n) ? { kind: 'value', value: n } : { kind: 'error', reason: `${source} ${JSON.stringify(value)} is no whole number` };
  }
  if (expr.number) {
    const n = typeof value === 'number' ? value : /^-?\d+(\.\d+)?$/.test(String(value as string)) ? Number(value) : Number.NaN;
    return Number.isFinite(n) ? { kind: 'value', value: n } : { kind: 'error', reason: `${source} ${JSON.stringify(value)} is no number` };
  }
  if (expr.boolean !== undefined) {
    if (typeof value === 'boolean') return { kind: 'value', value };
    const words = expr.boolean === true ? { true: ['true', 'yes', 'y', '1', 'x'], false: ['false', 'no', 'n', '0'] } : expr.boolean;
    const text = String(value as string).trim().toLowerCase();
    if (words.true.some((w) => w.toLowerCase() === text)) return { kind: 'value', value: true };
    if (words.false.some((w) => w.toLowerCase() === text)) return { kind: 'value', value: false };
    return { kind: 'error', reason: `${source} ${JSON.stringify(value)} is neither ${words.true.join('/')} nor ${words.false.join('/')}` };
  }
  return { kind: 'value', value };
}

function collect(spec: NonNullable<Expression['collect']>, row: unknown, scope: EvaluationScope): Evaluation {
  let elements: readonly unknown[];
  if (spec.path !== undefined) {
    const found = valueAt(row, spec.path);
    if (!Array.isArray(found)) return { kind: 'error', reason: `"${spec.path}" is no list` };
    elements = found;
  } else {
    elements = scope.group ?? [row];
  }
  const items: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  for (const [index, element] of elements.entries()) {
    const item: Record<string, unknown> = {};
    for (const [field, expr] of Object.entries(spec.fields)) {
      const result = evaluate(expr, element, {});
      if (result.kind === 'error') return { kind: 'error', reason: `item ${index + 1}: ${field}: ${result.reason}` };
      if (result.kind === 'value') item[field] = result.value;
    }
    const key = JSON.stringify(item);
    if (!seen.has(key)) {
      seen.add(key);
      items.push(item);
    }
  }
  return { kind: 'value', value: items };
}

const patterns = new Map<string, { regex: RegExp; order: Array<'Y' | 'M' | 'D'> }>();

function datePattern(format: string): { regex: RegExp; order: Array<'Y' | 'M' | 'D'> } {
  const cached = patterns.get(format);
  if (cached) return cached;
  const order: Array<'Y' | 'M' | 'D'> = [];
  let source = '';
  for (let i = 0; i < format.length; ) {
    const rest = format.slice(i);
    const token = ['YYYY', 'MM', 'DD', 'M', 'D'].find((t) => rest.startsWith(t));
    if (token) {
      order.push(token[0] as 'Y' | 'M' | 'D');
      source += token === 'YYYY' ? '(\\d{4})' : token.length === 2 ? '(\\d{2})' : '(\\d{1,2})';
      i += token.length;
    } else {
      source += (format[i] as string).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      i += 1;
    }
  }
  if (!['Y', 'M', 'D'].every((t) => order.filter((o) => o === t).length === 1)) {
    throw new Error(`date format "${format}" must hold YYYY, one of MM/M and one of DD/D exactly once`);
  }
  const pattern = { regex: new RegExp(`^${source}$`), order };
  patterns.set(format, pattern);
  return pattern;
}

/** A date in the given format as YYYY-MM-DD, or null. `iso` takes YYYY-MM-DD or an instant's date as written. */
export function readDate(text: string, format: string): string | null {
  if (format === 'iso') {
    const day = text.slice(0, 10);
    return isCalendarDate(day) && (text.length === 10 || text[10] === 'T') ? day : null;
  }
  const { regex, order } = datePattern(format);
  const match = regex.exec(text);
  if (!match) return null;
  const parts: Record<string, string> = {};
  order.forEach((token, i) => {
    parts[token] = match[i + 1] as string;
  });
  const date = `${parts.Y}-${(parts.M ?? '').padStart(2, '0')}-${(parts.D ?? '').padStart(2, '0')}`;
  return isCalendarDate(date) ? date : null;
}

/** An amount in the given separators as a 2-decimal string (money.ts does the exact parse), or null. */
export function readMoney(value: unknown, options: { decimal: '.' | ','; group?: string | undefined }): string | null {
  let text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : String(value as string).trim();
  if (typeof value !== 'number') {
    if (options.group) text = text.split(options.group).join('');
    if (options.decimal === ',') {
      if (text.includes('.')) return null;
      text = text.replace(',', '.');
    } else if (text.includes(',')) {
      return null;
    }
  }
  try {
    return formatMoney(parseMoney(text));
  } catch {
    return null;
  }
}

/**
 * A template as a FieldResolver: what a time-capture source asks for its ids.
 * `missing` values name the source field ("project_id is null in the source entry").
 */
export function templateResolver(template: Template): FieldResolver {
  const label = `template ${template.name} v${template.version}`;
  return {
    label,
    resolve(field: string, native: unknown): Resolution {
      const expr = template.fields[field];
      if (!expr) return {};
      const result = evaluate(expr, native);
      if (result.kind === 'value') return { value: result.value };
      if (result.kind === 'absent') return {};
      return { error: `${result.reason} in the source entry` };
    },
  };
}

/** A resolver for a template that is not there: every field fails with that reason. */
export function missingTemplateResolver(name: string, why: string): FieldResolver {
  return { label: `template ${name}`, resolve: () => ({ error: why }) };
}
