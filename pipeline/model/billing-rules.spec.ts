import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  evaluateEntry,
  isBillable,
  matchAssignment,
  planRevision,
  resolveRate,
  wouldExceedCap,
  type ChargedState,
  type EntryReference,
} from './billing-rules.ts';
import type { AssignmentRecord, ConsultantRecord, ProjectRecord, RatecardRecord, TimeRecord } from './types.ts';

function project(patch: Partial<ProjectRecord> = {}): ProjectRecord {
  return {
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
    ...patch,
  };
}

function assignment(patch: Partial<AssignmentRecord> = {}): AssignmentRecord {
  return {
    assignmentId: 'a-1',
    consultantId: 'c-1',
    projectId: 'p-1',
    taskId: 't-1',
    role: 'senior',
    billable: true,
    startDate: '2026-01-01',
    endDate: '2026-12-31',
    revision: 1,
    ...patch,
  };
}

function card(patch: Partial<RatecardRecord> = {}): RatecardRecord {
  return { contractId: 'k-1', role: 'senior', rate: '150.00', currency: 'EUR', effectiveFrom: '2026-01-01', ...patch };
}

function entry(patch: Partial<TimeRecord> = {}): TimeRecord {
  return {
    entryId: 'e-1',
    source: 'harvest',
    revision: 1,
    consultantId: 'c-1',
    projectId: 'p-1',
    taskId: 't-1',
    workDate: '2026-11-20',
    hours: '7.50',
    status: 'approved',
    ...patch,
  };
}

const consultant: ConsultantRecord = { consultantId: 'c-1', homeRegion: 'emea', costRate: '80.00', currency: 'EUR' };

const query = { consultantId: 'c-1', projectId: 'p-1', taskId: 't-1', workDate: '2026-11-20' };

