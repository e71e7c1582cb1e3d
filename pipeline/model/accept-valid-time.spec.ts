import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { acceptValidTime, decodeRecord, timeSchema } from './records.ts';

const entry = {
  entryId: 'e-1', source: 'harvest', revision: 1, consultantId: 'c-1', projectId: 'p-1', taskId: 't-1',
  workDate: '2026-11-20', hours: '7.50', status: 'approved',
};

/** The schema's verdict and output, next to the fast path's, for a value parsed from JSON text. */
function bothOf(text: string): { fast: unknown; schema: { success: boolean; data?: unknown } } {
  const raw: unknown = JSON.parse(text);
  return { fast: acceptValidTime(raw), schema: timeSchema.safeParse(raw) };
}

function expectSameAsSchema(text: string): void {
  const { fast, schema } = bothOf(text);
  expect(fast !== null, `fast path ${fast === null ? 'refused' : 'accepted'} what the schema ${schema.success ? 'accepts' : 'refuses'}: ${text}`).toBe(schema.success);
  if (fast === null) return;
  expect(fast).toStrictEqual(schema.data);
  // Key order too: the record is re-serialised for enriched.* and the ledger.
  expect(JSON.stringify(fast)).toBe(JSON.stringify(schema.data));
}

describe('acceptValidTime', () => {
  it('gives what the schema gives for valid entries: hours made canonical, optional and unknown fields kept in order', () => {
    const variants = [
      entry,
      { ...entry, hours: 7.5 },
      { ...entry, hours: '8' },
      { ...entry, hours: 24 },
      { ...entry, hours: '0.01' },
      { extra: 1, ...entry, notes: 'on site', region: 'emea', nested: { a: [1, 2] } },
      { ...entry, status: 'submitted', submittedAt: '2026-11-20T17:30:00Z', approvedAt: '2026-11-21T09:00:00.123+00:00', approvedBy: 'm-1' },
      { '10': 'ten', '2': 'two', ...entry, zeta: null, alpha: false },
    ];
    for (const variant of variants) {
      const text = JSON.stringify(variant);
      expect(acceptValidTime(JSON.parse(text)), text).not.toBeNull();
      expectSameAsSchema(text);
    }
  });

  it('leaves a __proto__ key out, as the schema does, without touching the prototype', () => {
    const text = `{"__proto__":{"polluted":true},${JSON.stringify(entry).slice(1)}`;
    const record = acceptValidTime(JSON.parse(text)) as Record<string, unknown>;
    expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
    expect(Object.hasOwn(record, '__proto__')).toBe(false);
    expectSameAsSchema(text);
  });

  it('refuses each broken field, leaving the schema to word why', () => {
    const broken: Record<string, unknown>[] = [
      { hours: 0 }, { hours: 24.01 }, { hours: '7.555' }, { hours: '' }, { hours: '1e1' }, { hours: true }, { hours: null },
      { revision: 0 }, { revision: 1.5 }, { revision: '1' }, { revision: 2 ** 53 },
      { entryId: '' }, { entryId: 'e 1' }, { entryId: 'x'.repeat(65) }, { projectId: 'p.1' }, { consultantId: 7 }, { taskId: null },
      { source: '   ' }, { source: 'x'.repeat(257) }, { workDate: '2026-02-30' }, { workDate: '2026-11-20T00:00:00Z' },
      { status: 'Approved' }, { status: 'draft' }, { region: 'EMEA' }, { region: 'e' }, { notes: 5 },
      { submittedAt: '2026-11-20T17:30:00+01:00' }, { approvedAt: '2026-11-20 17:30:00Z' }, { approvedAt: '2026-13-01T00:00:00Z' }, { approvedBy: '' },
    ];
    for (const change of broken) {
      const text = JSON.stringify({ ...entry, ...change });
      expect(acceptValidTime(JSON.parse(text)), text).toBeNull();
      expect(decodeRecord('time', text).ok, text).toBe(false);
    }
    for (const field of ['entryId', 'source', 'revision', 'consultantId', 'projectId', 'taskId', 'workDate', 'hours', 'status']) {
      const { [field]: _dropped, ...rest } = entry as Record<string, unknown>;
      expect(acceptValidTime(rest), `without ${field}`).toBeNull();
    }
    for (const notObject of [null, [], 'entry', 7]) expect(acceptValidTime(notObject)).toBeNull();
  });

  it('accepts exactly what the schema accepts, with the same output, for any JSON record', () => {
    // Each field is absent, valid, nearly valid or of another type, so most
    // records break one or two rules and many break none.
    const field = <T>(valid: fc.Arbitrary<T>, ...wrong: unknown[]) =>
      fc.oneof({ weight: 40, arbitrary: valid.map((v): unknown => v) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(undefined, null, 7, '', true, [], {}, ...wrong) }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }).map((v): unknown => v) });
    const record = fc.record({
      entryId: field(fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/), 'e 1', 'x'.repeat(65)),
      source: field(fc.constantFrom('harvest', ' tempo ', 'x'.repeat(256)), ' ', 'x'.repeat(257)),
      revision: field(fc.integer({ min: 1, max: 2 ** 40 }), 0, -1, 1.5, 2 ** 53, '1'),
      consultantId: field(fc.constantFrom('c-1', 'C_2')),
      projectId: field(fc.constantFrom('p-1', 'p-2'), 'p.1'),
      taskId: field(fc.constantFrom('t-1')),
      workDate: field(fc.constantFrom('2026-11-20', '2028-02-29'), '2026-02-29', '2026-2-1', '2026-11-20Z'),
      hours: field(fc.oneof(fc.integer({ min: -2, max: 30 }), fc.double({ min: -1, max: 30, noNaN: true }), fc.constantFrom('7.5', '7.50', '07.5', '24.00', '24.01', '0.00', '.5', '5.', '-1', '7.555', ' 7.5', '1e1')), '7,5'),
      status: field(fc.constantFrom('submitted', 'approved', 'rejected'), 'Approved', 'draft'),
      region: field(fc.constantFrom('emea', 'us1', 'global'), 'EMEA', 'e', 'x'.repeat(17)),
      notes: field(fc.string({ maxLength: 12 })),
      submittedAt: field(fc.constantFrom('2026-11-20T17:30:00Z', '2026-11-20T17:30:00.5Z', '2026-11-20T17:30:00+00:00', '2026-11-20T17:30:00+0000'), '2026-11-20T17:30Z', '2026-11-20T24:00:00Z', '2026-11-20T17:30:00+01:00'),
      approvedAt: field(fc.constantFrom('2026-11-21T09:00:00Z', '2024-02-29T00:00:00.000000Z'), '2026-02-29T00:00:00Z'),
      approvedBy: field(fc.constantFrom('m-1', 'x'.repeat(256)), '\t', 'x'.repeat(257)),
      proto: fc.constantFrom<unknown>(undefined, { polluted: true }, 1),
      extra: fc.constantFrom<unknown>(undefined, 1, 'x', null, { a: 1 }),
      '3': fc.constantFrom<unknown>(undefined, 'three'),
    }, { requiredKeys: [] });
    let accepted = 0;
    fc.assert(fc.property(record, (fields) => {
      // Built as JSON text, so __proto__ becomes an own key as JSON.parse makes it.
      const text = `{${Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k === 'proto' ? '__proto__' : k)}:${JSON.stringify(v)}`).join(',')}}`;
      expectSameAsSchema(text);
      if (acceptValidTime(JSON.parse(text)) !== null) accepted++;
    }), { numRuns: 3000 });
    // The property means little unless both verdicts came up often.
    expect(accepted).toBeGreaterThan(50);
    expect(accepted).toBeLessThan(2950);
  });
});
