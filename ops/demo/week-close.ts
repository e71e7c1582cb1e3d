// A simulated week close for `billstream demo`: reference data and a week of
// consultants' time, in the order a busy Friday would publish them, salted with
// the trouble a real close brings (redeliveries, corrections, rejections, late
// reference data, bad records, crossed caps). Pure and seeded: the same options
// always give the same messages, so a demo run can be reconciled exactly.
//
// `expectedOutcome` is a second, deliberately plain implementation of CONTRACT §3
// written here without any pipeline code, so the demo checks the pipeline
// against an independent reading of the contract rather than against itself.

// ---------------------------------------------------------------------------
// Records (CONTRACT §2), as this generator writes them

export interface ConsultantRecord {
  consultantId: string;
  homeRegion: string;
  costRate: string;
  currency: string;
}

export interface ProjectTask {
  taskId: string;
  billable: boolean;
}

export interface ProjectRecord {
  projectId: string;
  customerId: string;
  contractId: string;
  region: string;
  currency: string;
  billingModel: 'tm' | 'fixed_fee';
  status: 'active' | 'closed';
  legalEntity: string;
  tasks: ProjectTask[];
  notToExceed?: string;
}

export interface AssignmentRecord {
  assignmentId: string;
  consultantId: string;
  projectId: string;
  taskId: string;
  role: string;
  billable: boolean;
  startDate: string;
  endDate: string;
  revision: number;
}

export interface RatecardRecord {
  contractId: string;
  role: string;
  rate: string;
  currency: string;
  effectiveFrom: string;
  effectiveTo?: string;
}

export type TimeStatus = 'submitted' | 'approved' | 'rejected';

export interface TimeRecord {
  entryId: string;
  source: string;
  revision: number;
  consultantId: string;
  projectId: string;
  taskId: string;
  workDate: string;
  /** A JSON number for some sources, a 2-decimal string for others (CONTRACT §1). */
  hours: number | string;
  status: TimeStatus;
  submittedAt?: string;
  approvedAt?: string;
  approvedBy?: string;
  notes?: string;
}

export interface MilestoneRecord {
  milestoneId: string;
  projectId: string;
  amount: string;
  currency: string;
  status: 'complete';
}

export type IngestRecord = ConsultantRecord | ProjectRecord | AssignmentRecord | RatecardRecord | TimeRecord | MilestoneRecord;

/**
 * One message to publish on `subject` (CONTRACT §4). `msgId` goes in the
 * `Nats-Msg-Id` header; `raw` stands for a payload that is not valid JSON.
 */
export type IngestMessage =
  | { subject: string; msgId?: string; record: IngestRecord; raw?: undefined }
  | { subject: string; msgId?: string; raw: string; record?: undefined };

/** What the generator planted, so a report can say what the week contained. */
export interface WeekClosePlan {
  /** Distinct well-formed time entries (entryIds), invalid ones excluded. */
  entries: number;
  /** Exact redeliveries of a time message (same entryId and revision). */
  duplicates: number;
  /** Of those, the ones sent with the original's Nats-Msg-Id. */
  duplicatesWithSameMsgId: number;
  submittedOnly: number;
  submittedThenApproved: number;
  /** Approved, then re-sent approved as revision 2 with other hours. */
  revised: number;
  /** Approved, then re-sent as revision 2 with status rejected. */
  rejectedAfterApproval: number;
  /** Records that fail validation: hours 30, an id with a space, malformed JSON. */
  invalid: { hoursOutOfRange: number; badId: number; malformedJson: number };
  /** Entries whose assignment never arrives: `no_assignment` once the grace runs out. */
  neverAssigned: number;
  /** Projects whose project, assignment or ratecard records are published after their time. */
  lateReference: { projectId: string; late: 'project' | 'assignment' | 'ratecard' }[];
  closedProjects: string[];
  fixedFeeProjects: string[];
  /** Projects whose notToExceed the week crosses. */
  capCrossedProjects: string[];
  /** Projects with a notToExceed the week stays well under. */
  capRoomyProjects: string[];
  /** The contract whose ratecard is in a currency other than its project's. */
  rateMismatchContract: string;
  /** Contracts whose rates change on `rateChangeDate`. */
  rateChangeContracts: string[];
}

export interface WeekClose {
  seed: number;
  /** Monday and Friday of the simulated week, and the day new rates take effect. */
  week: { start: string; end: string; rateChangeDate: string };
  consultants: ConsultantRecord[];
  projects: ProjectRecord[];
  assignments: AssignmentRecord[];
  ratecards: RatecardRecord[];
  milestones: MilestoneRecord[];
  /** Everything to publish, in publish order. */
  messages: IngestMessage[];
  plan: WeekClosePlan;
}

export interface WeekCloseOptions {
  /** Distinct well-formed time entries. @default 100000 */
  entries?: number;
  /** @default ['amer', 'emea', 'apac'] */
  regions?: string[];
  /** At least 12, so every kind of trouble has its own project. @default 300 */
  projects?: number;
  /** @default 600 */
  consultants?: number;
  /** Monday of the simulated week. @default '2025-03-03' */
  weekStart?: string;
  /**
   * Share of the projects (and so, roughly, of the volume) in the first region;
   * the rest is spread evenly. @default an even split
   */
  firstRegionShare?: number;
  seed: number;
}

export function defaultWeekCloseOptions(): Required<Omit<WeekCloseOptions, 'seed'>> {
  return { entries: 100_000, regions: ['amer', 'emea', 'apac'], projects: 300, consultants: 600, weekStart: '2025-03-03', firstRegionShare: 0 };
}

/** Options that cannot make a week close; names the option and the reason. */
export class WeekCloseOptionsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeekCloseOptionsError';
  }
}

