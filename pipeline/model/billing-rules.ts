// The billing semantics of CONTRACT §3 as pure functions: which assignment
// covers an entry, which rate applies, whether it is billable, what it costs,
// and what a new revision does to what was already charged. No I/O and no
// clock here, so the project actor can call them inside a turn and tests can
// state every case as a row of a table.
import { lineAmount, parseHours, parseMoney } from './money.ts';
import type { AssignmentRecord, ConsultantRecord, ProjectRecord, RatecardRecord, TimeRecord } from './types.ts';

/** The fields of a time entry that decide which assignment covers it. */
export interface AssignmentQuery {
  consultantId: string;
  projectId: string;
  taskId: string;
  workDate: string;
}

/**
 * Find the assignment that covers an entry (CONTRACT §3.3).
 *
 * Ids must be equal and startDate ≤ workDate ≤ endDate (both inclusive;
 * ISO dates compare correctly as strings). Only the latest revision of each
 * assignmentId counts, since a later revision supersedes the earlier one even
 * when it narrows the dates. When several assignments still match, the
 * highest revision wins, then the latest startDate; the greatest assignmentId
 * breaks a last tie so the answer never depends on arrival order.
 *
 * @example matchAssignment([a1], { consultantId: 'c-1', projectId: 'p-1', taskId: 't-1', workDate: '2026-11-20' }) // a1 when it covers 2026-11-20
 * @returns the covering assignment, or undefined when none does
 */
export function matchAssignment(
  assignments: readonly AssignmentRecord[],
  entry: AssignmentQuery,
): AssignmentRecord | undefined {
  // Called for every entry on a consultant's few assignments of one project: the
  // latest revision of each id is found by looking along the list rather than
  // by building a map per call.
  let best: AssignmentRecord | undefined;
  for (let i = 0; i < assignments.length; i++) {
    const a = assignments[i] as AssignmentRecord;
    const covers =
      a.consultantId === entry.consultantId &&
      a.projectId === entry.projectId &&
      a.taskId === entry.taskId &&
      a.startDate <= entry.workDate &&
      entry.workDate <= a.endDate;
    if (covers && isLatestRevision(assignments, i) && (best === undefined || preferAssignment(a, best))) best = a;
  }
  return best;
}

/** Whether `assignments[i]` is its id's latest revision: no higher one in the list, nor an equal one before it. */
function isLatestRevision(assignments: readonly AssignmentRecord[], i: number): boolean {
  const a = assignments[i] as AssignmentRecord;
  for (let j = 0; j < assignments.length; j++) {
    const b = assignments[j] as AssignmentRecord;
    if (j !== i && b.assignmentId === a.assignmentId && (b.revision > a.revision || (b.revision === a.revision && j < i))) return false;
  }
  return true;
}

function preferAssignment(a: AssignmentRecord, b: AssignmentRecord): boolean {
  if (a.revision !== b.revision) return a.revision > b.revision;
  if (a.startDate !== b.startDate) return a.startDate > b.startDate;
  return a.assignmentId > b.assignmentId;
}

/**
 * Find the rate of a role under a contract on a day (CONTRACT §3.6).
 *
 * A card applies when effectiveFrom ≤ workDate < effectiveTo; effectiveTo is
 * exclusive so that consecutive cards (to = next from) never overlap, and a
 * card without effectiveTo is open-ended. When cards overlap anyway, the one
 * that took effect last wins (it is the newer agreement); among cards with
 * the same effectiveFrom, the highest revision.
 *
 * @example resolveRate(cards, 'k-1', 'senior', '2026-07-01') // the card effective from 2026-07-01, not the one ending then
 * @returns the applicable card, or undefined when none applies
 */
export function resolveRate(
  cards: readonly RatecardRecord[],
  contractId: string,
  role: string,
  workDate: string,
): RatecardRecord | undefined {
  let best: RatecardRecord | undefined;
  for (const card of cards) {
    const applies =
      card.contractId === contractId &&
      card.role === role &&
      card.effectiveFrom <= workDate &&
      (card.effectiveTo === undefined || workDate < card.effectiveTo);
    if (!applies) continue;
    if (
      best === undefined ||
      card.effectiveFrom > best.effectiveFrom ||
      (card.effectiveFrom === best.effectiveFrom && (card.revision ?? 1) > (best.revision ?? 1))
    ) {
      best = card;
    }
  }
  return best;
}

