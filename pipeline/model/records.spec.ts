import fc from 'fast-check';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  decodeRecord,
  defaultMsgId,
  ID_PATTERN,
  isCalendarDate,
  isRecordKind,
  REASONS,
  recordId,
  recordKey,
  recordSchemas,
  REGION_PATTERN,
  validateRecord,
} from './records.ts';
import { RECORD_KINDS, type FieldError, type RecordByKind, type RecordKind, type TimeRecord } from './types.ts';

/** One valid record of each kind; each test copies and breaks one. */
const valid: { [K in RecordKind]: Record<string, unknown> } = {
  consultant: { consultantId: 'c-1', homeRegion: 'emea', costRate: '80.00', currency: 'EUR' },
  project: {
    projectId: 'p-1',
    customerId: 'cust-1',
    contractId: 'k-1',
    region: 'emea',
    currency: 'EUR',
    billingModel: 'tm',
    status: 'active',
    legalEntity: 'Acme GmbH',
    tasks: [
      { taskId: 't-1', billable: true },
      { taskId: 't-2', billable: false },
    ],
  },
  assignment: {
    assignmentId: 'a-1',
    consultantId: 'c-1',
    projectId: 'p-1',
    taskId: 't-1',
    role: 'senior',
    billable: true,
    startDate: '2026-01-01',
    endDate: '2026-12-31',
    revision: 1,
  },
  ratecard: { contractId: 'k-1', role: 'senior', rate: '150.00', currency: 'EUR', effectiveFrom: '2026-01-01' },
  time: {
    entryId: 'e-1',
    source: 'harvest',
    revision: 1,
    consultantId: 'c-1',
    projectId: 'p-1',
    taskId: 't-1',
    workDate: '2026-11-20',
    hours: 7.5,
    status: 'approved',
  },
  milestone: { milestoneId: 'm-1', projectId: 'p-1', amount: '5000.00', currency: 'EUR', status: 'complete' },
};

const required: { [K in RecordKind]: string[] } = {
  consultant: ['consultantId', 'homeRegion', 'costRate', 'currency'],
  project: ['projectId', 'customerId', 'contractId', 'region', 'currency', 'billingModel', 'status', 'legalEntity', 'tasks'],
  assignment: ['assignmentId', 'consultantId', 'projectId', 'taskId', 'role', 'billable', 'startDate', 'endDate', 'revision'],
  ratecard: ['contractId', 'role', 'rate', 'currency', 'effectiveFrom'],
  time: ['entryId', 'source', 'revision', 'consultantId', 'projectId', 'taskId', 'workDate', 'hours', 'status'],
  milestone: ['milestoneId', 'projectId', 'amount', 'currency', 'status'],
};

function with_(kind: RecordKind, patch: Record<string, unknown>): Record<string, unknown> {
  return { ...structuredClone(valid[kind]), ...patch };
}

function errorsOf(kind: RecordKind, raw: unknown): FieldError[] {
  const result = validateRecord(kind, raw);
  if (result.ok) throw new Error(`expected ${kind} ${JSON.stringify(raw)} to be refused`);
  return result.errors;
}

