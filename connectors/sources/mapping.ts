// What every time-capture source's mapping shares: the outcome of mapping one
// native entry (a canonical `time` record with its idempotency key, a skip, or
// field-level errors), the id mapping a template provides, and the exact
// conversions (seconds and decimal hours to 2-decimal hours, instants to
// revisions and local work dates). Pure: no I/O, no clock.
import { createHash } from 'node:crypto';
import { formatHours, roundHalfAwayFromZero } from '../../pipeline/model/money.ts';
import { isCalendarDate, validateRecord } from '../../pipeline/model/records.ts';
import type { FieldError, TimeRecord } from '../../pipeline/model/types.ts';
import type { Resolution } from '../connector-spec.ts';

export const SOURCE_NAMES = ['harvest', 'toggl', 'clockify', 'kimai'] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

export function isSourceName(text: string): text is SourceName {
  return (SOURCE_NAMES as readonly string[]).includes(text);
}

/** Canonical fields a source's mapping template provides from the native entry. */
export const MAPPED_FIELDS = ['projectId', 'consultantId', 'taskId', 'region', 'status', 'timeZone'] as const;
export type MappedField = (typeof MAPPED_FIELDS)[number];

export type { Resolution };

/**
 * Source ids → canonical ids. A mapping template implements it
 * (connectors/templates); tests use `staticIdMapping`.
 */
export interface IdMapping {
  /** Names the mapping in errors, e.g. `template harvest v3`. */
  readonly label: string;
  resolve(field: MappedField, native: unknown): Resolution;
}

/** Whatever mapping one native entry came to. */
export type MapOutcome =
  | { kind: 'record'; sourceId: string; record: TimeRecord; msgId: string }
  | { kind: 'skipped'; sourceId: string; reason: string }
  | { kind: 'invalid'; sourceId: string; errors: FieldError[] };

export interface MapContext {
  ids: IdMapping;
  /**
   * The revision to give the record when the source has no update time of its
   * own (Clockify, Kimai, the Toggl CSV): the revision ledger's answer.
   */
  revision?: number;
}

/** Revisions count seconds from here, so they stay within PostgreSQL's int until 2068. */
export const REVISION_EPOCH_MS = Date.UTC(2000, 0, 1);

/**
 * A revision that grows with the source's update time: whole seconds since
 * 2000-01-01, at least 1. Two edits within one second share a revision; a
 * source that records edits that close together is not one we map.
 *
 * @returns null when the text is no instant.
 */
export function revisionFromInstant(text: string): number | null {
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(1, Math.floor((at - REVISION_EPOCH_MS) / 1000));
}

