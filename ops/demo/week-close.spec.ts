import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  amountCents,
  divideHalfAwayFromZero,
  expectedOutcome,
  generateWeekClose,
  messagePayload,
  money,
  parseHundredths,
  WeekCloseOptionsError,
  type AssignmentRecord,
  type IngestMessage,
  type MilestoneRecord,
  type ProjectRecord,
  type RatecardRecord,
  type TimeRecord,
  type WeekClose,
} from './week-close.ts';

const SUBJECT = /^ingest\.(consultant|project|assignment|ratecard|time|milestone)\.[a-z0-9]{2,16}\.[A-Za-z0-9_-]{1,64}$/;
const MONEY = /^-?\d+\.\d{2}$/;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('generateWeekClose', () => {
  it('gives the same week for the same seed and another week for another seed', () => {
    const random = vi.spyOn(Math, 'random');
    const first = generateWeekClose({ seed: 7, entries: 2_000, projects: 40, consultants: 80 });
    const again = generateWeekClose({ seed: 7, entries: 2_000, projects: 40, consultants: 80 });
    const other = generateWeekClose({ seed: 8, entries: 2_000, projects: 40, consultants: 80 });
    expect(again).toEqual(first);
    expect(other.messages).not.toEqual(first.messages);
    expect(random).not.toHaveBeenCalled();
  });

  it('rejects options that cannot make a week, naming the option', () => {
    expect(() => generateWeekClose({ seed: 1, projects: 5 })).toThrow(WeekCloseOptionsError);
    expect(() => generateWeekClose({ seed: 1, regions: ['North America'] })).toThrow(/regions/);
    expect(() => generateWeekClose({ seed: 1, weekStart: '2025-03-04' })).toThrow(/weekStart/);
  });

  describe('a default week (100 000 entries)', () => {
    let cached: WeekClose | undefined;
    const week = (): WeekClose => (cached ??= generateWeekClose({ seed: 20250307 }));
    const timeMessages = () => week().messages.filter((m) => m.subject.startsWith('ingest.time.'));
    const timeRecords = () => timeMessages().flatMap((m) => (m.record === undefined ? [] : [m.record as TimeRecord]));

    it('publishes on CONTRACT §4 subjects, reference data on `global` for consultants and ratecards', () => {
      for (const m of week().messages) expect(m.subject).toMatch(SUBJECT);
      const kinds = new Set(week().messages.map((m) => m.subject.split('.').slice(1, 3).join('.')));
      expect(kinds).toContain('consultant.global');
      expect(kinds).toContain('ratecard.global');
      expect(week().messages.filter((m) => m.raw !== undefined)).toHaveLength(week().plan.invalid.malformedJson);
      for (const m of week().messages.filter((m) => m.raw !== undefined)) expect(() => JSON.parse(messagePayload(m)) as unknown).toThrow();
    });

    it('writes money as 2-decimal strings and hours both as numbers and as strings', () => {
      const w = week();
      for (const c of w.consultants) expect(c.costRate).toMatch(MONEY);
      for (const r of w.ratecards) expect(r.rate).toMatch(MONEY);
      for (const m of w.milestones) expect(m.amount).toMatch(MONEY);
      for (const p of w.projects) if (p.notToExceed !== undefined) expect(p.notToExceed).toMatch(MONEY);
      const hours = timeRecords().map((r) => r.hours);
      const numbers = hours.filter((h) => typeof h === 'number').length;
      expect(numbers / hours.length).toBeGreaterThan(0.4);
      expect(numbers / hours.length).toBeLessThan(0.6);
      for (const h of hours) if (typeof h === 'string') expect(h).toMatch(MONEY);
    });

    it('plants redeliveries, corrections, rejections and submitted-only entries in about the intended shares', () => {
      const { plan } = week();
      const messages = timeMessages().length;
      expect(plan.duplicates / messages).toBeGreaterThan(0.015);
      expect(plan.duplicates / messages).toBeLessThan(0.025);
      expect(plan.duplicatesWithSameMsgId).toBeGreaterThan(plan.duplicates * 0.4);
      expect(plan.duplicatesWithSameMsgId).toBeLessThan(plan.duplicates * 0.6);
      expect(plan.revised / plan.entries).toBeGreaterThan(0.005);
      expect(plan.revised / plan.entries).toBeLessThan(0.015);
      expect(plan.rejectedAfterApproval).toBeGreaterThan(50);
      expect(plan.submittedOnly / plan.entries).toBeGreaterThan(0.02);
      expect(plan.submittedOnly / plan.entries).toBeLessThan(0.04);
      expect(plan.neverAssigned).toBe(5);
      expect(plan.invalid).toEqual({ hoursOutOfRange: 10, badId: 10, malformedJson: 10 });

      const records = timeRecords();
      expect(new Set(records.map((r) => r.entryId)).size).toBeGreaterThanOrEqual(plan.entries);
      const rejected = new Set(records.filter((r) => r.revision === 2 && r.status === 'rejected').map((r) => r.entryId));
      expect(rejected.size).toBe(plan.rejectedAfterApproval);
      expect(records.some((r) => r.entryId.includes(' '))).toBe(true);
      expect(records.some((r) => Number(r.hours) === 30)).toBe(true);
    });

    it('publishes each redelivery after its original, half under the original Nats-Msg-Id', () => {
      const firstIndex = new Map<string, number>();
      let sameMsgId = 0;
      let otherMsgId = 0;
      timeMessages().forEach((m, index) => {
        if (m.record === undefined) return;
        const r = m.record as TimeRecord;
        const key = `${r.entryId}|${r.revision}`;
        if (!firstIndex.has(key)) {
          firstIndex.set(key, index);
          return;
        }
        expect(index).toBeGreaterThan(firstIndex.get(key) ?? Infinity);
        if (m.msgId === `time:${r.projectId}:${r.entryId}:${r.revision}`) sameMsgId++;
        else otherMsgId++;
      });
      expect(sameMsgId + otherMsgId).toBe(week().plan.duplicates);
      expect(sameMsgId).toBe(week().plan.duplicatesWithSameMsgId);
    });

    it('publishes the late reference data of a project after all of its time', () => {
      const w = week();
      expect(new Set(w.plan.lateReference.map((l) => l.late))).toEqual(new Set(['project', 'assignment', 'ratecard']));
      for (const { projectId, late } of w.plan.lateReference) {
        const contractId = w.projects.find((p) => p.projectId === projectId)?.contractId;
        const lastTime = w.messages.findLastIndex((m) => m.subject.startsWith('ingest.time.') && m.subject.endsWith(`.${projectId}`));
        const referenceIndexes = w.messages
          .map((m, i) => ({ m, i }))
          .filter(({ m }) =>
            late === 'ratecard'
              ? m.subject === `ingest.ratecard.global.${contractId}`
              : m.subject.startsWith(`ingest.${late}.`) && m.subject.endsWith(`.${projectId}`),
          )
          .map(({ i }) => i);
        expect(referenceIndexes.length).toBeGreaterThan(0);
        expect(lastTime).toBeGreaterThan(0);
        for (const i of referenceIndexes) expect(i).toBeGreaterThan(lastTime);
      }
    });

    it('carries the reference data a week close needs: rate changes mid-week, one wrong currency, closed, fixed-fee and capped projects', () => {
      const w = week();
      const byId = new Map(w.projects.map((p) => [p.projectId, p]));
      expect(w.plan.rateChangeContracts.length).toBeGreaterThan(50);
      const changing = new Set(w.plan.rateChangeContracts);
      const onChangingContracts = timeRecords().filter((r) => changing.has(byId.get(r.projectId)?.contractId ?? ''));
      expect(onChangingContracts.some((r) => r.workDate < w.week.rateChangeDate)).toBe(true);
      expect(onChangingContracts.some((r) => r.workDate >= w.week.rateChangeDate)).toBe(true);

      const mismatched = w.projects.filter((p) => w.ratecards.some((r) => r.contractId === p.contractId && r.currency !== p.currency));
      expect(mismatched.map((p) => p.contractId)).toEqual([w.plan.rateMismatchContract]);
      expect(w.plan.closedProjects.every((id) => byId.get(id)?.status === 'closed')).toBe(true);
      expect(w.plan.fixedFeeProjects.every((id) => byId.get(id)?.billingModel === 'fixed_fee')).toBe(true);
      expect(w.milestones.length).toBeGreaterThanOrEqual(w.plan.fixedFeeProjects.length);
      expect(w.plan.capCrossedProjects.every((id) => byId.get(id)?.notToExceed !== undefined)).toBe(true);
      expect(w.projects.some((p) => p.tasks.some((t) => !t.billable))).toBe(true);
      expect(w.assignments.some((a) => !a.billable)).toBe(true);
      expect(w.assignments.some((a) => a.revision === 2)).toBe(true);
    });

    it('expects every planted trouble to surface as its own outcome', () => {
      const w = week();
      const outcome = expectedOutcome(w);
      const { plan } = w;
      expect(outcome.entriesIn).toBe(w.messages.filter((m) => m.subject.startsWith('ingest.time.')).length);
      expect(outcome.exceptionsByCode.invalid_record).toBe(plan.invalid.hoursOutOfRange + plan.invalid.badId + plan.invalid.malformedJson);
      expect(outcome.exceptionsByCode.no_assignment).toBe(plan.neverAssigned);
      expect(outcome.noAssignmentNeverArrives).toBe(plan.neverAssigned);
      expect(outcome.exceptionsByCode.unknown_project).toBeUndefined();
      expect(outcome.exceptionsByCode.rate_missing).toBeUndefined();
      expect(outcome.exceptionsByCode.rate_mismatch).toBeGreaterThan(0);
      expect(outcome.exceptionsByCode.project_closed).toBeGreaterThan(0);
      expect(outcome.held).toBeGreaterThan(0);
      expect(outcome.exceptionsByCode.cap_exceeded).toBe(outcome.held);
      expect(outcome.duplicates + outcome.stale).toBe(plan.duplicates);
      expect(outcome.reversed).toBeGreaterThan(0);
      expect(outcome.reversed).toBeLessThanOrEqual(plan.revised + plan.rejectedAfterApproval);
      expect(outcome.nonBillable).toBeGreaterThan(0);
      expect(outcome.milestonesCharged).toBe(w.milestones.length);
      for (const id of plan.capCrossedProjects) {
        const cap = w.projects.find((p) => p.projectId === id)?.notToExceed ?? '0.00';
        expect(parseHundredths(outcome.erpTotalByProject[id] ?? '0.00')).toBeLessThanOrEqual(parseHundredths(cap));
      }
      for (const total of Object.values(outcome.erpTotalByCurrency)) expect(total).toMatch(MONEY);
    });
  });
});