describe('validateRecord', () => {
  it.each(RECORD_KINDS)('accepts the valid %s fixture', (kind) => {
    expect(validateRecord(kind, valid[kind]).ok).toBe(true);
  });

  const missing = RECORD_KINDS.flatMap((kind) => required[kind].map((field) => [kind, field] as const));
  it.each(missing)('a %s without %s is refused, naming the field', (kind, field) => {
    const raw = structuredClone(valid[kind]);
    delete raw[field];
    expect(errorsOf(kind, raw)).toEqual([{ field, reason: 'is required' }]);
  });

  it.each([
    ['consultant', { consultantId: 'c 1' }, 'consultantId', REASONS.id],
    ['consultant', { consultantId: '' }, 'consultantId', REASONS.id],
    ['consultant', { consultantId: 'x'.repeat(65) }, 'consultantId', REASONS.id],
    ['consultant', { consultantId: 'c.1' }, 'consultantId', REASONS.id],
    ['consultant', { consultantId: 42 }, 'consultantId', REASONS.id],
    ['consultant', { homeRegion: 'EMEA' }, 'homeRegion', REASONS.region],
    ['consultant', { homeRegion: 'e' }, 'homeRegion', REASONS.region],
    ['consultant', { costRate: '80' }, 'costRate', 'must have exactly 2 decimals, e.g. "1125.00"'],
    ['consultant', { costRate: 80 }, 'costRate', REASONS.money],
    ['consultant', { costRate: '80.5' }, 'costRate', REASONS.money],
    ['consultant', { currency: 'eur' }, 'currency', REASONS.currency],
    ['consultant', { currency: 'EURO' }, 'currency', REASONS.currency],
    ['consultant', { notes: 42 }, 'notes', REASONS.notes],
    ['consultant', { revision: 0 }, 'revision', REASONS.revision],
    ['consultant', { region: 'Global' }, 'region', REASONS.region],
    ['project', { billingModel: 'retainer' }, 'billingModel', 'must be one of tm, fixed_fee'],
    ['project', { status: 'open' }, 'status', 'must be one of active, closed'],
    ['project', { tasks: [] }, 'tasks', REASONS.tasks],
    ['project', { tasks: 't-1' }, 'tasks', REASONS.tasks],
    ['project', { tasks: [{ taskId: 't 1', billable: true }] }, 'tasks.0.taskId', REASONS.id],
    ['project', { tasks: [{ taskId: 't-1', billable: true }, { taskId: 't-2' }] }, 'tasks.1.billable', 'is required'],
    ['project', { tasks: [{ taskId: 't-1', billable: 'yes' }] }, 'tasks.0.billable', REASONS.boolean],
    ['project', { notToExceed: '1000' }, 'notToExceed', REASONS.money],
    ['project', { legalEntity: '  ' }, 'legalEntity', REASONS.text],
    ['project', { region: 'eu-west' }, 'region', REASONS.region],
    ['assignment', { startDate: '2026-02-30' }, 'startDate', REASONS.date],
    ['assignment', { startDate: '2026-1-01' }, 'startDate', REASONS.date],
    ['assignment', { startDate: '2026-01-01T00:00:00Z' }, 'startDate', REASONS.date],
    ['assignment', { endDate: '2025-02-29' }, 'endDate', REASONS.date],
    ['assignment', { endDate: '2025-12-31' }, 'endDate', 'must be on or after startDate (2026-01-01)'],
    ['assignment', { billable: 'true' }, 'billable', REASONS.boolean],
    ['assignment', { revision: 1.5 }, 'revision', REASONS.revision],
    ['assignment', { revision: '1' }, 'revision', REASONS.revision],
    ['assignment', { role: '' }, 'role', REASONS.text],
    ['ratecard', { rate: '150.001' }, 'rate', REASONS.money],
    ['ratecard', { effectiveTo: '2026-01-01' }, 'effectiveTo', 'must be after effectiveFrom (2026-01-01); effectiveTo is exclusive'],
    ['ratecard', { effectiveTo: '2025-06-01' }, 'effectiveTo', 'must be after effectiveFrom (2026-01-01); effectiveTo is exclusive'],
    ['ratecard', { effectiveFrom: '2026-13-01' }, 'effectiveFrom', REASONS.date],
    ['time', { hours: 0 }, 'hours', 'must be greater than 0 and at most 24'],
    ['time', { hours: '0.00' }, 'hours', REASONS.hoursRange],
    ['time', { hours: -1 }, 'hours', REASONS.hoursRange],
    ['time', { hours: 24.01 }, 'hours', REASONS.hoursRange],
    ['time', { hours: '7.505' }, 'hours', REASONS.hoursDecimals],
    ['time', { hours: 7.505 }, 'hours', REASONS.hoursDecimals],
    ['time', { hours: '1e1' }, 'hours', REASONS.hoursType],
    ['time', { hours: 'seven' }, 'hours', REASONS.hoursType],
    ['time', { hours: true }, 'hours', REASONS.hoursType],
    ['time', { hours: null }, 'hours', REASONS.hoursType],
    ['time', { revision: 0 }, 'revision', REASONS.revision],
    ['time', { status: 'draft' }, 'status', 'must be one of submitted, approved, rejected'],
    ['time', { submittedAt: '2026-11-20' }, 'submittedAt', REASONS.instant],
    ['time', { approvedAt: '2026-11-20T17:30:00+02:00' }, 'approvedAt', REASONS.instant],
    ['time', { approvedAt: '2026-02-30T17:30:00Z' }, 'approvedAt', REASONS.instant],
    ['time', { notes: { text: 'x' } }, 'notes', REASONS.notes],
    ['time', { workDate: '20261120' }, 'workDate', REASONS.date],
    ['time', { projectId: 'p>1' }, 'projectId', REASONS.id],
    ['time', { region: 'ap*' }, 'region', REASONS.region],
    ['milestone', { status: 'done' }, 'status', 'must be one of complete'],
    ['milestone', { amount: '5000' }, 'amount', REASONS.money],
  ] as const)('a %s with %j is refused: %s %s', (kind, patch, field, reason) => {
    expect(errorsOf(kind, with_(kind, patch))).toEqual([{ field, reason }]);
  });

  it('reports every broken field at once', () => {
    const errors = errorsOf('time', with_('time', { entryId: 'e 1', hours: 25, status: 'x' }));
    expect(errors.map((e) => e.field)).toEqual(['entryId', 'hours', 'status']);
  });

  it.each([null, 42, 'text', [], true])('refuses %j as a whole record', (raw) => {
    expect(errorsOf('time', raw)).toEqual([{ field: '(record)', reason: REASONS.notObject }]);
  });

  it.each<[number | string, string]>([
    [7.5, '7.50'],
    ['7.50', '7.50'],
    ['7.5', '7.50'],
    [8, '8.00'],
    [24, '24.00'],
    ['24', '24.00'],
    [0.01, '0.01'],
    [1.15, '1.15'],
  ])('keeps hours %j as the canonical string %j', (given, canonical) => {
    const result = validateRecord('time', with_('time', { hours: given }));
    expect(result).toMatchObject({ ok: true, record: { hours: canonical } });
  });

  it('keeps hours a 2-decimal string for every valid quarter-hour given as a number', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2400 }), (hundredths) => {
        const result = validateRecord('time', with_('time', { hours: hundredths / 100 }));
        expect(result.ok && result.record.hours).toBe((hundredths / 100).toFixed(2));
      }),
    );
  });

  it('types parsed hours as a string, so downstream code never meets a float', () => {
    expectTypeOf<TimeRecord['hours']>().toEqualTypeOf<string>();
    expectTypeOf<RecordByKind['time']['revision']>().toEqualTypeOf<number>();
    expectTypeOf<RecordByKind['ratecard']['revision']>().toEqualTypeOf<number | undefined>();
  });

  it('accepts the optional fields of a time entry', () => {
    const raw = with_('time', {
      submittedAt: '2026-11-20T17:30:00Z',
      approvedAt: '2026-11-21T09:00:00.123Z',
      approvedBy: 'manager@example.com',
      notes: 'client workshop',
      region: 'emea',
    });
    expect(validateRecord('time', raw).ok).toBe(true);
  });

  it('accepts +00:00 as a UTC offset', () => {
    expect(validateRecord('time', with_('time', { approvedAt: '2026-11-21T09:00:00+00:00' })).ok).toBe(true);
  });

  it('keeps unknown fields for analytics', () => {
    const result = validateRecord('time', with_('time', { costCentre: 'CC-9', tags: ['onsite'] }));
    expect(result).toMatchObject({ ok: true, record: { costCentre: 'CC-9', tags: ['onsite'] } });
  });

  it('does not let a __proto__ key change the prototype of the record', () => {
    const raw: unknown = JSON.parse(JSON.stringify(valid.consultant).replace('{', '{"__proto__":{"polluted":true},'));
    const result = validateRecord('consultant', raw);
    expect(result.ok).toBe(true);
    if (result.ok) expect(Object.getPrototypeOf(result.record)).toBe(Object.prototype);
  });

  it('allows the global region on consultants and ratecards, optional notToExceed, an open-ended ratecard', () => {
    expect(validateRecord('consultant', with_('consultant', { homeRegion: 'global' })).ok).toBe(true);
    expect(validateRecord('ratecard', with_('ratecard', { region: 'global' })).ok).toBe(true);
    expect(validateRecord('project', with_('project', { notToExceed: '100000.00' })).ok).toBe(true);
    expect(validateRecord('ratecard', with_('ratecard', { effectiveTo: '2026-01-02' })).ok).toBe(true);
    expect(validateRecord('assignment', with_('assignment', { endDate: '2026-01-01' })).ok).toBe(true);
  });

  it('never throws, whatever it is given', () => {
    fc.assert(
      fc.property(fc.constantFrom(...RECORD_KINDS), fc.anything(), (kind, raw) => {
        const result = validateRecord(kind, raw);
        if (!result.ok) expect(result.errors.length).toBeGreaterThan(0);
      }),
    );
  });

  it('reports a record it cannot read instead of throwing', () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('boom');
        },
      },
    );
    expect(errorsOf('time', hostile)).toEqual([{ field: '(record)', reason: 'could not be read: boom' }]);
  });
});