/** The instant in canonical form: UTC, `Z`, no zero milliseconds. Null when unreadable. */
export function utcInstant(text: string): string | null {
  // Kimai writes offsets without a colon (+0200), which Date.parse reads in Node but not everywhere.
  const at = Date.parse(text.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  if (Number.isNaN(at)) return null;
  return new Date(at).toISOString().replace('.000Z', 'Z');
}

/**
 * Seconds to hours with exactly 2 decimals, rounded half away from zero, in
 * integers (CONTRACT §1): 5400 → "1.50", 18 → "0.01" (0.005 h rounds up).
 */
export function hoursFromSeconds(seconds: number): string {
  if (!Number.isSafeInteger(seconds)) throw new RangeError(`seconds must be a whole number, got ${seconds}`);
  return formatHours(roundHalfAwayFromZero(BigInt(seconds) * 100n, 3600n));
}

/**
 * Decimal hours (a JSON number or text) to 2 decimals, rounded half away from
 * zero on the decimal digits as written, never through a float product:
 * 1.005 → "1.01", 2.1 → "2.10".
 *
 * @returns null when the value is no plain non-negative decimal.
 */
export function hoursFromDecimal(value: number | string): string | null {
  const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value.trim();
  const match = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (match === null) return null;
  const [, whole = '0', fraction = ''] = match;
  let hundredths = BigInt(whole) * 100n + BigInt(fraction.slice(0, 2).padEnd(2, '0'));
  if ((fraction[2] ?? '0') >= '5') hundredths += 1n;
  return formatHours(hundredths);
}

/**
 * ISO-8601 durations as Clockify writes them (`PT1H30M`, `PT45S`, `P1DT2H`) in seconds.
 *
 * @returns null when the text is no duration of days, hours, minutes and seconds.
 */
export function secondsFromIsoDuration(text: string): number | null {
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(text);
  if (match === null || text === 'P' || text.endsWith('T')) return null;
  const [, d = '0', h = '0', m = '0', s = '0'] = match;
  return Number(d) * 86_400 + Number(h) * 3600 + Number(m) * 60 + Math.round(Number(s));
}

/** "HH:MM:SS" (the Toggl export's Duration, hours may pass 24) in seconds; null when unreadable. */
export function secondsFromClock(text: string): number | null {
  const match = /^(\d+):([0-5]\d):([0-5]\d)$/.exec(text.trim());
  if (match === null) return null;
  return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/**
 * The calendar day an instant falls on in a time zone: the day the work was
 * done for the person who tracked it, not the day in UTC.
 *
 * @throws RangeError for a time zone Intl does not know.
 */
export function localDate(instant: string, timeZone: string): string | null {
  const at = Date.parse(instant.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  if (Number.isNaN(at)) return null;
  let format = dateFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    dateFormats.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(at).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** Stable JSON (sorted keys), so a fingerprint depends on content, not key order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A short digest of a native entry's content: equal content, equal fingerprint. */
export function fingerprint(native: unknown): string {
  return createHash('sha256').update(stableJson(native)).digest('hex').slice(0, 16);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const STATUSES = ['submitted', 'approved', 'rejected'] as const;
type Status = (typeof STATUSES)[number];

/**
 * Collects a time record field by field, keeping every problem with the
 * source's field name, then validates the whole against CONTRACT §2.
 */
export class TimeDraft {
  readonly #source: SourceName;
  readonly #sourceId: string;
  readonly #ids: IdMapping;
  readonly #native: unknown;
  readonly record: Record<string, unknown>;
  readonly errors: FieldError[] = [];

  constructor(source: SourceName, sourceId: string, ctx: MapContext, native: unknown) {
    this.#source = source;
    this.#sourceId = sourceId;
    this.#ids = ctx.ids;
    this.#native = native;
    this.record = { source, entryId: `${source}-${sourceId}` };
  }

  fail(field: string, reason: string): void {
    this.errors.push({ field, reason });
  }

  /** Sets projectId, consultantId, taskId (required) and region (optional) from the id mapping. */
  mapIds(): void {
    for (const field of ['projectId', 'consultantId', 'taskId', 'region'] as const) {
      const resolution = this.#ids.resolve(field, this.#native);
      if (resolution.error !== undefined) this.fail(field, `${resolution.error} (${this.#ids.label})`);
      else if (resolution.value !== undefined && resolution.value !== null) this.record[field] = String(resolution.value);
      else if (field !== 'region') this.fail(field, `has no mapping in ${this.#ids.label}; add a "${field}" expression to the template`);
    }
  }

  /** The template's status for sources that carry no approval state, else `fallback`. */
  templateStatus(fallback: Status = 'submitted'): Status {
    const resolution = this.#ids.resolve('status', this.#native);
    if (resolution.error !== undefined) {
      this.fail('status', `${resolution.error} (${this.#ids.label})`);
      return fallback;
    }
    if (resolution.value === undefined || resolution.value === null) return fallback;
    const value = String(resolution.value);
    if ((STATUSES as readonly string[]).includes(value)) return value as Status;
    this.fail('status', `the template gives "${value}"; it must be one of ${STATUSES.join(', ')} (${this.#ids.label})`);
    return fallback;
  }

  /** The template's time zone (for work dates of sources that give UTC instants); UTC when it has none. */
  timeZone(): string {
    const resolution = this.#ids.resolve('timeZone', this.#native);
    if (typeof resolution.value === 'string' && resolution.value !== '') {
      try {
        new Intl.DateTimeFormat('en-CA', { timeZone: resolution.value });
        return resolution.value;
      } catch {
        this.fail('workDate', `time zone "${resolution.value}" of ${this.#ids.label} is unknown`);
      }
    }
    return 'UTC';
  }

  /** Validates the collected record; every mapping and schema problem in one list. */
  finish(msgId: string): MapOutcome {
    if (this.errors.length > 0) {
      // Schema errors of fields that already failed mapping would only repeat them.
      const failed = new Set(this.errors.map((e) => e.field));
      const validation = validateRecord('time', this.record);
      const extra = validation.ok ? [] : validation.errors.filter((e) => !failed.has(e.field));
      return { kind: 'invalid', sourceId: this.#sourceId, errors: [...this.errors, ...extra] };
    }
    const validation = validateRecord('time', { ...this.record, sourceKey: msgId });
    if (!validation.ok) return { kind: 'invalid', sourceId: this.#sourceId, errors: validation.errors };
    return { kind: 'record', sourceId: this.#sourceId, record: validation.record, msgId };
  }

  get source(): SourceName {
    return this.#source;
  }
}

/** Reads a value at a dotted path (`project.id`) of a native entry. */
export function pathValue(value: unknown, path: string): unknown {
  let current: unknown = value;
  for (const part of path.split('.')) {
    if (Array.isArray(current) && /^\d+$/.test(part)) current = current[Number(part)];
    else if (isObject(current)) current = current[part];
    // Through an explicit null the answer is null: the source said "none", it did not leave it out.
    else return current === null ? null : undefined;
  }
  return current;
}

/** An id mapping from plain tables keyed by the native entry's ids, for tests and simple setups. */
export function staticIdMapping(spec: {
  label?: string;
  paths: Partial<Record<MappedField, string>>;
  tables?: Partial<Record<MappedField, Record<string, string>>>;
  constants?: Partial<Record<MappedField, string>>;
}): IdMapping {
  return {
    label: spec.label ?? 'static id mapping',
    resolve(field, native) {
      const constant = spec.constants?.[field];
      if (constant !== undefined) return { value: constant };
      const path = spec.paths[field];
      if (path === undefined) return {};
      let raw = pathValue(native, path);
      if (isObject(raw) && 'id' in raw) raw = raw.id;
      if (raw === null) return { error: `${path} is null in the source entry` };
      if (raw === undefined) return { error: `${path} is missing in the source entry` };
      const table = spec.tables?.[field];
      if (!table) return { value: raw };
      const mapped = table[String(raw as string | number)];
      return mapped === undefined ? { error: `${path} ${JSON.stringify(raw)} is not in the lookup table` } : { value: mapped };
    },
  };
}

/** Reads `YYYY-MM-DD` or records why not. */
export function readDate(draft: TimeDraft, field: string, nativeField: string, value: unknown): string | undefined {
  if (typeof value === 'string' && isCalendarDate(value)) return value;
  draft.fail(field, `${nativeField} ${JSON.stringify(value ?? null)} is no date YYYY-MM-DD`);
  return undefined;
}