/** The payload bytes to publish for a message (the raw text for malformed ones). */
export function messagePayload(message: IngestMessage): string {
  return message.raw ?? JSON.stringify(message.record);
}

// ---------------------------------------------------------------------------
// Seeded randomness

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Uniform integer in [min, max]. */
  between(min: number, max: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  shuffle<T>(items: T[]): T[];
}

/**
 * A small seeded PRNG (mulberry32): fast, 32 bits of state, and the same
 * sequence for the same seed on every platform; never `Math.random`.
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    between: (min, max) => min + int(max - min + 1),
    chance: (p) => next() < p,
    pick: (items) => itemAt(items, int(items.length)),
    shuffle(items) {
      for (let i = items.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [items[i], items[j]] = [itemAt(items, j), itemAt(items, i)];
      }
      return items;
    },
  };
}

// ---------------------------------------------------------------------------
// Generation

const CURRENCIES = ['USD', 'EUR', 'AUD', 'GBP', 'CAD', 'CHF', 'SGD', 'NZD'] as const;
const ROLES = [
  { role: 'analyst', base: 95 },
  { role: 'consultant', base: 140 },
  { role: 'senior', base: 185 },
  { role: 'principal', base: 240 },
] as const;
const BILLABLE_TASKS = ['discovery', 'build', 'test'] as const;
const NON_BILLABLE_TASK = 'internal';
const RATES_FROM = '2025-01-01';
const ASSIGNED_FROM = '2025-01-01';
const ASSIGNED_UNTIL = '2025-12-31';
const NOTES = ['client workshop', 'code review', 'steering committee', 'data migration', 'travel'] as const;

/** Shares of the week, per distinct entry unless said otherwise. */
const SHARE = {
  duplicateMessages: 0.02,
  submittedOnly: 0.03,
  submittedThenApproved: 0.01,
  revised: 0.01,
  rejectedAfterApproval: 0.004,
  closedProjects: 0.01,
  fixedFeeProjects: 0.08,
  capCrossedProjects: 0.02,
  capRoomyProjects: 0.01,
  lateProjects: 0.03,
  rateChangeContracts: 0.35,
  nonBillableTaskProjects: 0.4,
  nonBillableAssignments: 0.05,
  roleChangeMidweek: 0.05,
  hoursAsNumber: 0.5,
  oddHours: 0.1,
} as const;
/** notToExceed as a share of what a capped project's week would bill. */
const CAP_CROSSED = { numerator: 8n, denominator: 10n };
const CAP_ROOMY = { numerator: 3n, denominator: 1n };

type ProjectCategory = 'plain' | 'closed' | 'fixed_fee' | 'cap_crossed' | 'cap_roomy' | 'late' | 'mismatch';
type LateKind = 'project' | 'assignment' | 'ratecard';
const LATE_KINDS: readonly LateKind[] = ['project', 'assignment', 'ratecard'];

interface ProjectPlan {
  record: ProjectRecord;
  category: ProjectCategory;
  late?: LateKind;
  /** Relative share of the week's entries. */
  weight: number;
  team: Set<string>;
  assignments: AssignmentRecord[];
  /** Assignment messages, in order, including superseded and stale revisions. */
  assignmentMessages: IngestMessage[];
  ratecards: RatecardRecord[];
}

/** A message with its place in the week's publish order (a number in [0, 1)). */
interface Placed {
  at: number;
  seq: number;
  message: IngestMessage;
  projectId: string;
}

/**
 * Generates a deterministic week close.
 *
 * Reference data (consultants, ratecards, projects, assignments) is published
 * first, then the week's time interleaved across projects with corrections after
 * their originals, then, for a few projects, the reference data that arrives
 * late. `options.entries` counts distinct well-formed entries; redeliveries,
 * second revisions and invalid records come on top.
 *
 * @example
 * const week = generateWeekClose({ seed: 7, entries: 1000 });
 * week.messages[0].subject; // 'ingest.consultant.global.c-0001'
 * @param options `seed` is required; the rest default to {@link defaultWeekCloseOptions}.
 * @returns reference records, the messages in publish order, and what was planted.
 */