describe('money', () => {
  it.each([
    { hours: 150n, rate: 4001n, cents: 6002n, why: '60.015 rounds up' },
    { hours: 50n, rate: 4001n, cents: 2001n, why: '20.005 rounds up' },
    { hours: 25n, rate: 3333n, cents: 833n, why: '8.3325 rounds down' },
    { hours: -150n, rate: 4001n, cents: -6002n, why: 'half away from zero when negative' },
  ])('amountCents($hours, $rate) = $cents: $why', ({ hours, rate, cents }) => {
    expect(amountCents(hours, rate)).toBe(cents);
  });

  it('divides half away from zero and formats cents', () => {
    expect(divideHalfAwayFromZero(5n, 10n)).toBe(1n);
    expect(divideHalfAwayFromZero(-5n, 10n)).toBe(-1n);
    expect(divideHalfAwayFromZero(4n, 10n)).toBe(0n);
    expect(money(-1205n)).toBe('-12.05');
    expect(money(7n)).toBe('0.07');
    expect(parseHundredths('7.5')).toBe(750n);
    expect(parseHundredths(1.17)).toBe(117n);
    expect(() => parseHundredths(7.333)).toThrow(/more than 2 decimals/);
    expect(() => parseHundredths('7,50')).toThrow();
  });
});

