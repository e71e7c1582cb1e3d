// The per-project actor's turn: everything that decides money for one project
// happens here, strictly one turn at a time per project (the mailbox is the
// serialPerKey operator), projects in parallel. A turn takes the mailbox's
// queued items, decides each in arrival order against the project's billing
// state, and commits state, ERP outbox rows, NATS outbox rows, exceptions and
// the dedupe record (entry_revision) in ONE transaction. Messages are acked only
// after that commit; a crash before it redelivers them, and the entry_revision
// key turns the redelivery into a counted duplicate.
//
// The actor's state is the project_billing row, re-read under `for update` at
// the start of every turn: an idle actor holds nothing in memory (passivation is
// free), and even two instances overlapping during a lease handover serialise
// on the row instead of double-charging.
import type { EntityManager } from '@mikro-orm/postgresql';
import type { MikroORM } from '@mikro-orm/postgresql';
import { planRevision, wouldExceedCap, type EnrichmentOutcome } from './model/billing-rules.ts';
import { formatHours, formatMoney, parseHours, parseMoney } from './model/money.ts';
import type { ExceptionCode, MilestoneRecord, ProjectRecord, TimeRecord } from './model/types.ts';
import { addToCounters, exceptionRow, queueNatsMessages, recordExceptions, type ExceptionRow, type NatsOutboxRow } from './exception-records.ts';
import type { ReferenceSnapshot } from './reference-view.ts';
import { EntryTracing, type EntryTiming, type TurnTrace } from './entry-tracing.ts';

/** How a message that produced an item is settled once its turn has committed. */
export interface Settlement {
  ack(): void;
  /** Redeliver later (the item could not be decided yet and is not stored). */
  nak(delayMs: number): void;
}

export interface TimeItem {
  type: 'time';
  entry: TimeRecord;
  outcome: EnrichmentOutcome;
  snapshot: Pick<ReferenceSnapshot, 'project' | 'consultant'>;
  /** Routing region from the ingest subject (the project's region wins once known). */
  region: string;
  receivedAt: Date;
  traceParent?: string | null;
  traceId?: string | null;
  /** Re-evaluation of a stored waiting/exception revision (release, sweep, replay). */
  reevaluate?: boolean;
  /** When the stages before the actor ran (tracing on only): the turn makes their spans. */
  timing?: EntryTiming;
  settle?: Settlement;
}

export interface MilestoneItem {
  type: 'milestone';
  milestone: MilestoneRecord;
  project?: ProjectRecord;
  region: string;
  receivedAt: Date;
  traceParent?: string | null;
  settle?: Settlement;
}

export type ActorItem = TimeItem | MilestoneItem;

export interface TurnCounts {
  charged: number;
  reversed: number;
  nonBillable: number;
  notChargeable: number;
  held: number;
  waiting: number;
  exceptions: number;
  duplicates: number;
  stale: number;
  milestones: number;
  deferred: number;
}

export interface TurnResult {
  projectId: string;
  counts: TurnCounts;
  /** ERP outbox rows written: the poster is woken when > 0. */
  outboxRows: number;
  /** (entryId, revision, stage) decided in this turn, for the lifecycle and tests. */
  decisions: { entryId: string; revision: number; stage: string; traceId?: string | null }[];
}

export interface ProjectActorOptions {
  /** How long an entry waits for reference data before it becomes an exception. @default 300 s */
  referenceGraceMs: number;
  now?: () => Date;
  /** @default EntryTracing.off */
  tracing?: EntryTracing;
}

interface EntryBillingState {
  latest_revision: number;
  charged_revision: number | null;
  charged_hours_hundredths: string;
  charged_amount_minor: string;
  charged_transaction: Record<string, string | number> | null;
}

function emptyCounts(): TurnCounts {
  return { charged: 0, reversed: 0, nonBillable: 0, notChargeable: 0, held: 0, waiting: 0, exceptions: 0, duplicates: 0, stale: 0, milestones: 0, deferred: 0 };
}

export class ProjectActors {
  readonly #orm: MikroORM;
  readonly #options: ProjectActorOptions;
  /** Projects with a turn in the last minute: the "active actors" gauge. */
  readonly #lastTurnAt = new Map<string, number>();