/**
 * Whether time on a task under an assignment is billed (CONTRACT §3.5).
 *
 * All three must agree: a time-and-materials project (fixed-fee projects bill
 * milestones, not hours), a billable task, a billable assignment. A task the
 * project does not list is not billable: billing it would invent a charge
 * the contract does not name.
 */
export function isBillable(project: ProjectRecord, taskId: string, assignment: AssignmentRecord): boolean {
  if (project.billingModel !== 'tm' || !assignment.billable) return false;
  const task = project.tasks.find((t) => t.taskId === taskId);
  return task?.billable === true;
}

/** What enrichment concluded for one entry revision. */
export type EnrichmentOutcome =
  | {
      kind: 'enriched';
      billable: boolean;
      role: string;
      /** The applicable rate in cents; null for a non-billable entry without a rate in the project's currency. */
      rateMinor: bigint | null;
      /** The project's currency: the currency the entry is billed in. */
      currency: string;
      /** hours × rate, also for a non-billable entry (what it would have cost the customer); null without a rate. */
      amountMinor: bigint | null;
      /** hours × the consultant's cost rate, in the consultant's currency; null when the consultant is unknown. */
      costAmountMinor: bigint | null;
      hoursHundredths: bigint;
      assignment: AssignmentRecord;
      ratecard: RatecardRecord | null;
    }
  | {
      kind: 'waiting';
      missing: 'project' | 'assignment' | 'rate';
      code: 'unknown_project' | 'no_assignment' | 'rate_missing';
      reason: string;
    }
  | { kind: 'exception'; code: 'project_closed' | 'rate_mismatch'; reason: string };

/** The reference data an entry is enriched against; the caller looks it up by the entry's ids. */
export interface EntryReference {
  project?: ProjectRecord;
  /** Assignments of the entry's project (others are ignored by id anyway). */
  assignments: readonly AssignmentRecord[];
  /** Ratecards of the project's contract. */
  ratecards: readonly RatecardRecord[];
  consultant?: ConsultantRecord;
}

/**
 * Enrich one time entry against reference data (CONTRACT §3.2–§3.6).
 *
 * The checks run in the contract's order, so a report names the first thing
 * to fix: an unknown project, then a closed one, then a missing assignment,
 * then (billable entries only) a missing rate or one in the wrong currency.
 * "waiting" outcomes may resolve when reference data arrives, so the caller
 * retries them until the grace runs out; "exception" outcomes will not.
 *
 * A non-billable entry never waits for a rate and never fails on one: it
 * produces no charge, so a rate in its project's currency is only reported
 * (amountMinor shows what it would have been) and any other rate is ignored.
 *
 * @example evaluateEntry(entry, { project, assignments: [a1], ratecards: [card] })
 * // { kind: 'enriched', billable: true, role: 'senior', rateMinor: 15000n, amountMinor: 112500n, ... }
 */