describe('matchAssignment', () => {
  it.each<[string, Partial<AssignmentRecord>, Partial<typeof query>, boolean]>([
    ['covers a day inside the range', {}, {}, true],
    ['covers its first day', { startDate: '2026-11-20' }, {}, true],
    ['covers its last day (endDate is inclusive)', { endDate: '2026-11-20' }, {}, true],
    ['does not cover the day before it starts', { startDate: '2026-11-21' }, {}, false],
    ['does not cover the day after it ends', { endDate: '2026-11-19' }, {}, false],
    ['needs the same consultant', { consultantId: 'c-2' }, {}, false],
    ['needs the same project', { projectId: 'p-2' }, {}, false],
    ['needs the same task', { taskId: 't-2' }, {}, false],
  ])('%s', (_name, patch, queryPatch, matches) => {
    const a = assignment(patch);
    expect(matchAssignment([a], { ...query, ...queryPatch })).toBe(matches ? a : undefined);
  });

  it('finds nothing in an empty list', () => {
    expect(matchAssignment([], query)).toBeUndefined();
  });

  it('prefers the highest revision, then the latest startDate', () => {
    const old = assignment({ assignmentId: 'a-1', revision: 1, startDate: '2026-06-01' });
    const revised = assignment({ assignmentId: 'a-2', revision: 2, startDate: '2026-01-01' });
    const later = assignment({ assignmentId: 'a-3', revision: 2, startDate: '2026-03-01' });
    expect(matchAssignment([old, revised], query)).toBe(revised);
    expect(matchAssignment([old, revised, later], query)).toBe(later);
    expect(matchAssignment([later, revised, old], query)).toBe(later);
  });

  it('lets a later revision of the same assignment supersede, even when it no longer covers the day', () => {
    const v1 = assignment({ revision: 1 });
    const v2 = assignment({ revision: 2, endDate: '2026-10-31' });
    expect(matchAssignment([v1, v2], query)).toBeUndefined();
    expect(matchAssignment([v2, v1], query)).toBeUndefined();
  });

  it('does not depend on the order of the list', () => {
    const candidates = fc.array(
      fc.record({
        assignmentId: fc.constantFrom('a-1', 'a-2', 'a-3', 'a-4'),
        revision: fc.integer({ min: 1, max: 3 }),
        startDate: fc.constantFrom('2026-01-01', '2026-06-01', '2026-11-20', '2026-11-21'),
        endDate: fc.constantFrom('2026-11-19', '2026-11-20', '2026-12-31'),
      }),
      { maxLength: 8 },
    );
    fc.assert(
      fc.property(candidates, (patches) => {
        // One record per (assignmentId, revision), as the reference store keeps them.
        const unique = new Map(patches.map((p) => [`${p.assignmentId}:${p.revision}`, assignment(p)]));
        const list = [...unique.values()];
        expect(matchAssignment([...list].reverse(), query)).toEqual(matchAssignment(list, query));
      }),
    );
  });

  it('answers as the rule reads: the latest revision of each id (the first of equals), then the preferred one that covers the day', () => {
    // The rule as written before matchAssignment stopped building a map per call.
    const byRule = (list: readonly ReturnType<typeof assignment>[]) => {
      const latest = new Map<string, ReturnType<typeof assignment>>();
      for (const a of list) {
        const seen = latest.get(a.assignmentId);
        if (seen === undefined || a.revision > seen.revision) latest.set(a.assignmentId, a);
      }
      const covering = [...latest.values()].filter((a) => a.consultantId === query.consultantId && a.projectId === query.projectId && a.taskId === query.taskId &&
        a.startDate <= query.workDate && query.workDate <= a.endDate);
      covering.sort((a, b) => b.revision - a.revision || (b.startDate > a.startDate ? 1 : b.startDate < a.startDate ? -1 : 0) || (b.assignmentId > a.assignmentId ? 1 : -1));
      return covering[0];
    };
    const patches = fc.array(
      fc.record({
        assignmentId: fc.constantFrom('a-1', 'a-2', 'a-3'),
        revision: fc.integer({ min: 1, max: 3 }),
        startDate: fc.constantFrom('2026-01-01', '2026-11-20', '2026-11-21'),
        endDate: fc.constantFrom('2026-11-19', '2026-11-20', '2026-12-31'),
        taskId: fc.constantFrom(query.taskId, 't-other'),
      }),
      { maxLength: 8 },
    );
    fc.assert(fc.property(patches, (list) => {
      const records = list.map((p) => assignment(p));
      expect(matchAssignment(records, query)).toBe(byRule(records));
    }), { numRuns: 2000 });
  });
});

describe('resolveRate', () => {
  const first = card({ rate: '150.00', effectiveFrom: '2026-01-01', effectiveTo: '2026-07-01' });
  const second = card({ rate: '160.00', effectiveFrom: '2026-07-01' });
  const cards = [first, second];

  it.each<[string, string, RatecardRecord | undefined]>([
    ['before any card', '2025-12-31', undefined],
    ['on the first day of the first card', '2026-01-01', first],
    ['on the last day of the first card', '2026-06-30', first],
    ['on the first card’s effectiveTo, which is the next card’s first day', '2026-07-01', second],
    ['long after, on the open-ended card', '2030-01-01', second],
  ])('%s (%s)', (_name, workDate, expected) => {
    expect(resolveRate(cards, 'k-1', 'senior', workDate)).toBe(expected);
  });

  it('finds nothing on the effectiveTo day when no next card exists', () => {
    expect(resolveRate([first], 'k-1', 'senior', '2026-07-01')).toBeUndefined();
  });

  it.each([
    ['another contract', 'k-2', 'senior'],
    ['another role', 'k-1', 'junior'],
  ])('ignores cards of %s', (_name, contractId, role) => {
    expect(resolveRate(cards, contractId, role, '2026-03-01')).toBeUndefined();
  });

  it('prefers the latest effectiveFrom when cards overlap, in any order', () => {
    const open = card({ rate: '150.00', effectiveFrom: '2026-01-01' });
    const raise = card({ rate: '170.00', effectiveFrom: '2026-05-01' });
    expect(resolveRate([open, raise], 'k-1', 'senior', '2026-05-01')).toBe(raise);
    expect(resolveRate([raise, open], 'k-1', 'senior', '2026-05-01')).toBe(raise);
    expect(resolveRate([raise, open], 'k-1', 'senior', '2026-04-30')).toBe(open);
  });

  it('prefers the highest revision of the same card', () => {
    const v1 = card({ rate: '150.00' });
    const v2 = card({ rate: '155.00', revision: 2 });
    expect(resolveRate([v2, v1], 'k-1', 'senior', '2026-03-01')).toBe(v2);
    expect(resolveRate([v1, v2], 'k-1', 'senior', '2026-03-01')).toBe(v2);
  });
});