export function generateWeekClose(options: WeekCloseOptions): WeekClose {
  const o = { ...defaultWeekCloseOptions(), ...options };
  validateOptions(o);
  const random = seededRandom(o.seed);
  const days = weekDays(o.weekStart);
  const rateChangeDate = itemAt(days, 2);
  const regionCurrency = new Map(o.regions.map((region, i) => [region, itemAt(CURRENCIES, i % CURRENCIES.length)]));
  const currencyOf = (region: string): string => regionCurrency.get(region) ?? 'USD';
  let seq = 0;
  const placed: Placed[] = [];
  const place = (at: number, projectId: string, message: IngestMessage): Placed => {
    const item = { at, seq: seq++, message, projectId };
    placed.push(item);
    return item;
  };

  // Consultants
  const consultants: ConsultantRecord[] = [];
  for (let i = 1; i <= o.consultants; i++) {
    const homeRegion = random.pick(o.regions);
    consultants.push({
      consultantId: `c-${pad(i, 4)}`,
      homeRegion,
      costRate: money(BigInt(random.between(45, 140)) * 100n + BigInt(random.pick([0, 25, 50, 75]))),
      currency: currencyOf(homeRegion),
    });
  }

  // Projects, each with its own contract and team
  const categories = projectCategories(o.projects, random);
  const plans: ProjectPlan[] = [];
  let lateIndex = 0;
  for (let i = 1; i <= o.projects; i++) {
    const category = itemAt(categories, i - 1);
    const projectId = `prj-${pad(i, 4)}`;
    const region = regionOfProject(i - 1, o.regions, o.firstRegionShare);
    const currency = currencyOf(region);
    const contractId = `ctr-${pad(i, 4)}`;
    // The mismatch project bills only billable work, so every entry meets the wrong-currency rate.
    const withInternal = category !== 'mismatch' && random.chance(SHARE.nonBillableTaskProjects);
    const tasks: ProjectTask[] = BILLABLE_TASKS.map((taskId) => ({ taskId, billable: true }));
    if (withInternal) tasks.push({ taskId: NON_BILLABLE_TASK, billable: false });
    const record: ProjectRecord = {
      projectId,
      customerId: `cust-${pad(1 + random.int(Math.max(1, Math.floor(o.projects / 3))), 3)}`,
      contractId,
      region,
      currency,
      billingModel: category === 'fixed_fee' ? 'fixed_fee' : 'tm',
      status: category === 'closed' ? 'closed' : 'active',
      legalEntity: `le-${region}`,
      tasks,
    };
    const plan: ProjectPlan = {
      record,
      category,
      weight: category === 'closed' ? 0.1 : category === 'mismatch' ? 0.2 : 0.5 + random.next(),
      team: new Set(),
      assignments: [],
      assignmentMessages: [],
      ratecards: [],
    };
    if (category === 'late') plan.late = itemAt(LATE_KINDS, lateIndex++ % LATE_KINDS.length);
    plan.ratecards = contractRatecards(contractId, category === 'mismatch' ? otherCurrency(currency) : currency, rateChangeDate, random);
    buildTeam(plan, consultants, days, rateChangeDate, random);
    plans.push(plan);
  }
  const plainPlans = plans.filter((p) => p.category === 'plain');

  // The week's time
  const cumulative: number[] = [];
  let total = 0;
  for (const p of plans) cumulative.push((total += p.weight));
  const pickProject = (): ProjectPlan => itemAt(plans, Math.min(plans.length - 1, lowerBound(cumulative, random.next() * total)));

  const plan: WeekClosePlan = {
    entries: o.entries,
    duplicates: 0,
    duplicatesWithSameMsgId: 0,
    submittedOnly: 0,
    submittedThenApproved: 0,
    revised: 0,
    rejectedAfterApproval: 0,
    invalid: { hoursOutOfRange: 0, badId: 0, malformedJson: 0 },
    neverAssigned: 0,
    lateReference: plans.flatMap((p) => (p.late === undefined ? [] : [{ projectId: p.record.projectId, late: p.late }])),
    closedProjects: projectIds(plans, 'closed'),
    fixedFeeProjects: projectIds(plans, 'fixed_fee'),
    capCrossedProjects: projectIds(plans, 'cap_crossed'),
    capRoomyProjects: projectIds(plans, 'cap_roomy'),
    rateMismatchContract: plans.find((p) => p.category === 'mismatch')?.record.contractId ?? '',
    rateChangeContracts: plans.filter((p) => p.ratecards.some((r) => r.effectiveTo !== undefined)).map((p) => p.record.contractId),
  };
  const neverAssigned = Math.max(1, Math.min(5, Math.round(o.entries / 1000)));
  /** Messages a redelivery may copy: their outcome does not depend on how often they come. */
  const duplicable: Placed[] = [];
  /** Approved billable work per capped project, to set its notToExceed afterwards. */
  const cappedCents = new Map<string, bigint>();
  let entryNumber = 0;
  const nextEntryId = (): string => `te-${pad(++entryNumber, 6)}`;

  for (let n = 0; n < o.entries - neverAssigned; n++) {
    const p = pickProject();
    const assignment = random.pick(p.assignments);
    const workDate = random.pick(days.filter((d) => d >= assignment.startDate && d <= assignment.endDate));
    const entry = timeRecord(nextEntryId(), assignment.consultantId, p, assignment.taskId, workDate, randomHours(random), random);
    const at = random.next();
    const later = () => at + (1 - at) * random.next() * 0.5 + 1e-9;
    const scenario = entryScenario(random.next(), p.category === 'plain');
    if (scenario === 'submittedOnly') {
      plan.submittedOnly++;
      duplicable.push(place(at, p.record.projectId, timeMessage(p, { ...entry, status: 'submitted', approvedAt: undefined, approvedBy: undefined })));
      continue;
    }
    if (scenario === 'submittedThenApproved') {
      plan.submittedThenApproved++;
      duplicable.push(place(at, p.record.projectId, timeMessage(p, { ...entry, status: 'submitted', approvedAt: undefined, approvedBy: undefined })));
      duplicable.push(place(later(), p.record.projectId, timeMessage(p, { ...entry, revision: 2 })));
      continue;
    }
    if (scenario === 'revised') {
      plan.revised++;
      duplicable.push(place(at, p.record.projectId, timeMessage(p, entry)));
      const hours = differentHours(entry.hours, random);
      duplicable.push(place(later(), p.record.projectId, timeMessage(p, { ...entry, revision: 2, hours, notes: 'corrected hours' })));
      continue;
    }
    if (scenario === 'rejectedAfterApproval') {
      plan.rejectedAfterApproval++;
      duplicable.push(place(at, p.record.projectId, timeMessage(p, entry)));
      duplicable.push(place(later(), p.record.projectId, timeMessage(p, { ...entry, revision: 2, status: 'rejected', approvedAt: undefined })));
      continue;
    }
    const message = place(at, p.record.projectId, timeMessage(p, entry));
    if (p.category === 'plain' || p.category === 'late' || p.category === 'fixed_fee') duplicable.push(message);
    if (p.category === 'cap_crossed' || p.category === 'cap_roomy') {
      const rate = p.ratecards.find((r) => r.role === assignment.role && r.effectiveFrom <= workDate && (r.effectiveTo === undefined || workDate < r.effectiveTo));
      const task = p.record.tasks.find((t) => t.taskId === assignment.taskId);
      if (rate !== undefined && task?.billable === true && assignment.billable) {
        const cents = amountCents(parseHundredths(entry.hours), parseCents(rate.rate));
        cappedCents.set(p.record.projectId, (cappedCents.get(p.record.projectId) ?? 0n) + cents);
      }
    }
  }

  // Entries by someone never assigned to the project: no_assignment once the grace runs out.
  for (let n = 0; n < neverAssigned; n++) {
    const p = random.pick(plainPlans);
    const outsiders = consultants.filter((c) => !p.team.has(c.consultantId));
    const consultant = random.pick(outsiders.length > 0 ? outsiders : consultants);
    const entry = timeRecord(nextEntryId(), consultant.consultantId, p, itemAt(BILLABLE_TASKS, 0), random.pick(days), randomHours(random), random);
    place(random.next(), p.record.projectId, timeMessage(p, entry));
    plan.neverAssigned++;
  }

  // Invalid records: quarantined as invalid_record, nothing else.
  const invalidEach = Math.max(1, Math.round(o.entries / 10_000));
  for (let n = 0; n < invalidEach; n++) {
    const p = random.pick(plainPlans);
    const assignment = random.pick(p.assignments);
    const base = timeRecord(nextEntryId(), assignment.consultantId, p, assignment.taskId, random.pick(days), 750, random);
    place(random.next(), p.record.projectId, timeMessage(p, { ...base, hours: random.chance(0.5) ? 30 : '30.00' }));
    plan.invalid.hoursOutOfRange++;
    const badId = { ...base, entryId: `te ${pad(entryNumber, 6)}x` };
    place(random.next(), p.record.projectId, { subject: subjectOf('time', p.record.region, p.record.projectId), record: badId });
    plan.invalid.badId++;
    const broken = JSON.stringify({ ...base, entryId: nextEntryId() });
    place(random.next(), p.record.projectId, {
      subject: subjectOf('time', p.record.region, p.record.projectId),
      raw: broken.slice(0, Math.floor(broken.length * 0.6)),
    });
    plan.invalid.malformedJson++;
  }

  // Redeliveries: exact copies, later than their original.
  const timeMessages = placed.length;
  const duplicates = Math.round((timeMessages * SHARE.duplicateMessages) / (1 - SHARE.duplicateMessages));
  for (let n = 0; n < duplicates && duplicable.length > 0; n++) {
    const original = random.pick(duplicable);
    const sameMsgId = n % 2 === 0;
    const copy: IngestMessage = { ...original.message, msgId: sameMsgId ? original.message.msgId : `${original.message.msgId ?? ''}:redelivery-${n}` };
    place(original.at + (1 - original.at) * random.next(), original.projectId, copy);
    plan.duplicates++;
    if (sameMsgId) plan.duplicatesWithSameMsgId++;
  }

  // Caps, now that the week's billable work is known.
  for (const p of plans) {
    const ratio = p.category === 'cap_crossed' ? CAP_CROSSED : p.category === 'cap_roomy' ? CAP_ROOMY : undefined;
    if (ratio === undefined) continue;
    const billed = cappedCents.get(p.record.projectId) ?? 0n;
    // Whole currency units, as a contract would state it.
    p.record.notToExceed = money(((billed * ratio.numerator) / ratio.denominator / 100n) * 100n);
  }

  // Milestones of fixed-fee projects, completed during the week; one sent twice.
  const milestones: MilestoneRecord[] = [];
  for (const p of plans.filter((q) => q.category === 'fixed_fee')) {
    const count = random.between(1, 2);
    for (let m = 1; m <= count; m++) {
      const milestone: MilestoneRecord = {
        milestoneId: `ms-${p.record.projectId.slice(4)}-${m}`,
        projectId: p.record.projectId,
        amount: money(BigInt(random.between(20, 400)) * 25_000n),
        currency: p.record.currency,
        status: 'complete',
      };
      milestones.push(milestone);
      const message: IngestMessage = {
        subject: subjectOf('milestone', p.record.region, p.record.projectId),
        msgId: `milestone:${p.record.projectId}:${milestone.milestoneId}:1`,
        record: milestone,
      };
      const at = random.next();
      place(at, p.record.projectId, message);
      if (milestones.length === 1) place(at + (1 - at) * random.next(), p.record.projectId, { ...message });
    }
  }

  // Late reference data: right after the last message of its project.
  const lastAt = new Map<string, number>();
  for (const item of placed) lastAt.set(item.projectId, Math.max(lastAt.get(item.projectId) ?? 0, item.at));
  for (const p of plans) {
    if (p.late === undefined) continue;
    const after = lastAt.get(p.record.projectId) ?? 0;
    const lateMessages = referenceMessages(p, p.late);
    lateMessages.forEach((message, k) => place(after + (1 - after) * 0.01 * (1 + k / lateMessages.length) + 1e-9, p.record.projectId, message));
  }

  // Publish order: reference data first (minus the late), then the week by position.
  const head: IngestMessage[] = [];
  for (const c of consultants) {
    head.push({ subject: subjectOf('consultant', 'global', c.consultantId), msgId: `consultant:${c.consultantId}:${c.consultantId}:1`, record: c });
  }
  for (const p of plans) if (p.late !== 'ratecard') head.push(...referenceMessages(p, 'ratecard'));
  for (const p of plans) if (p.late !== 'project') head.push(...referenceMessages(p, 'project'));
  for (const p of plans) if (p.late !== 'assignment') head.push(...referenceMessages(p, 'assignment'));
  placed.sort((a, b) => a.at - b.at || a.seq - b.seq);

  return {
    seed: o.seed,
    week: { start: itemAt(days, 0), end: itemAt(days, days.length - 1), rateChangeDate },
    consultants,
    projects: plans.map((p) => p.record),
    assignments: plans.flatMap((p) => p.assignments),
    ratecards: plans.flatMap((p) => p.ratecards),
    milestones,
    messages: [...head, ...placed.map((item) => item.message)],
    plan: { ...plan, entries: o.entries },
  };

  function timeMessage(p: ProjectPlan, record: TimeRecord): IngestMessage {
    return {
      subject: subjectOf('time', p.record.region, p.record.projectId),
      msgId: `time:${p.record.projectId}:${record.entryId}:${record.revision}`,
      record: withoutUndefined(record),
    };
  }

  function referenceMessages(p: ProjectPlan, kind: LateKind): IngestMessage[] {
    const { projectId, region, contractId } = p.record;
    switch (kind) {
      case 'project':
        return [{ subject: subjectOf('project', region, projectId), msgId: `project:${projectId}:${projectId}:1`, record: p.record }];
      case 'assignment':
        return p.assignmentMessages;
      case 'ratecard':
        return p.ratecards.map((r) => ({
          subject: subjectOf('ratecard', 'global', contractId),
          // Ratecards carry no revision; one contract has one per role and period.
          msgId: `ratecard:${contractId}:${r.role}:${r.effectiveFrom}`,
          record: r,
        }));
    }
  }
}