export function evaluateEntry(entry: TimeRecord, ref: EntryReference): EnrichmentOutcome {
  const { project } = ref;
  if (project === undefined) {
    return {
      kind: 'waiting',
      missing: 'project',
      code: 'unknown_project',
      reason: `project ${entry.projectId} of entry ${entry.entryId} is not known`,
    };
  }
  if (project.status === 'closed') {
    return {
      kind: 'exception',
      code: 'project_closed',
      reason: `project ${project.projectId} is closed; entry ${entry.entryId} on ${entry.workDate} cannot be billed`,
    };
  }
  const assignment = matchAssignment(ref.assignments, entry);
  if (assignment === undefined) {
    return {
      kind: 'waiting',
      missing: 'assignment',
      code: 'no_assignment',
      reason: `no assignment of consultant ${entry.consultantId} on project ${entry.projectId} task ${entry.taskId} covers ${entry.workDate}`,
    };
  }

  const billable = isBillable(project, entry.taskId, assignment);
  const found = resolveRate(ref.ratecards, project.contractId, assignment.role, entry.workDate);
  if (billable && found === undefined) {
    return {
      kind: 'waiting',
      missing: 'rate',
      code: 'rate_missing',
      reason: `no rate of role ${assignment.role} on contract ${project.contractId} is effective on ${entry.workDate}`,
    };
  }
  if (billable && found !== undefined && found.currency !== project.currency) {
    return {
      kind: 'exception',
      code: 'rate_mismatch',
      reason:
        `rate of role ${assignment.role} on contract ${project.contractId} effective ${found.effectiveFrom} ` +
        `is in ${found.currency}, project ${project.projectId} bills in ${project.currency}`,
    };
  }
  const ratecard = found !== undefined && found.currency === project.currency ? found : null;

  const hoursHundredths = parseHours(entry.hours);
  const rateMinor = ratecard === null ? null : parseMoney(ratecard.rate);
  const amountMinor = rateMinor === null ? null : lineAmount(hoursHundredths, rateMinor);
  const costAmountMinor =
    ref.consultant === undefined ? null : lineAmount(hoursHundredths, parseMoney(ref.consultant.costRate));

  return {
    kind: 'enriched',
    billable,
    role: assignment.role,
    rateMinor,
    currency: project.currency,
    amountMinor,
    costAmountMinor,
    hoursHundredths,
    assignment,
    ratecard,
  };
}

/** What is on the books for one entry: the revision charged (if any) and the latest revision seen. */
export interface ChargedState {
  /** Revision whose charge is currently posted and not reversed; null when nothing is charged. */
  chargedRevision: number | null;
  chargedHours: bigint;
  chargedAmountMinor: bigint;
  /**
   * Highest revision already planned, charged or not; null for a new entry. A
   * revision parked as waiting or as an exception has not been planned yet, so
   * its replay is not a duplicate.
   */
  latestRevision: number | null;
}

/** What to do with an incoming revision. */
export interface RevisionPlan {
  /** Lower than a revision already seen: ignore it and count it (CONTRACT §2). */
  stale: boolean;
  /** The revision already seen, redelivered: ignore it; it was handled the first time. */
  duplicate: boolean;
  /** Post a reversal of the current charge (negated hours and amount) first. */
  reverse: boolean;
  /** Post a charge for the incoming revision. */
  charge: boolean;
}

/**
 * Decide what a revision does to an entry's charges (CONTRACT §3.8).
 *
 * Each (entryId, revision) is charged at most once, so a revision already
 * seen does nothing. A newer revision supersedes: whatever is charged now is
 * reversed, then the new revision is charged when it is chargeable (approved,
 * billable and enriched). A rejected or re-submitted revision of a charged
 * entry therefore only reverses, and the entry's documents sum to what it is
 * billed now.
 *
 * @example planRevision({ chargedRevision: 1, chargedHours: 750n, chargedAmountMinor: 112500n, latestRevision: 1 }, { revision: 2, chargeable: true })
 * // { stale: false, duplicate: false, reverse: true, charge: true }
 */
export function planRevision(current: ChargedState, incoming: { revision: number; chargeable: boolean }): RevisionPlan {
  const latest = current.latestRevision;
  if (latest !== null && incoming.revision < latest) {
    return { stale: true, duplicate: false, reverse: false, charge: false };
  }
  if (latest !== null && incoming.revision === latest) {
    return { stale: false, duplicate: true, reverse: false, charge: false };
  }
  return {
    stale: false,
    duplicate: false,
    reverse: current.chargedRevision !== null,
    charge: incoming.chargeable,
  };
}

/**
 * Whether posting `deltaMinor` would take a project's posted total past its notToExceed (CONTRACT §3.7).
 *
 * Reaching the cap exactly is allowed. A reversal (delta ≤ 0) never exceeds:
 * it lowers the total, and holding it would keep a wrong charge on the books.
 *
 * @param notToExceedMinor the project's cap in cents; null when it has none
 * @param postedMinor the sum of the project's posted charges and reversals
 * @param deltaMinor the amount about to be posted
 */
export function wouldExceedCap(notToExceedMinor: bigint | null, postedMinor: bigint, deltaMinor: bigint): boolean {
  if (notToExceedMinor === null || deltaMinor <= 0n) return false;
  return postedMinor + deltaMinor > notToExceedMinor;
}