describe('isBillable', () => {
  it.each<[string, Partial<ProjectRecord>, string, Partial<AssignmentRecord>, boolean]>([
    ['tm project, billable task, billable assignment', {}, 't-1', {}, true],
    ['fixed_fee project', { billingModel: 'fixed_fee' }, 't-1', {}, false],
    ['non-billable task', {}, 't-2', { taskId: 't-2' }, false],
    ['non-billable assignment', {}, 't-1', { billable: false }, false],
    ['task the project does not list', {}, 't-9', { taskId: 't-9' }, false],
  ])('%s → %s', (_name, projectPatch, taskId, assignmentPatch, billable) => {
    expect(isBillable(project(projectPatch), taskId, assignment(assignmentPatch))).toBe(billable);
  });
});

describe('evaluateEntry', () => {
  function reference(patch: Partial<EntryReference> = {}): EntryReference {
    return { project: project(), assignments: [assignment()], ratecards: [card()], consultant, ...patch };
  }

  it('enriches a billable entry with role, rate, amount and cost', () => {
    const a = assignment();
    const c = card();
    expect(evaluateEntry(entry(), reference({ assignments: [a], ratecards: [c] }))).toEqual({
      kind: 'enriched',
      billable: true,
      role: 'senior',
      rateMinor: 15000n,
      currency: 'EUR',
      amountMinor: 112500n, // 7.50 h × 150.00
      costAmountMinor: 60000n, // 7.50 h × 80.00
      hoursHundredths: 750n,
      assignment: a,
      ratecard: c,
    });
  });

  it('rounds the line amount half away from zero', () => {
    const outcome = evaluateEntry(entry({ hours: '1.50' }), reference({ ratecards: [card({ rate: '33.33' })] }));
    expect(outcome).toMatchObject({ kind: 'enriched', amountMinor: 5000n }); // 49.995 → 50.00
  });

  it('leaves the cost empty when the consultant is unknown', () => {
    expect(evaluateEntry(entry(), reference({ consultant: undefined }))).toMatchObject({
      kind: 'enriched',
      costAmountMinor: null,
    });
  });

  it.each<[string, Partial<EntryReference>, Partial<TimeRecord>, object]>([
    [
      'unknown project',
      { project: undefined },
      {},
      { kind: 'waiting', missing: 'project', code: 'unknown_project', reason: 'project p-1 of entry e-1 is not known' },
    ],
    [
      'closed project',
      { project: project({ status: 'closed' }) },
      {},
      {
        kind: 'exception',
        code: 'project_closed',
        reason: 'project p-1 is closed; entry e-1 on 2026-11-20 cannot be billed',
      },
    ],
    [
      'closed project, even without an assignment',
      { project: project({ status: 'closed' }), assignments: [] },
      {},
      { kind: 'exception', code: 'project_closed' },
    ],
    [
      'no assignment',
      { assignments: [] },
      {},
      {
        kind: 'waiting',
        missing: 'assignment',
        code: 'no_assignment',
        reason: 'no assignment of consultant c-1 on project p-1 task t-1 covers 2026-11-20',
      },
    ],
    [
      'assignment ended before the work date',
      { assignments: [assignment({ endDate: '2026-11-19' })] },
      {},
      { kind: 'waiting', code: 'no_assignment' },
    ],
    [
      'no rate',
      { ratecards: [] },
      {},
      {
        kind: 'waiting',
        missing: 'rate',
        code: 'rate_missing',
        reason: 'no rate of role senior on contract k-1 is effective on 2026-11-20',
      },
    ],
    [
      'rate ended on the work date',
      { ratecards: [card({ effectiveTo: '2026-11-20' })] },
      {},
      { kind: 'waiting', code: 'rate_missing' },
    ],
    [
      'rate only for another role',
      { ratecards: [card({ role: 'junior' })] },
      {},
      { kind: 'waiting', code: 'rate_missing' },
    ],
    [
      'rate in another currency',
      { ratecards: [card({ currency: 'USD' })] },
      {},
      {
        kind: 'exception',
        code: 'rate_mismatch',
        reason: 'rate of role senior on contract k-1 effective 2026-01-01 is in USD, project p-1 bills in EUR',
      },
    ],
  ])('%s', (_name, refPatch, entryPatch, expected) => {
    expect(evaluateEntry(entry(entryPatch), reference(refPatch))).toMatchObject(expected);
  });

  it.each<[string, Partial<EntryReference>, Partial<TimeRecord>]>([
    ['a fixed-fee project', { project: project({ billingModel: 'fixed_fee' }) }, {}],
    ['a non-billable task', { assignments: [assignment({ taskId: 't-2' })] }, { taskId: 't-2' }],
    ['a non-billable assignment', { assignments: [assignment({ billable: false })] }, {}],
  ])('enriches an entry on %s as non-billable, with what it would have cost', (_name, refPatch, entryPatch) => {
    expect(evaluateEntry(entry(entryPatch), reference(refPatch))).toMatchObject({
      kind: 'enriched',
      billable: false,
      role: 'senior',
      rateMinor: 15000n,
      amountMinor: 112500n,
      costAmountMinor: 60000n,
    });
  });

  it('never makes a non-billable entry wait for a rate', () => {
    const ref = reference({ assignments: [assignment({ billable: false })], ratecards: [] });
    expect(evaluateEntry(entry(), ref)).toMatchObject({
      kind: 'enriched',
      billable: false,
      role: 'senior',
      rateMinor: null,
      amountMinor: null,
      ratecard: null,
    });
  });

  it('ignores a rate in another currency on a non-billable entry instead of raising rate_mismatch', () => {
    const ref = reference({ assignments: [assignment({ billable: false })], ratecards: [card({ currency: 'USD' })] });
    expect(evaluateEntry(entry(), ref)).toMatchObject({ kind: 'enriched', billable: false, rateMinor: null, ratecard: null });
  });

  it('uses the card that starts on the work date at a rate boundary', () => {
    const ref = reference({
      ratecards: [
        card({ rate: '150.00', effectiveTo: '2026-11-20' }),
        card({ rate: '160.00', effectiveFrom: '2026-11-20' }),
      ],
    });
    expect(evaluateEntry(entry(), ref)).toMatchObject({ kind: 'enriched', rateMinor: 16000n, amountMinor: 120000n });
  });

  it('bills the same amount whatever the order of reference data', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2400 }), fc.integer({ min: 1, max: 10_000_000 }), (hundredths, rate) => {
        const rateText = `${Math.floor(rate / 100)}.${String(rate % 100).padStart(2, '0')}`;
        const hours = `${Math.floor(hundredths / 100)}.${String(hundredths % 100).padStart(2, '0')}`;
        const cards = [card({ rate: rateText }), card({ rate: '1.00', effectiveFrom: '2025-01-01', effectiveTo: '2026-01-01' })];
        const a = evaluateEntry(entry({ hours }), reference({ ratecards: cards }));
        const b = evaluateEntry(entry({ hours }), reference({ ratecards: [...cards].reverse() }));
        expect(a).toEqual(b);
        expect(a).toMatchObject({ kind: 'enriched', hoursHundredths: BigInt(hundredths), rateMinor: BigInt(rate) });
      }),
    );
  });
});