/** Round robin over the regions, or the first region taking `firstRegionShare` of the projects (spread through the list). */
function regionOfProject(index: number, regions: readonly string[], firstRegionShare: number): string {
  if (firstRegionShare <= 0 || regions.length < 2) return itemAt(regions, index % regions.length);
  const inFirst = Math.floor((index + 1) * firstRegionShare) > Math.floor(index * firstRegionShare);
  if (inFirst) return itemAt(regions, 0);
  const others = index - Math.floor((index + 1) * firstRegionShare);
  return itemAt(regions, 1 + (others % (regions.length - 1)));
}

type EntryScenario = 'approved' | 'submittedOnly' | 'submittedThenApproved' | 'revised' | 'rejectedAfterApproval';

/**
 * What happens to one entry over the week. Corrections only on plain projects:
 * on capped, closed or late ones the expected outcome would hang on when a held
 * or waiting revision is superseded, which the contract leaves open.
 */
function entryScenario(roll: number, correctable: boolean): EntryScenario {
  if (roll < SHARE.submittedOnly) return 'submittedOnly';
  if (!correctable) return 'approved';
  let cut = SHARE.submittedOnly;
  for (const scenario of ['submittedThenApproved', 'revised', 'rejectedAfterApproval'] as const) {
    cut += SHARE[scenario];
    if (roll < cut) return scenario;
  }
  return 'approved';
}