describe('decodeRecord', () => {
  it('parses JSON text and bytes', () => {
    const text = JSON.stringify(valid.time);
    expect(decodeRecord('time', text)).toMatchObject({ ok: true, record: { hours: '7.50' } });
    expect(decodeRecord('time', new TextEncoder().encode(text))).toMatchObject({ ok: true, record: { entryId: 'e-1' } });
  });

  it.each(['{', '', '{"entryId":', "{'a':1}", 'undefined'])('says %j is not valid JSON', (text) => {
    const result = decodeRecord('time', text);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors).toHaveLength(1);
      expect(result.errors[0]?.field).toBe('(record)');
      expect(result.errors[0]?.reason).toMatch(/^is not valid JSON: .+/);
    }
  });

  it('says invalid UTF-8 is not valid UTF-8', () => {
    const result = decodeRecord('time', new Uint8Array([0x7b, 0xff, 0x7d]));
    expect(result).toMatchObject({ ok: false, errors: [{ field: '(record)' }] });
    expect(!result.ok && result.errors[0]?.reason).toMatch(/^is not valid UTF-8/);
  });

  it('validates what it parsed', () => {
    expect(decodeRecord('time', JSON.stringify(with_('time', { hours: 0 })))).toEqual({
      ok: false,
      errors: [{ field: 'hours', reason: REASONS.hoursRange }],
    });
  });
});