  constructor(orm: MikroORM, options: ProjectActorOptions) {
    this.#orm = orm;
    this.#options = options;
  }

  activeActors(withinMs = 60_000): number {
    const since = Date.now() - withinMs;
    for (const [projectId, at] of this.#lastTurnAt) if (at < since) this.#lastTurnAt.delete(projectId);
    return this.#lastTurnAt.size;
  }

  /** One turn of one project's actor; the caller guarantees turns of a project never overlap. */
  async turn(projectId: string, items: readonly ActorItem[]): Promise<TurnResult> {
    this.#lastTurnAt.set(projectId, Date.now());
    const turnTrace = (this.#options.tracing ?? EntryTracing.off).startTurn(projectId, items.length);
    let result: { result: TurnResult; deferred: Set<ActorItem> };
    try {
      result = await this.#orm.em.fork().transactional((em) => this.#decide(em as EntityManager, projectId, items, turnTrace));
    } catch (err) {
      turnTrace.fail(err);
      throw err;
    }
    turnTrace.end();
    for (const item of items) {
      if (result.deferred.has(item)) item.settle?.nak(5_000);
      else item.settle?.ack();
    }
    return result.result;
  }

  async #decide(em: EntityManager, projectId: string, items: readonly ActorItem[], turnTrace: TurnTrace): Promise<{ result: TurnResult; deferred: Set<ActorItem> }> {
    const now = this.#options.now?.() ?? new Date();
    const counts = emptyCounts();
    const decisions: TurnResult['decisions'] = [];
    const deferred = new Set<ActorItem>();

    await em.execute(`insert into project_billing (project_id) values (?) on conflict do nothing`, [projectId]);
    const [billing] = await em.execute<{ charged_minor: string; reversed_minor: string; held_minor: string }[]>(
      `select charged_minor, reversed_minor, held_minor from project_billing where project_id = ? for update`, [projectId]);
    let chargedMinor = BigInt(billing?.charged_minor ?? 0);
    let reversedMinor = BigInt(billing?.reversed_minor ?? 0);
    let heldMinor = BigInt(billing?.held_minor ?? 0);

    const timeItems = items.filter((i): i is TimeItem => i.type === 'time');
    const entryIds = [...new Set(timeItems.map((i) => i.entry.entryId))];
    const entryStates = new Map<string, EntryBillingState>();
    const seenRevisions = new Map<string, { stage: string; first_seen_at: string; amount_minor?: string | null }>();
    if (entryIds.length > 0) {
      for (const row of await em.execute<(EntryBillingState & { entry_id: string })[]>(
        `select entry_id, latest_revision, charged_revision, charged_hours_hundredths, charged_amount_minor, charged_transaction
         from entry_billing where entry_id in (select jsonb_array_elements_text(?::jsonb))`, [JSON.stringify(entryIds)])) {
        entryStates.set(row.entry_id, row);
      }
      for (const row of await em.execute<{ entry_id: string; revision: number; stage: string; first_seen_at: string; amount_minor: string | null }[]>(
        `select entry_id, revision, stage, first_seen_at, amount_minor from entry_revision
         where (entry_id, revision) in (select x.entry_id, x.revision from jsonb_to_recordset(?::jsonb) as x(entry_id text, revision int))`,
        [JSON.stringify(timeItems.map((i) => ({ entry_id: i.entry.entryId, revision: i.entry.revision })))])) {
        seenRevisions.set(`${row.entry_id}:${row.revision}`, row);
      }
    }

    const revisionRows: Record<string, unknown>[] = [];
    const reversedRevisions: { entry_id: string; revision: number }[] = [];
    const billingRows = new Map<string, Record<string, unknown>>();
    const outboxRows: Record<string, unknown>[] = [];
    const natsRows: NatsOutboxRow[] = [];
    const exceptions: ExceptionRow[] = [];
    const exceptionHeaders = new Map<string, Record<string, string>>();
    const resolvedExceptionEntries: { entry_id: string; revision: number }[] = [];

    const posted = () => chargedMinor - reversedMinor;

    for (const item of items) {
      if (item.type === 'milestone') {
        const outcome = await this.#decideMilestone(em, item, now, posted());
        if (outcome.kind === 'defer') { deferred.add(item); counts.deferred++; continue; }
        if (outcome.kind === 'exception') { exceptions.push(outcome.exception); counts.exceptions++; continue; }
        if (outcome.kind === 'charge') {
          outboxRows.push(outcome.outbox);
          chargedMinor += outcome.amountMinor;
          counts.milestones++;
        } else if (outcome.kind === 'held') {
          exceptions.push(outcome.exception);
          heldMinor += outcome.amountMinor;
          counts.held++;
        }
        continue;
      }

      const { entry } = item;
      const key = `${entry.entryId}:${entry.revision}`;
      const seen = seenRevisions.get(key);
      // A replay from the exception workbench re-decides an exception or a held (cap_exceeded) revision.
      const reopenable = seen && (seen.stage === 'waiting' || (item.reevaluate && (seen.stage === 'exception' || seen.stage === 'held')));
      // Before any row is built: an entry without a trace gets its root here.
      if (!seen || reopenable) turnTrace.enter(item, seen);
      const state = entryStates.get(entry.entryId);
      const plan = planRevision(
        {
          chargedRevision: state?.charged_revision ?? null,
          chargedHours: BigInt(state?.charged_hours_hundredths ?? 0),
          chargedAmountMinor: BigInt(state?.charged_amount_minor ?? 0),
          latestRevision: state?.latest_revision ?? null,
        },
        { revision: entry.revision, chargeable: false },
      );
      const project = item.snapshot.project;
      const region = project?.region ?? item.region;
      const firstSeenAt = seen ? new Date(seen.first_seen_at) : item.receivedAt;
      const hours = parseHours(entry.hours);
      const baseRow = {
        entry_id: entry.entryId, revision: entry.revision, project_id: projectId, region, status: entry.status,
        hours_hundredths: hours.toString(), work_date: entry.workDate, record: entry,
        trace_id: item.traceId ?? null, trace_parent: item.traceParent ?? null,
        first_seen_at: firstSeenAt.toISOString(), approved_at: entry.approvedAt ?? null,
      };
      // A revision older than one already decided is stale: counted and ignored
      // (recorded once; a revision that was waiting is closed as stale).
      if (plan.stale) {
        if (!seen || reopenable) revisionRows.push({ ...baseRow, stage: 'stale' });
        counts.stale++;
        decisions.push({ entryId: entry.entryId, revision: entry.revision, stage: 'stale' });
        continue;
      }
      if (seen && !reopenable) { counts.duplicates++; continue; }

      const outcome = item.outcome;
      // CONTRACT §3 applies to approved entries: a submitted or rejected revision
      // never waits for reference data and never raises an exception; it is
      // decided at once (reversing whatever an earlier revision charged).
      const approved = entry.status === 'approved';
      let failure: { code: ExceptionCode; reason: string } | null = approved && outcome.kind === 'exception' ? { code: outcome.code, reason: outcome.reason } : null;
      if (outcome.kind === 'waiting' && approved) {
        const waitedMs = now.getTime() - firstSeenAt.getTime();
        if (waitedMs < this.#options.referenceGraceMs) {
          revisionRows.push({ ...baseRow, stage: 'waiting', waiting_for: outcome.missing });
          counts.waiting++;
          decisions.push({ entryId: entry.entryId, revision: entry.revision, stage: 'waiting', traceId: item.traceId });
          // A waiting revision does not move the entry's latest decided revision:
          // revisions released together are then decided in their own order, so a
          // revision 1 released with its revision 2 is charged and then reversed,
          // as CONTRACT §3.8 has every billable revision charged once.
          seenRevisions.set(key, { stage: 'waiting', first_seen_at: firstSeenAt.toISOString() });
          continue;
        }
        failure = { code: outcome.code, reason: `${outcome.reason} (waited ${Math.round(waitedMs / 1000)} s for reference data)` };
      }

      // Decided: this revision supersedes whatever was charged before it.
      let current = state ?? { latest_revision: entry.revision, charged_revision: null, charged_hours_hundredths: '0', charged_amount_minor: '0', charged_transaction: null };
      current = { ...current, latest_revision: Math.max(current.latest_revision, entry.revision) };
      if (current.charged_revision !== null && current.charged_revision !== entry.revision && current.charged_transaction) {
        const reversal = reversalOf(current.charged_transaction);
        outboxRows.push(outboxRow(reversal, projectId, region, item.traceParent ?? null));
        reversedMinor += BigInt(current.charged_amount_minor);
        reversedRevisions.push({ entry_id: entry.entryId, revision: current.charged_revision });
        counts.reversed++;
        current = { ...current, charged_revision: null, charged_hours_hundredths: '0', charged_amount_minor: '0', charged_transaction: null };
      }

      let stage: string;
      let exceptionCode: string | null = null;
      const enrichment = outcome.kind === 'enriched' ? outcome : null;
      if (failure) {
        stage = 'exception';
        exceptionCode = failure.code;
        const row = exceptionRow({ code: failure.code, recordKind: 'time', recordId: entry.entryId, revision: entry.revision, projectId, region, message: failure.reason, record: entry });
        exceptions.push(row);
        if (item.traceParent) exceptionHeaders.set(row.id, { traceparent: item.traceParent });
        counts.exceptions++;
      } else if (enrichment && entry.status === 'approved' && enrichment.billable && enrichment.amountMinor !== null && project) {
        if (wouldExceedCap(project.notToExceed === undefined ? null : parseMoney(project.notToExceed), posted(), enrichment.amountMinor)) {
          stage = 'held';
          exceptionCode = 'cap_exceeded';
          const row = exceptionRow({
            code: 'cap_exceeded', recordKind: 'time', recordId: entry.entryId, revision: entry.revision, projectId, region, record: entry,
            message: `charging ${formatMoney(enrichment.amountMinor)} ${enrichment.currency} for entry ${entry.entryId} revision ${entry.revision} would take project ${projectId} past its notToExceed of ${project.notToExceed} (posted so far ${formatMoney(posted())})`,
          });
          exceptions.push(row);
          if (item.traceParent) exceptionHeaders.set(row.id, { traceparent: item.traceParent });
          heldMinor += enrichment.amountMinor;
          counts.held++;
        } else {
          stage = 'charged';
          const transaction = chargeOf(entry, project, enrichment, hours);
          outboxRows.push(outboxRow(transaction, projectId, region, item.traceParent ?? null));
          chargedMinor += enrichment.amountMinor;
          current = { ...current, charged_revision: entry.revision, charged_hours_hundredths: hours.toString(), charged_amount_minor: enrichment.amountMinor.toString(), charged_transaction: transaction };
          counts.charged++;
        }
      } else if (enrichment && entry.status === 'approved') {
        stage = 'non_billable';
        counts.nonBillable++;
      } else {
        stage = 'not_chargeable';
        counts.notChargeable++;
      }
      // A re-decided held revision no longer holds its amount (held again, it was added back above).
      if (seen?.stage === 'held') heldMinor -= BigInt(seen.amount_minor ?? 0);
      if (seen?.stage === 'waiting' || seen?.stage === 'exception' || seen?.stage === 'held') {
        if (stage !== 'exception' && stage !== 'held') resolvedExceptionEntries.push({ entry_id: entry.entryId, revision: entry.revision });
      }

      revisionRows.push({
        ...baseRow, stage, waiting_for: null, exception_code: exceptionCode,
        billable: enrichment?.billable ?? null, role: enrichment?.role ?? null,
        rate_minor: enrichment?.rateMinor?.toString() ?? null, amount_minor: enrichment?.amountMinor?.toString() ?? null,
        currency: enrichment?.currency ?? project?.currency ?? null, enriched_at: enrichment ? now.toISOString() : null, decided_at: now.toISOString(),
      });
      billingRows.set(entry.entryId, billingRow(entry, projectId, current, current.latest_revision));
      entryStates.set(entry.entryId, current);
      seenRevisions.set(key, { stage, first_seen_at: firstSeenAt.toISOString() });
      decisions.push({ entryId: entry.entryId, revision: entry.revision, stage, traceId: item.traceId });
      if (enrichment && project) natsRows.push(enrichedMessage(entry, project, enrichment, item, now));
    }

    turnTrace.decided(revisionRows);
    await writeRevisions(em, revisionRows);
    if (reversedRevisions.length > 0) {
      await em.execute(`update entry_revision e set stage = 'reversed' from jsonb_to_recordset(?::jsonb) as x(entry_id text, revision int)
        where e.entry_id = x.entry_id and e.revision = x.revision`, [JSON.stringify(reversedRevisions)]);
    }
    if (billingRows.size > 0) {
      await em.execute(
        `insert into entry_billing as t (entry_id, project_id, latest_revision, charged_revision, charged_hours_hundredths, charged_amount_minor, charge_external_id, charged_transaction, updated_at)
         select x.entry_id, x.project_id, x.latest_revision, x.charged_revision, x.charged_hours_hundredths, x.charged_amount_minor, x.charge_external_id, x.charged_transaction, now()
         from jsonb_to_recordset(?::jsonb) as x(entry_id text, project_id text, latest_revision int, charged_revision int, charged_hours_hundredths bigint,
           charged_amount_minor bigint, charge_external_id text, charged_transaction jsonb)
         on conflict (entry_id) do update set latest_revision = greatest(t.latest_revision, excluded.latest_revision), charged_revision = excluded.charged_revision,
           charged_hours_hundredths = excluded.charged_hours_hundredths, charged_amount_minor = excluded.charged_amount_minor,
           charge_external_id = excluded.charge_external_id, charged_transaction = excluded.charged_transaction, updated_at = now()`,
        [JSON.stringify([...billingRows.values()])]);
    }
    if (outboxRows.length > 0) {
      await em.execute(
        `insert into erp_outbox (external_id, kind, project_id, region, entry_id, milestone_id, revision, work_date, hours_hundredths, amount_minor, currency, transaction, trace_parent)
         select x.external_id, x.kind, x.project_id, x.region, x.entry_id, x.milestone_id, x.revision, x.work_date, x.hours_hundredths, x.amount_minor, x.currency, x.transaction, x.trace_parent
         from jsonb_to_recordset(?::jsonb) as x(external_id text, kind text, project_id text, region text, entry_id text, milestone_id text, revision int,
           work_date date, hours_hundredths bigint, amount_minor bigint, currency text, transaction jsonb, trace_parent text)
         on conflict (external_id) do nothing`,
        [JSON.stringify(outboxRows)]);
    }
    if (resolvedExceptionEntries.length > 0) {
      await em.execute(`update billing_exception b set status = 'resolved', resolved_at = now(), resolved_by = 'pipeline'
        from jsonb_to_recordset(?::jsonb) as x(entry_id text, revision int)
        where b.entry_id = x.entry_id and b.revision = x.revision and b.status in ('open', 'replayed')`, [JSON.stringify(resolvedExceptionEntries)]);
    }
    await recordExceptions(em, exceptions, (row) => exceptionHeaders.get(row.id) ?? null);
    await queueNatsMessages(em, natsRows);
    await em.execute(`update project_billing set charged_minor = ?, reversed_minor = ?, held_minor = ?, turns = turns + 1, updated_at = now() where project_id = ?`,
      [chargedMinor.toString(), reversedMinor.toString(), heldMinor.toString(), projectId]);
    await addToCounters(em, { duplicates: counts.duplicates, stale: counts.stale });

    return { result: { projectId, counts, outboxRows: outboxRows.length, decisions }, deferred };
  }

  async #decideMilestone(em: EntityManager, item: MilestoneItem, now: Date, postedMinor: bigint): Promise<
    | { kind: 'defer' } | { kind: 'exception'; exception: ExceptionRow } | { kind: 'none' }
    | { kind: 'charge'; outbox: Record<string, unknown>; amountMinor: bigint } | { kind: 'held'; exception: ExceptionRow; amountMinor: bigint }> {
    const { milestone, project } = item;
    if (!project) {
      if (now.getTime() - item.receivedAt.getTime() < this.#options.referenceGraceMs) return { kind: 'defer' };
      return { kind: 'exception', exception: exceptionRow({ code: 'unknown_project', recordKind: 'milestone', recordId: milestone.milestoneId, projectId: milestone.projectId, region: item.region, record: milestone, message: `project ${milestone.projectId} of milestone ${milestone.milestoneId} is unknown` }) };
    }
    const amountMinor = parseMoney(milestone.amount);
    const chargeable = project.billingModel === 'fixed_fee' && project.status === 'active' && milestone.status === 'complete';
    const inserted = await em.execute<{ milestone_id: string }[]>(
      `insert into milestone (milestone_id, project_id, amount_minor, currency, status, stage, record) values (?, ?, ?, ?, ?, ?, ?)
       on conflict (milestone_id) do nothing returning milestone_id`,
      [milestone.milestoneId, project.projectId, amountMinor.toString(), milestone.currency, milestone.status, chargeable ? 'charged' : 'not_chargeable', JSON.stringify(milestone)]);
    if (inserted.length === 0) return { kind: 'none' };
    if (!chargeable) {
      if (project.status === 'closed') {
        return { kind: 'exception', exception: exceptionRow({ code: 'project_closed', recordKind: 'milestone', recordId: milestone.milestoneId, projectId: project.projectId, region: project.region, record: milestone, message: `project ${project.projectId} is closed; milestone ${milestone.milestoneId} is not charged` }) };
      }
      return { kind: 'none' };
    }
    if (milestone.currency !== project.currency) {
      return { kind: 'exception', exception: exceptionRow({ code: 'rate_mismatch', recordKind: 'milestone', recordId: milestone.milestoneId, projectId: project.projectId, region: project.region, record: milestone, message: `milestone ${milestone.milestoneId} is in ${milestone.currency} but project ${project.projectId} bills in ${project.currency}` }) };
    }
    if (wouldExceedCap(project.notToExceed === undefined ? null : parseMoney(project.notToExceed), postedMinor, amountMinor)) {
      await em.execute(`update milestone set stage = 'held' where milestone_id = ?`, [milestone.milestoneId]);
      return { kind: 'held', amountMinor, exception: exceptionRow({ code: 'cap_exceeded', recordKind: 'milestone', recordId: milestone.milestoneId, projectId: project.projectId, region: project.region, record: milestone, message: `milestone ${milestone.milestoneId} of ${milestone.amount} would take project ${project.projectId} past its notToExceed of ${project.notToExceed}` }) };
    }
    const transaction = {
      externalId: `milestone:${milestone.milestoneId}`, kind: 'milestone', milestoneId: milestone.milestoneId, revision: milestone.revision ?? 1,
      projectId: project.projectId, customerId: project.customerId, workDate: now.toISOString().slice(0, 10),
      amount: milestone.amount, currency: milestone.currency, legalEntity: project.legalEntity,
    };
    return { kind: 'charge', amountMinor, outbox: outboxRow(transaction, project.projectId, project.region, item.traceParent ?? null) };
  }
}

function billingRow(entry: TimeRecord, projectId: string, state: EntryBillingState | undefined, latestRevision: number): Record<string, unknown> {
  return {
    entry_id: entry.entryId, project_id: projectId, latest_revision: latestRevision,
    charged_revision: state?.charged_revision ?? null, charged_hours_hundredths: state?.charged_hours_hundredths ?? '0',
    charged_amount_minor: state?.charged_amount_minor ?? '0',
    charge_external_id: state?.charged_transaction ? state.charged_transaction.externalId : null,
    charged_transaction: state?.charged_transaction ?? null,
  };
}

function chargeOf(entry: TimeRecord, project: ProjectRecord, enrichment: Extract<EnrichmentOutcome, { kind: 'enriched' }>, hours: bigint): Record<string, string | number> {
  return {
    externalId: `${entry.entryId}:${entry.revision}:charge`, kind: 'charge', entryId: entry.entryId, revision: entry.revision,
    projectId: project.projectId, customerId: project.customerId, consultantId: entry.consultantId, role: enrichment.role,
    workDate: entry.workDate, hours: formatHours(hours), rate: formatMoney(enrichment.rateMinor ?? 0n),
    amount: formatMoney(enrichment.amountMinor ?? 0n), currency: enrichment.currency, legalEntity: project.legalEntity,
  };
}

/** The reversal of a charge negates its hours and amount, so an entry's documents sum to what it is billed now. */
function reversalOf(charge: Record<string, string | number>): Record<string, string | number> {
  const negate = (text: string | number) => (String(text).startsWith('-') ? String(text).slice(1) : String(text) === '0.00' ? '0.00' : `-${String(text)}`);
  return {
    ...charge,
    externalId: `${String(charge.entryId)}:${String(charge.revision)}:reversal`,
    kind: 'reversal',
    hours: negate(charge.hours ?? '0.00'),
    amount: negate(charge.amount ?? '0.00'),
  };
}

function outboxRow(transaction: Record<string, string | number>, projectId: string, region: string, traceParent: string | null): Record<string, unknown> {
  return {
    external_id: transaction.externalId, kind: transaction.kind, project_id: projectId, region,
    entry_id: transaction.entryId ?? null, milestone_id: transaction.milestoneId ?? null, revision: transaction.revision ?? null,
    work_date: transaction.workDate || null, hours_hundredths: signedHours(String(transaction.hours ?? '0.00')).toString(),
    amount_minor: parseMoney(String(transaction.amount)).toString(), currency: transaction.currency, transaction, trace_parent: traceParent,
  };
}

function signedHours(text: string): bigint {
  return text.startsWith('-') ? -parseHours(text.slice(1)) : parseHours(text);
}

function enrichedMessage(entry: TimeRecord, project: ProjectRecord, enrichment: Extract<EnrichmentOutcome, { kind: 'enriched' }>, item: TimeItem, now: Date): NatsOutboxRow {
  return {
    subject: `enriched.time.${project.region}.${project.projectId}`,
    msg_id: `enriched:${entry.entryId}:${entry.revision}`,
    payload: {
      ...entry,
      billable: enrichment.billable,
      role: enrichment.role,
      rate: enrichment.rateMinor === null ? null : formatMoney(enrichment.rateMinor),
      amount: enrichment.amountMinor === null ? null : formatMoney(enrichment.amountMinor),
      currency: enrichment.currency,
      customerId: project.customerId,
      contractId: project.contractId,
      legalEntity: project.legalEntity,
      costAmount: enrichment.costAmountMinor === null ? null : formatMoney(enrichment.costAmountMinor),
      processedAt: now.toISOString(),
      traceId: item.traceId ?? null,
    },
    headers: { 'Schema-Version': '1', ...(item.traceParent ? { traceparent: item.traceParent } : {}) },
  };
}

async function writeRevisions(em: EntityManager, rows: readonly Record<string, unknown>[]): Promise<void> {
  if (rows.length === 0) return;
  const latest = [...new Map(rows.map((r) => [`${String(r.entry_id)}:${String(r.revision)}`, r])).values()];
  await em.execute(
    `insert into entry_revision as t (entry_id, revision, project_id, region, status, stage, waiting_for, billable, role, rate_minor, amount_minor, currency,
       hours_hundredths, work_date, record, exception_code, trace_id, trace_parent, first_seen_at, approved_at, enriched_at, decided_at)
     select x.entry_id, x.revision, x.project_id, x.region, x.status, x.stage, x.waiting_for, x.billable, x.role, x.rate_minor, x.amount_minor, x.currency,
       x.hours_hundredths, x.work_date, x.record, x.exception_code, x.trace_id, x.trace_parent, x.first_seen_at, x.approved_at, x.enriched_at, x.decided_at
     from jsonb_to_recordset(?::jsonb) as x(entry_id text, revision int, project_id text, region text, status text, stage text, waiting_for text,
       billable boolean, role text, rate_minor bigint, amount_minor bigint, currency text, hours_hundredths bigint, work_date date, record jsonb,
       exception_code text, trace_id text, trace_parent text, first_seen_at timestamptz, approved_at timestamptz, enriched_at timestamptz, decided_at timestamptz)
     on conflict (entry_id, revision) do update set stage = excluded.stage, waiting_for = excluded.waiting_for, billable = excluded.billable,
       role = excluded.role, rate_minor = excluded.rate_minor, amount_minor = excluded.amount_minor, currency = excluded.currency,
       exception_code = excluded.exception_code, region = excluded.region, enriched_at = excluded.enriched_at, decided_at = excluded.decided_at,
       trace_id = coalesce(t.trace_id, excluded.trace_id), trace_parent = coalesce(t.trace_parent, excluded.trace_parent)`,
    [JSON.stringify(latest)]);
}