describe('expectedOutcome', () => {
  // A hand-checkable week. P1 (USD, cap 100.00) bills senior at 33.33 until
  // Wednesday 2025-03-05 and 40.01 from then on.
  const project = (projectId: string, over: Partial<ProjectRecord> = {}): IngestMessage => ({
    subject: `ingest.project.amer.${projectId}`,
    record: {
      projectId,
      customerId: 'cust-1',
      contractId: `K-${projectId}`,
      region: 'amer',
      currency: 'USD',
      billingModel: 'tm',
      status: 'active',
      legalEntity: 'le-amer',
      tasks: [
        { taskId: 'dev', billable: true },
        { taskId: 'internal', billable: false },
      ],
      ...over,
    },
  });
  const assignment = (assignmentId: string, consultantId: string, projectId: string, taskId = 'dev', role = 'senior'): IngestMessage => {
    const record: AssignmentRecord = { assignmentId, consultantId, projectId, taskId, role, billable: true, startDate: '2025-01-01', endDate: '2025-12-31', revision: 1 };
    return { subject: `ingest.assignment.amer.${projectId}`, record };
  };
  const ratecard = (contractId: string, rate: string, over: Partial<RatecardRecord> = {}): IngestMessage => ({
    subject: `ingest.ratecard.global.${contractId}`,
    record: { contractId, role: 'senior', rate, currency: 'USD', effectiveFrom: '2025-01-01', ...over },
  });
  let n = 0;
  const time = (entryId: string, projectId: string, hours: number | string, over: Partial<TimeRecord> = {}): IngestMessage => ({
    subject: `ingest.time.amer.${projectId}`,
    msgId: `m-${++n}`,
    record: {
      entryId,
      source: 'spec',
      revision: 1,
      consultantId: 'c1',
      projectId,
      taskId: 'dev',
      workDate: '2025-03-03',
      hours,
      status: 'approved',
      ...over,
    },
  });
  const milestone: MilestoneRecord = { milestoneId: 'm1', projectId: 'P3', amount: '1000.00', currency: 'EUR', status: 'complete' };

  const messages: IngestMessage[] = [
    project('P1', { notToExceed: '100.00' }),
    project('P2', { status: 'closed' }),
    project('P3', { billingModel: 'fixed_fee', currency: 'EUR' }),
    project('P4'),
    project('P5'),
    ratecard('K-P1', '33.33', { effectiveTo: '2025-03-05' }),
    ratecard('K-P1', '40.01', { effectiveFrom: '2025-03-05' }),
    ratecard('K-P2', '50.00'),
    ratecard('K-P3', '10.00', { currency: 'EUR' }),
    ratecard('K-P4', '10.00', { currency: 'EUR' }),
    ratecard('K-P5', '10.00'),
    assignment('a1', 'c1', 'P1'),
    assignment('a2', 'c1', 'P1', 'internal'),
    assignment('a3', 'c1', 'P2'),
    assignment('a4', 'c1', 'P3'),
    assignment('a5', 'c1', 'P4'),
    assignment('a6', 'c1', 'P5', 'dev', 'principal'),
    time('e1', 'P1', 2), // 2 × 33.33 = 66.66 charged; posted 66.66
    time('e1', 'P1', 2), // redelivery
    time('e2', 'P1', '1.50', { workDate: '2025-03-05' }), // 1.5 × 40.01 = 60.015 → 60.02; 126.68 > 100: held
    time('e3', 'P1', 0.5, { workDate: '2025-03-05' }), // 20.005 → 20.01; posted 86.67
    time('e4', 'P1', 3, { taskId: 'internal' }), // non-billable task
    time('e1', 'P1', 1, { revision: 2, workDate: '2025-03-04' }), // reversal −66.66, charge 33.33; posted 53.34
    time('e5', 'P1', '0.25'), // 8.3325 → 8.33; posted 61.67
    time('e5', 'P1', '0.25', { revision: 2, status: 'rejected' }), // reversal −8.33; posted 53.34
    time('e1', 'P1', 2), // revision 1 after revision 2: stale
    time('e6', 'P1', 1, { consultantId: 'c9' }), // no_assignment
    time('e7', 'P2', 1), // project_closed
    time('e8', 'P4', 1), // rate_mismatch
    time('e9', 'P3', 1), // fixed fee: non-billable
    time('e10', 'P404', 1), // unknown_project
    time('e11', 'P1', 30), // invalid_record
    { subject: 'ingest.time.amer.P1', raw: '{"entryId":"e12","hours":' }, // invalid_record
    time('e13', 'P1', 2, { status: 'submitted' }), // never charged
    { subject: 'ingest.milestone.amer.P3', record: milestone },
    { subject: 'ingest.milestone.amer.P3', record: milestone }, // once only
    time('e14', 'P1', 1.17, { workDate: '2025-03-06' }), // 46.8117 → 46.81; 100.15 > 100: held
    time('e15', 'P1', '1.16', { workDate: '2025-03-06' }), // 46.4116 → 46.41; posted 99.75, fits
    time('e16', 'P5', 1), // principal has no ratecard: rate_missing
  ];

  it('applies CONTRACT §3 to a hand-checked week', () => {
    expect(expectedOutcome({ messages })).toEqual({
      entriesIn: 20,
      duplicates: 1,
      stale: 1,
      charged: 5,
      reversed: 2,
      nonBillable: 2,
      held: 2,
      exceptionsByCode: {
        cap_exceeded: 2,
        invalid_record: 2,
        no_assignment: 1,
        project_closed: 1,
        rate_missing: 1,
        rate_mismatch: 1,
        unknown_project: 1,
      },
      erpTotalByCurrency: { EUR: '1000.00', USD: '99.75' },
      erpTotalByProject: { P1: '99.75', P3: '1000.00' },
      milestonesCharged: 1,
      noAssignmentNeverArrives: 1,
    });
  });

  it('reads reference data that comes after the time it prices (the grace is long enough)', () => {
    const isTime = (m: IngestMessage) => m.subject.startsWith('ingest.time.');
    const referenceLast = [...messages.filter(isTime), ...messages.filter((m) => !isTime(m))];
    expect(expectedOutcome({ messages: referenceLast })).toEqual(expectedOutcome({ messages }));
  });

  it('takes the highest assignment revision and ignores a stale one re-sent later', () => {
    const promoted: AssignmentRecord = { ...(assignment('a1', 'c1', 'P1').record as AssignmentRecord), role: 'junior', revision: 1 };
    const week: IngestMessage[] = [
      project('P1'),
      ratecard('K-P1', '10.00'),
      ratecard('K-P1', '99.99', { role: 'junior' }),
      { subject: 'ingest.assignment.amer.P1', record: promoted },
      { subject: 'ingest.assignment.amer.P1', record: { ...promoted, role: 'senior', revision: 2 } },
      { subject: 'ingest.assignment.amer.P1', record: promoted },
      time('x1', 'P1', 1),
    ];
    expect(expectedOutcome({ messages: week }).erpTotalByCurrency).toEqual({ USD: '10.00' });
  });
});