function validateOptions(o: Required<WeekCloseOptions>): void {
  const positiveInteger = (name: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min) throw new WeekCloseOptionsError(`week close option ${name}: ${value} is not an integer ≥ ${min}`);
  };
  positiveInteger('seed', Math.abs(o.seed), 0);
  positiveInteger('entries', o.entries, 100);
  positiveInteger('projects', o.projects, 12);
  positiveInteger('consultants', o.consultants, 10);
  if (o.regions.length === 0) throw new WeekCloseOptionsError('week close option regions: at least one region is needed');
  for (const region of o.regions) {
    if (!/^[a-z0-9]{2,16}$/.test(region)) throw new WeekCloseOptionsError(`week close option regions: "${region}" is not 2–16 of [a-z0-9]`);
  }
  if (!/^\d{4}-\d{2}-\d{2}$/.test(o.weekStart) || new Date(`${o.weekStart}T00:00:00Z`).getUTCDay() !== 1) {
    throw new WeekCloseOptionsError(`week close option weekStart: "${o.weekStart}" is not a Monday as YYYY-MM-DD`);
  }
}

/** Which trouble each project carries, in a shuffled order so ids say nothing. */
function projectCategories(projects: number, random: Random): ProjectCategory[] {
  const count = (share: number) => Math.max(1, Math.round(projects * share));
  const special: ProjectCategory[] = [
    'mismatch',
    ...repeat<ProjectCategory>('closed', count(SHARE.closedProjects)),
    ...repeat<ProjectCategory>('fixed_fee', count(SHARE.fixedFeeProjects)),
    ...repeat<ProjectCategory>('cap_crossed', count(SHARE.capCrossedProjects)),
    ...repeat<ProjectCategory>('cap_roomy', count(SHARE.capRoomyProjects)),
    ...repeat<ProjectCategory>('late', Math.max(LATE_KINDS.length, Math.round(projects * SHARE.lateProjects))),
  ];
  if (special.length > projects - 2) {
    throw new WeekCloseOptionsError(`week close option projects: ${projects} leaves too few plain projects beside ${special.length} special ones`);
  }
  return random.shuffle([...special, ...repeat<ProjectCategory>('plain', projects - special.length)]);
}

/** One ratecard per role, or two split at `rateChangeDate` for contracts whose rates change mid-week. */
function contractRatecards(contractId: string, currency: string, rateChangeDate: string, random: Random): RatecardRecord[] {
  const changes = random.chance(SHARE.rateChangeContracts);
  const ratecards: RatecardRecord[] = [];
  for (const { role, base } of ROLES) {
    // Odd cents on purpose: quarter hours times these rates need real rounding.
    const cents = BigInt(Math.round(base * (0.9 + random.next() * 0.3) * 100));
    if (!changes) {
      ratecards.push({ contractId, role, rate: money(cents), currency, effectiveFrom: RATES_FROM });
      continue;
    }
    const raised = (cents * BigInt(103 + random.int(6))) / 100n;
    ratecards.push({ contractId, role, rate: money(cents), currency, effectiveFrom: RATES_FROM, effectiveTo: rateChangeDate });
    ratecards.push({ contractId, role, rate: money(raised), currency, effectiveFrom: rateChangeDate });
  }
  return ratecards;
}