describe('planRevision', () => {
  const fresh: ChargedState = { chargedRevision: null, chargedHours: 0n, chargedAmountMinor: 0n, latestRevision: null };
  const charged1: ChargedState = { chargedRevision: 1, chargedHours: 750n, chargedAmountMinor: 112500n, latestRevision: 1 };
  // Revision 2 was rejected after revision 1 was charged: reversed, nothing charged now.
  const reversed2: ChargedState = { chargedRevision: null, chargedHours: 0n, chargedAmountMinor: 0n, latestRevision: 2 };
  // Revision 1 was submitted only: seen, never charged.
  const submitted1: ChargedState = { ...fresh, latestRevision: 1 };

  it.each<[string, ChargedState, { revision: number; chargeable: boolean }, ReturnType<typeof planRevision>]>([
    ['a new approved entry is charged', fresh, { revision: 1, chargeable: true }, { stale: false, duplicate: false, reverse: false, charge: true }],
    ['a new submitted entry does nothing', fresh, { revision: 1, chargeable: false }, { stale: false, duplicate: false, reverse: false, charge: false }],
    ['a redelivered charged revision is a duplicate', charged1, { revision: 1, chargeable: true }, { stale: false, duplicate: true, reverse: false, charge: false }],
    ['a lower revision is stale', reversed2, { revision: 1, chargeable: true }, { stale: true, duplicate: false, reverse: false, charge: false }],
    ['a lower revision of a charged entry is stale', { ...charged1, chargedRevision: 2, latestRevision: 2 }, { revision: 1, chargeable: true }, { stale: true, duplicate: false, reverse: false, charge: false }],
    ['a higher approved revision reverses, then charges', charged1, { revision: 2, chargeable: true }, { stale: false, duplicate: false, reverse: true, charge: true }],
    ['a rejection after approval reverses only', charged1, { revision: 2, chargeable: false }, { stale: false, duplicate: false, reverse: true, charge: false }],
    ['a re-submission after approval reverses only', charged1, { revision: 5, chargeable: false }, { stale: false, duplicate: false, reverse: true, charge: false }],
    ['approval after a rejection charges without a reversal', reversed2, { revision: 3, chargeable: true }, { stale: false, duplicate: false, reverse: false, charge: true }],
    ['approval of a submitted entry charges', submitted1, { revision: 2, chargeable: true }, { stale: false, duplicate: false, reverse: false, charge: true }],
  ])('%s', (_name, current, incoming, plan) => {
    expect(planRevision(current, incoming)).toEqual(plan);
  });

  it('never charges or reverses a revision that is stale or a duplicate', () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 1, max: 10 }), { nil: null }),
        fc.option(fc.integer({ min: 1, max: 10 }), { nil: null }),
        fc.integer({ min: 1, max: 10 }),
        fc.boolean(),
        (chargedRevision, latestRevision, revision, chargeable) => {
          const plan = planRevision({ chargedRevision, chargedHours: 0n, chargedAmountMinor: 0n, latestRevision }, { revision, chargeable });
          expect(Number(plan.stale) + Number(plan.duplicate) + Number(plan.reverse || plan.charge)).toBeLessThanOrEqual(1);
          if (plan.stale || plan.duplicate) expect(plan.reverse || plan.charge).toBe(false);
          if (!plan.stale && !plan.duplicate) {
            expect(plan.charge).toBe(chargeable);
            expect(plan.reverse).toBe(chargedRevision !== null);
          }
        },
      ),
    );
  });
});

describe('wouldExceedCap', () => {
  it.each<[string, bigint | null, bigint, bigint, boolean]>([
    ['no cap', null, 10n ** 12n, 10n ** 12n, false],
    ['well under the cap', 100_000n, 50_000n, 10_000n, false],
    ['reaching the cap exactly', 100_000n, 90_000n, 10_000n, false],
    ['one cent over the cap', 100_000n, 90_000n, 10_001n, true],
    ['already at the cap, any charge', 100_000n, 100_000n, 1n, true],
    ['a reversal when over the cap', 100_000n, 120_000n, -5_000n, false],
    ['a zero amount at the cap', 100_000n, 100_000n, 0n, false],
  ])('%s → %s', (_name, cap, posted, delta, exceeds) => {
    expect(wouldExceedCap(cap, posted, delta)).toBe(exceeds);
  });
});