describe('record identity', () => {
  function parsed<K extends RecordKind>(kind: K, patch: Record<string, unknown> = {}): RecordByKind[K] {
    const result = validateRecord(kind, with_(kind, patch));
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    return result.record;
  }

  it.each<[RecordKind, string, string, string]>([
    ['consultant', 'c-1', 'c-1', 'consultant:c-1:c-1:1'],
    ['project', 'p-1', 'p-1', 'project:p-1:p-1:1'],
    ['assignment', 'p-1', 'a-1', 'assignment:p-1:a-1:1'],
    ['ratecard', 'k-1', 'k-1:senior:2026-01-01', 'ratecard:k-1:k-1:senior:2026-01-01:1'],
    ['time', 'p-1', 'e-1', 'time:p-1:e-1:1'],
    ['milestone', 'p-1', 'm-1', 'milestone:p-1:m-1:1'],
  ])('a %s is keyed by %s, identified as %s, with message id %s', (kind, key, id, msgId) => {
    const record = parsed(kind);
    expect(recordKey(kind, record)).toBe(key);
    expect(recordId(kind, record)).toBe(id);
    expect(defaultMsgId(kind, record)).toBe(msgId);
  });

  it('puts the revision in the message id', () => {
    expect(defaultMsgId('time', parsed('time', { revision: 3 }))).toBe('time:p-1:e-1:3');
    expect(defaultMsgId('project', parsed('project', { revision: 2 }))).toBe('project:p-1:p-1:2');
  });
});

describe('patterns and kinds', () => {
  it.each(RECORD_KINDS)('%s is a record kind with a schema', (kind) => {
    expect(isRecordKind(kind)).toBe(true);
    expect(recordSchemas[kind]).toBeDefined();
  });

  it.each(['Time', 'entry', '', 'toString', '__proto__'])('%j is not a record kind', (kind) => {
    expect(isRecordKind(kind)).toBe(false);
  });

  it.each([
    ['a', true],
    ['A_b-9', true],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
    ['', false],
    ['a.b', false],
    ['a*', false],
    ['a>', false],
    ['é', false],
  ])('ID_PATTERN on %j is %s', (text, ok) => {
    expect(ID_PATTERN.test(text)).toBe(ok);
  });

  it.each([
    ['emea', true],
    ['global', true],
    ['us1', true],
    ['e', false],
    ['EMEA', false],
    ['a'.repeat(17), false],
    ['eu-west', false],
  ])('REGION_PATTERN on %j is %s', (text, ok) => {
    expect(REGION_PATTERN.test(text)).toBe(ok);
  });

  it.each([
    ['2024-02-29', true],
    ['2000-02-29', true],
    ['1900-02-29', false],
    ['2026-02-29', false],
    ['2026-04-31', false],
    ['2026-12-31', true],
    ['2026-00-10', false],
    ['2026-01-00', false],
    ['2026-1-1', false],
  ])('isCalendarDate(%j) is %s', (text, ok) => {
    expect(isCalendarDate(text)).toBe(ok);
  });

  it('agrees with the calendar for every day over four centuries', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1600, max: 2400 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 31 }), (y, m, d) => {
        const text = `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
        const date = new Date(Date.UTC(y, m - 1, d));
        expect(isCalendarDate(text)).toBe(date.getUTCDate() === d);
      }),
    );
  });
});