/**
 * Staffs a project: a few consultants, each on one or two tasks. Some assignments
 * are non-billable, some change role mid-week (two assignments split at
 * `rateChangeDate`), and on a few plain projects an assignment is corrected by a
 * revision 2 and then its revision 1 is re-sent (stale).
 */
function buildTeam(plan: ProjectPlan, consultants: ConsultantRecord[], days: string[], rateChangeDate: string, random: Random): void {
  const { projectId, region, tasks } = plan.record;
  const size = random.between(3, 8);
  let n = 0;
  const assignmentMessage = (a: AssignmentRecord, suffix = ''): IngestMessage => ({
    subject: subjectOf('assignment', region, projectId),
    msgId: `assignment:${projectId}:${a.assignmentId}:${a.revision}${suffix}`,
    record: a,
  });
  while (plan.team.size < size) {
    const consultant = random.pick(consultants);
    if (plan.team.has(consultant.consultantId)) continue;
    plan.team.add(consultant.consultantId);
    const taskCount = random.between(1, 2);
    const chosen = random.shuffle([...tasks]).slice(0, taskCount);
    for (const task of chosen) {
      const role = random.pick(ROLES).role;
      // The mismatch project keeps every assignment billable so each of its entries reaches the rate.
      const billable = plan.category === 'mismatch' || !random.chance(SHARE.nonBillableAssignments);
      const base = { consultantId: consultant.consultantId, projectId, taskId: task.taskId, billable, revision: 1 };
      if (random.chance(SHARE.roleChangeMidweek)) {
        const promoted = itemAt(ROLES, Math.min(ROLES.length - 1, ROLES.findIndex((r) => r.role === role) + 1)).role;
        const before = { ...base, assignmentId: `asg-${projectId.slice(4)}-${pad(++n, 2)}`, role, startDate: ASSIGNED_FROM, endDate: addDays(rateChangeDate, -1) };
        const after = { ...base, assignmentId: `asg-${projectId.slice(4)}-${pad(++n, 2)}`, role: promoted, startDate: rateChangeDate, endDate: ASSIGNED_UNTIL };
        plan.assignments.push(before, after);
        plan.assignmentMessages.push(assignmentMessage(before), assignmentMessage(after));
        continue;
      }
      const assignment: AssignmentRecord = { ...base, assignmentId: `asg-${projectId.slice(4)}-${pad(++n, 2)}`, role, startDate: ASSIGNED_FROM, endDate: ASSIGNED_UNTIL };
      if (plan.category === 'plain' && random.chance(0.02)) {
        const first = { ...assignment, role: role === 'analyst' ? 'consultant' : 'analyst' };
        const corrected = { ...assignment, revision: 2 };
        plan.assignments.push(corrected);
        plan.assignmentMessages.push(assignmentMessage(first), assignmentMessage(corrected), assignmentMessage(first, ':resend'));
        continue;
      }
      plan.assignments.push(assignment);
      plan.assignmentMessages.push(assignmentMessage(assignment));
    }
  }
  if (plan.assignments.every((a) => days.every((d) => d < a.startDate || d > a.endDate))) {
    throw new Error(`project ${projectId}: no assignment covers the week`);
  }
}

function timeRecord(
  entryId: string,
  consultantId: string,
  p: ProjectPlan,
  taskId: string,
  workDate: string,
  hundredths: number,
  random: Random,
): TimeRecord {
  const submittedAt = `${workDate}T${pad(16 + random.int(4), 2)}:${pad(random.int(60), 2)}:00Z`;
  const approvedAt = `${addDays(workDate, 1 + random.int(3))}T${pad(8 + random.int(9), 2)}:${pad(random.int(60), 2)}:00Z`;
  const record: TimeRecord = {
    entryId,
    source: `timesheets-${p.record.region}`,
    revision: 1,
    consultantId,
    projectId: p.record.projectId,
    taskId,
    workDate,
    hours: random.chance(SHARE.hoursAsNumber) ? hundredths / 100 : money(BigInt(hundredths)),
    status: 'approved',
    submittedAt,
    approvedAt,
    approvedBy: `mgr-${p.record.region}-${1 + random.int(4)}`,
  };
  if (random.chance(0.1)) record.notes = random.pick(NOTES);
  return record;
}

/** Mostly quarter hours up to 8, some odd hundredths up to 10; never 0. */
function randomHours(random: Random): number {
  return random.chance(SHARE.oddHours) ? random.between(1, 1000) : random.between(1, 32) * 25;
}

function differentHours(hours: number | string, random: Random): number | string {
  const before = Number(parseHundredths(hours));
  let after = randomHours(random);
  while (after === before) after = randomHours(random);
  return typeof hours === 'number' ? after / 100 : money(BigInt(after));
}

function otherCurrency(currency: string): string {
  return currency === 'USD' ? 'EUR' : 'USD';
}

function subjectOf(kind: string, region: string, key: string): string {
  return `ingest.${kind}.${region}.${key}`;
}

function projectIds(plans: ProjectPlan[], category: ProjectCategory): string[] {
  return plans.filter((p) => p.category === category).map((p) => p.record.projectId);
}

function weekDays(monday: string): string[] {
  return [0, 1, 2, 3, 4].map((d) => addDays(monday, d));
}

function addDays(date: string, days: number): string {
  const t = new Date(`${date}T00:00:00Z`);
  t.setUTCDate(t.getUTCDate() + days);
  return t.toISOString().slice(0, 10);
}

function withoutUndefined<T extends object>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as T;
}

function repeat<T>(value: T, times: number): T[] {
  return Array.from({ length: times }, () => value);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Index of the first element ≥ value in an ascending array. */
function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (itemAt(sorted, mid) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function itemAt<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new RangeError(`index ${index} outside 0..${items.length - 1}`);
  return item;
}

// ---------------------------------------------------------------------------
// Money: integer cents (and hundredths of an hour) in bigint, never floats

/** `"1125.00"` or `-3.5` style decimal (≤ 2 places) → integer hundredths; throws when it is not one. */
export function parseHundredths(value: number | string): bigint {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`${value} is not a finite number`);
    const scaled = Math.round(value * 100);
    // A JSON number with a third decimal would silently round here; refuse it.
    if (Math.abs(scaled - value * 100) > 1e-6) throw new RangeError(`${value} has more than 2 decimals`);
    return BigInt(scaled);
  }
  const match = /^(-)?(\d+)(?:\.(\d{1,2}))?$/.exec(value);
  if (match === null) throw new RangeError(`"${value}" is not a decimal with at most 2 decimals`);
  const [, sign, whole = '0', fraction = ''] = match;
  const cents = BigInt(whole) * 100n + BigInt(fraction.padEnd(2, '0'));
  return sign === '-' ? -cents : cents;
}

export const parseCents = parseHundredths;

/** Integer cents → `"-12.05"`. */
export function money(cents: bigint): string {
  const sign = cents < 0n ? '-' : '';
  const abs = cents < 0n ? -cents : cents;
  return `${sign}${abs / 100n}.${(abs % 100n).toString().padStart(2, '0')}`;
}

/** hours × rate in cents, rounded half away from zero (CONTRACT §1). */
export function amountCents(hundredthsOfHour: bigint, rateCents: bigint): bigint {
  return divideHalfAwayFromZero(hundredthsOfHour * rateCents, 100n);
}

export function divideHalfAwayFromZero(numerator: bigint, denominator: bigint): bigint {
  const negative = numerator < 0n !== denominator < 0n;
  const n = numerator < 0n ? -numerator : numerator;
  const d = denominator < 0n ? -denominator : denominator;
  const q = (n + d / 2n) / d;
  return negative ? -q : q;
}

// ---------------------------------------------------------------------------
// The expected outcome: an independent reading of CONTRACT §3

export interface ExpectedOutcome {
  /**
   * Time messages published: every delivery, duplicates, revisions and invalid
   * ones included. JetStream drops a redelivery under the original's Nats-Msg-Id
   * inside its duplicate window, so the pipeline may see up to
   * `plan.duplicatesWithSameMsgId` fewer.
   */
  entriesIn: number;
  /** Redeliveries of the latest (entryId, revision) seen. */
  duplicates: number;
  /** Revisions lower than one already seen (a redelivered revision 1 after revision 2 is stale). */
  stale: number;
  /** ERP charge documents for time (kind `charge`), including those later reversed. */
  charged: number;
  /** ERP reversal documents. */
  reversed: number;
  /** Approved revisions enriched as non-billable (no charge, no exception). */
  nonBillable: number;
  /** Approved revisions held because they would cross notToExceed. */
  held: number;
  exceptionsByCode: Record<string, number>;
  /** Net of every ERP document (charges, reversals, milestones) per currency. */
  erpTotalByCurrency: Record<string, string>;
  /** Net of every ERP document per project, in the project's currency. */
  erpTotalByProject: Record<string, string>;
  milestonesCharged: number;
  /** `no_assignment` exceptions: entries whose assignment never arrives. */
  noAssignmentNeverArrives: number;
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * What the pipeline must end with after the week, computed straight from the
 * messages.
 *
 * The grace period is assumed long enough for all late reference data, so the
 * reference data is read in full first (highest revision wins, stale ones are
 * ignored) and time and milestones are then applied in publish order. Charges are
 * applied per project in publish order: an entry whose charge would take the
 * project's posted sum above notToExceed is held, and a later smaller one may
 * still fit.
 *
 * @param weekClose only its messages are read.
 */
export function expectedOutcome(weekClose: { messages: readonly IngestMessage[] }): ExpectedOutcome {
  const projects = new Map<string, ProjectRecord>();
  const assignments = new Map<string, AssignmentRecord>();
  const ratecards = new Map<string, RatecardRecord>();
  for (const message of weekClose.messages) {
    if (message.record === undefined) continue;
    const kind = message.subject.split('.')[1];
    if (kind === 'project') {
      const p = message.record as ProjectRecord;
      projects.set(p.projectId, p);
    } else if (kind === 'assignment') {
      const a = message.record as AssignmentRecord;
      const seen = assignments.get(a.assignmentId);
      if (seen === undefined || seen.revision < a.revision) assignments.set(a.assignmentId, a);
    } else if (kind === 'ratecard') {
      const r = message.record as RatecardRecord;
      ratecards.set(`${r.contractId}|${r.role}|${r.effectiveFrom}`, r);
    }
  }
  const assignmentsByProject = groupBy([...assignments.values()], (a) => a.projectId);
  const ratecardsByContractRole = groupBy([...ratecards.values()], (r) => `${r.contractId}|${r.role}`);

  const outcome = {
    entriesIn: 0,
    duplicates: 0,
    stale: 0,
    charged: 0,
    reversed: 0,
    nonBillable: 0,
    held: 0,
    milestonesCharged: 0,
  };
  const exceptions = new Map<string, number>();
  const totalsByCurrency = new Map<string, bigint>();
  const totalsByProject = new Map<string, bigint>();
  const postedByProject = new Map<string, bigint>();
  const seenRevisions = new Set<string>();
  const highestRevision = new Map<string, number>();
  const currentCharge = new Map<string, { projectId: string; currency: string; cents: bigint }>();
  const chargedMilestones = new Set<string>();

  const raise = (code: string) => exceptions.set(code, (exceptions.get(code) ?? 0) + 1);
  const post = (projectId: string, currency: string, cents: bigint) => {
    totalsByCurrency.set(currency, (totalsByCurrency.get(currency) ?? 0n) + cents);
    totalsByProject.set(projectId, (totalsByProject.get(projectId) ?? 0n) + cents);
    postedByProject.set(projectId, (postedByProject.get(projectId) ?? 0n) + cents);
  };

  for (const message of weekClose.messages) {
    const kind = message.subject.split('.')[1];
    if (kind === 'milestone' && message.record !== undefined) {
      const m = message.record as MilestoneRecord;
      const project = projects.get(m.projectId);
      if (m.status !== 'complete' || project?.status !== 'active' || project.billingModel !== 'fixed_fee') continue;
      if (chargedMilestones.has(m.milestoneId)) continue;
      chargedMilestones.add(m.milestoneId);
      post(m.projectId, m.currency, parseCents(m.amount));
      outcome.milestonesCharged++;
      continue;
    }
    if (kind !== 'time') continue;
    outcome.entriesIn++;

    // 1. shape
    const entry = readTime(message);
    if (entry === undefined) {
      raise('invalid_record');
      continue;
    }
    const revisionKey = `${entry.record.entryId}|${entry.record.revision}`;
    if ((highestRevision.get(entry.record.entryId) ?? 0) > entry.record.revision) {
      outcome.stale++;
      continue;
    }
    if (seenRevisions.has(revisionKey)) {
      outcome.duplicates++;
      continue;
    }
    seenRevisions.add(revisionKey);
    highestRevision.set(entry.record.entryId, entry.record.revision);

    // 8. a new revision first reverses what the entry is billed now
    const previous = currentCharge.get(entry.record.entryId);
    if (previous !== undefined) {
      post(previous.projectId, previous.currency, -previous.cents);
      outcome.reversed++;
      currentCharge.delete(entry.record.entryId);
    }
    if (entry.record.status !== 'approved') continue;

    // 2. reference data (all of it arrived within the grace)
    const { record, hundredths } = entry;
    const project = projects.get(record.projectId);
    if (project === undefined) {
      raise('unknown_project');
      continue;
    }
    // 3. the assignment that covers the work date
    const assignment = (assignmentsByProject.get(record.projectId) ?? []).find(
      (a) => a.consultantId === record.consultantId && a.taskId === record.taskId && a.startDate <= record.workDate && record.workDate <= a.endDate,
    );
    if (assignment === undefined) {
      raise('no_assignment');
      continue;
    }
    // 6. (known-ness) the rate in force on the work date
    const ratecard = (ratecardsByContractRole.get(`${project.contractId}|${assignment.role}`) ?? []).find(
      (r) => r.effectiveFrom <= record.workDate && (r.effectiveTo === undefined || record.workDate < r.effectiveTo),
    );
    if (ratecard === undefined) {
      raise('rate_missing');
      continue;
    }
    // 4.
    if (project.status === 'closed') {
      raise('project_closed');
      continue;
    }
    // 5.
    const task = project.tasks.find((t) => t.taskId === record.taskId);
    const billable = project.billingModel === 'tm' && task?.billable === true && assignment.billable;
    if (!billable) {
      outcome.nonBillable++;
      continue;
    }
    // 6. currency
    if (ratecard.currency !== project.currency) {
      raise('rate_mismatch');
      continue;
    }
    // 7. notToExceed
    const cents = amountCents(hundredths, parseCents(ratecard.rate));
    if (project.notToExceed !== undefined && (postedByProject.get(project.projectId) ?? 0n) + cents > parseCents(project.notToExceed)) {
      raise('cap_exceeded');
      outcome.held++;
      continue;
    }
    post(project.projectId, project.currency, cents);
    currentCharge.set(record.entryId, { projectId: project.projectId, currency: project.currency, cents });
    outcome.charged++;
  }

  return {
    ...outcome,
    exceptionsByCode: Object.fromEntries([...exceptions].sort(([a], [b]) => a.localeCompare(b))),
    erpTotalByCurrency: Object.fromEntries([...totalsByCurrency].sort(([a], [b]) => a.localeCompare(b)).map(([c, v]) => [c, money(v)])),
    erpTotalByProject: Object.fromEntries([...totalsByProject].sort(([a], [b]) => a.localeCompare(b)).map(([p, v]) => [p, money(v)])),
    noAssignmentNeverArrives: exceptions.get('no_assignment') ?? 0,
  };
}

/** A time message as a valid record with its hours in hundredths, or undefined when CONTRACT §1–2 rejects it. */
function readTime(message: IngestMessage): { record: TimeRecord; hundredths: bigint } | undefined {
  let value: unknown;
  try {
    value = message.raw === undefined ? message.record : JSON.parse(message.raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Partial<Record<keyof TimeRecord, unknown>>;
  const ids = [r.entryId, r.consultantId, r.projectId, r.taskId];
  if (!ids.every((id) => typeof id === 'string' && ID.test(id))) return undefined;
  if (typeof r.source !== 'string' || r.source === '') return undefined;
  if (typeof r.revision !== 'number' || !Number.isInteger(r.revision) || r.revision < 1) return undefined;
  if (typeof r.workDate !== 'string' || !DATE.test(r.workDate) || Number.isNaN(Date.parse(`${r.workDate}T00:00:00Z`))) return undefined;
  if (r.status !== 'submitted' && r.status !== 'approved' && r.status !== 'rejected') return undefined;
  if (typeof r.hours !== 'number' && typeof r.hours !== 'string') return undefined;
  let hundredths: bigint;
  try {
    hundredths = parseHundredths(r.hours);
  } catch {
    return undefined;
  }
  if (hundredths <= 0n || hundredths > 2400n) return undefined;
  return { record: value as TimeRecord, hundredths };
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [item]);
    else group.push(item);
  }
  return groups;
}
