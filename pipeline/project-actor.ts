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
import { formatMoney, parseHours, parseMoney } from './model/money.ts';
import type { ExceptionCode, MilestoneRecord, ProjectRecord, TimeRecord } from './model/types.ts';
import { addToCounters, exceptionRow, recordExceptions, type ExceptionRow } from './exception-records.ts';
import { enrichedAnnouncement } from './announcements.ts';
import { chargeOf, reversalOf } from './model/erp-lines.ts';
import { natsOutboxBatch, natsOutboxInsert, type NatsOutboxRow, type QueuedNatsBatch } from './nats-outbox.ts';
import type { ReferenceSnapshot } from './reference-view.ts';
import { PositionalRows, nativeQuery } from './state/native-sql.ts';
import { EntryTracing, type EntryTiming, type TurnTrace } from './entry-tracing.ts';
import type { ClaimedRow } from './erp-poster.ts';

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
  /** Payload size of the message it came in (what it weighs in a batch). */
  bytes?: number;
}

export interface MilestoneItem {
  type: 'milestone';
  milestone: MilestoneRecord;
  project?: ProjectRecord;
  region: string;
  receivedAt: Date;
  traceParent?: string | null;
  settle?: Settlement;
  bytes?: number;
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
  /** How long the ERP outbox rows a turn writes stay reserved for this instance's poster. @default 30 s */
  erpLeaseMs?: number;
}

/** An entry's billing position, as its entry_revision rows say it. */
interface EntryBillingState {
  /** Highest revision decided (not merely parked as waiting); null for a new entry. */
  latestRevision: number | null;
  chargedRevision: number | null;
  chargedHours: bigint;
  chargedAmountMinor: bigint;
  /** The charged ERP line (its erp_outbox row), so a reversal negates exactly what was billed. */
  chargedTransaction: Record<string, string | number> | null;
}

interface SeenRevision { stage: string; first_seen_at: string; amount_minor?: string | null }

function emptyCounts(): TurnCounts {
  return { charged: 0, reversed: 0, nonBillable: 0, notChargeable: 0, held: 0, waiting: 0, exceptions: 0, duplicates: 0, stale: 0, milestones: 0, deferred: 0 };
}

/** The project an item bills to: its entry's or its milestone's. */
export function projectIdOf(item: ActorItem): string {
  return item.type === 'time' ? item.entry.projectId : item.milestone.projectId;
}

/** A batch's items by project, each project's in arrival order, the projects in the order they first appear. */
export function groupByProject(items: readonly ActorItem[]): Map<string, ActorItem[]> {
  const byProject = new Map<string, ActorItem[]>();
  for (const item of items) {
    const projectId = projectIdOf(item);
    const mailbox = byProject.get(projectId);
    if (mailbox) mailbox.push(item);
    else byProject.set(projectId, [item]);
  }
  return byProject;
}

/** Everything a batch turn writes, gathered across its projects and written set-based at the end. */
class TurnWrites {
  /** `entryId:revision` of the batch's revisions that had a row before the turn (read under the project locks). */
  readonly storedRevisions: ReadonlySet<string>;
  readonly revisions: Record<string, unknown>[] = [];
  readonly reversedRevisions: { entry_id: string; revision: number }[] = [];
  readonly erpOutbox: Record<string, unknown>[] = [];
  readonly nats: NatsOutboxRow[] = [];
  readonly exceptions: ExceptionRow[] = [];
  readonly exceptionHeaders = new Map<string, Record<string, string>>();
  readonly resolvedExceptionEntries: { entry_id: string; revision: number }[] = [];
  readonly projectTotals: { project_id: string; charged_minor: string; reversed_minor: string; held_minor: string }[] = [];
  duplicates = 0;
  stale = 0;

  constructor(storedRevisions: ReadonlySet<string>) {
    this.storedRevisions = storedRevisions;
  }
}

/** What a batch turn leaves for after its commit. */
export interface BatchTurnResult {
  /** One per project in the batch, in the order the projects first appear in it. */
  turns: TurnResult[];
  /** ERP outbox rows written: the poster is woken when > 0. */
  outboxRows: number;
  /** The rows this turn wrote, reserved for this instance's poster until the lease runs out: it posts them from memory. */
  erpRows: ClaimedRow[];
  /** The enriched messages this turn queued, for the relay to publish from memory once committed. */
  enriched: QueuedNatsBatch[];
}

export class ProjectActors {
  readonly #orm: MikroORM;
  readonly #options: ProjectActorOptions;
  /** Projects with a turn in the last minute: the "active actors" gauge. */
  readonly #lastTurnAt = new Map<string, number>();
  /**
   * Projects whose project_billing row a committed turn has seen (rows are never
   * deleted): their next turns lock the row without first inserting it, a
   * statement a turn less. Forgotten whole past PROJECT_ROWS_REMEMBERED.
   */
  readonly #projectsWithRow = new Set<string>();

  constructor(orm: MikroORM, options: ProjectActorOptions) {
    this.#orm = orm;
    this.#options = options;
  }

  activeActors(withinMs = 60_000): number {
    const since = Date.now() - withinMs;
    for (const [projectId, at] of this.#lastTurnAt) if (at < since) this.#lastTurnAt.delete(projectId);
    return this.#lastTurnAt.size;
  }

  /**
   * One turn for every project with items in `items` (a regional batch), in ONE
   * transaction: each project's items are decided in arrival order against its
   * own state, exactly as its actor would alone, and everything is written with
   * one statement per table. The caller guarantees that no two turns holding the
   * same project overlap; the project_billing row locks (taken in project order,
   * so two batches can never deadlock on them) make that hold even across
   * instances during a lease handover. Messages are acked after the commit.
   */
  async turnBatch(items: readonly ActorItem[]): Promise<BatchTurnResult> {
    const byProject = groupByProject(items);
    const now = Date.now();
    const tracing = this.#options.tracing ?? EntryTracing.off;
    const traces = new Map<string, TurnTrace>();
    for (const [projectId, projectItems] of byProject) {
      this.#lastTurnAt.set(projectId, now);
      traces.set(projectId, tracing.startTurn(projectId, projectItems.length));
    }
    let result: { result: BatchTurnResult; deferred: Set<ActorItem> };
    try {
      result = await this.#orm.em.fork().transactional((em) => this.#decideBatch(em as EntityManager, byProject, traces));
    } catch (err) {
      for (const trace of traces.values()) trace.fail(err);
      throw err;
    }
    for (const trace of traces.values()) trace.end();
    if (this.#projectsWithRow.size + byProject.size > PROJECT_ROWS_REMEMBERED) this.#projectsWithRow.clear();
    for (const projectId of byProject.keys()) this.#projectsWithRow.add(projectId);
    for (const item of items) {
      if (result.deferred.has(item)) item.settle?.nak(5_000);
      else item.settle?.ack();
    }
    return result.result;
  }

  async #decideBatch(em: EntityManager, byProject: ReadonlyMap<string, readonly ActorItem[]>, traces: ReadonlyMap<string, TurnTrace>): Promise<{ result: BatchTurnResult; deferred: Set<ActorItem> }> {
    const now = this.#options.now?.() ?? new Date();
    const deferred = new Set<ActorItem>();
    const projectIds = [...byProject.keys()].sort();

    const withoutRow = projectIds.filter((projectId) => !this.#projectsWithRow.has(projectId));
    if (withoutRow.length > 0) await nativeQuery(em, `insert into project_billing (project_id) select unnest($1::text[]) on conflict do nothing`, [withoutRow]);
    const totals = new Map<string, { charged_minor: string; reversed_minor: string; held_minor: string }>();
    for (const row of await nativeQuery<{ project_id: string; charged_minor: string; reversed_minor: string; held_minor: string }>(em,
      `select project_id, charged_minor, reversed_minor, held_minor from project_billing
       where project_id = any($1::text[]) order by project_id for update`, [projectIds])) {
      totals.set(row.project_id, row);
    }

    const timeItems: TimeItem[] = [];
    for (const projectItems of byProject.values()) for (const item of projectItems) if (item.type === 'time') timeItems.push(item);
    const { entryStates, seenRevisions } = await this.#loadEntries(em, timeItems);

    const writes = new TurnWrites(new Set(seenRevisions.keys()));
    const turns: TurnResult[] = [];
    for (const [projectId, projectItems] of byProject) {
      const trace = traces.get(projectId) as TurnTrace;
      turns.push(await this.#decideProject(em, projectId, projectItems, totals.get(projectId), { entryStates, seenRevisions, writes, trace, now, deferred }));
    }
    const { erpRows, enriched } = await this.#write(em, writes);
    return { result: { turns, outboxRows: writes.erpOutbox.length, erpRows, enriched: enriched ? [enriched] : [] }, deferred };
  }

  /**
   * Every revision already recorded of the batch's entries: the dedupe record of
   * each (entryId, revision) and, derived from the same rows, each entry's
   * billing position. The charged lines are read only for entries that a newer
   * revision in this batch may reverse.
   */
  async #loadEntries(em: EntityManager, timeItems: readonly TimeItem[]): Promise<{ entryStates: Map<string, EntryBillingState>; seenRevisions: Map<string, SeenRevision> }> {
    const entryStates = new Map<string, EntryBillingState>();
    const seenRevisions = new Map<string, SeenRevision>();
    if (timeItems.length === 0) return { entryStates, seenRevisions };
    const entryIds = [...new Set(timeItems.map((i) => i.entry.entryId))];
    const rows = await nativeQuery<{ entry_id: string; revision: number; stage: string; first_seen_at: string; amount_minor: string | null; hours_hundredths: string }>(em,
      ENTRY_REVISIONS_OF_ENTRIES, [entryIds]);
    for (const row of rows) {
      seenRevisions.set(`${row.entry_id}:${row.revision}`, row);
      let state = entryStates.get(row.entry_id);
      if (!state) entryStates.set(row.entry_id, (state = { latestRevision: null, chargedRevision: null, chargedHours: 0n, chargedAmountMinor: 0n, chargedTransaction: null }));
      // A revision parked as waiting has not been decided: it does not move the entry's latest revision.
      if (row.stage !== 'waiting' && (state.latestRevision === null || row.revision > state.latestRevision)) state.latestRevision = row.revision;
      if (row.stage === 'charged') {
        state.chargedRevision = row.revision;
        state.chargedHours = BigInt(row.hours_hundredths);
        state.chargedAmountMinor = BigInt(row.amount_minor ?? 0);
      }
    }
    const reversible = new Set<string>();
    for (const item of timeItems) {
      const state = entryStates.get(item.entry.entryId);
      if (state?.chargedRevision != null && state.chargedRevision !== item.entry.revision) reversible.add(`${item.entry.entryId}:${state.chargedRevision}:charge`);
    }
    if (reversible.size > 0) {
      for (const row of await nativeQuery<{ entry_id: string; transaction: Record<string, string | number> }>(em,
        `select entry_id, transaction from erp_outbox where external_id = any($1::text[])`, [[...reversible]])) {
        const state = entryStates.get(row.entry_id);
        if (state) state.chargedTransaction = row.transaction;
      }
    }
    return { entryStates, seenRevisions };
  }

  async #decideProject(
    em: EntityManager, projectId: string, items: readonly ActorItem[], billing: { charged_minor: string; reversed_minor: string; held_minor: string } | undefined,
    batch: { entryStates: Map<string, EntryBillingState>; seenRevisions: Map<string, SeenRevision>; writes: TurnWrites; trace: TurnTrace; now: Date; deferred: Set<ActorItem> },
  ): Promise<TurnResult> {
    const { entryStates, seenRevisions, writes, trace: turnTrace, now, deferred } = batch;
    const counts = emptyCounts();
    const decisions: TurnResult['decisions'] = [];
    let chargedMinor = BigInt(billing?.charged_minor ?? 0);
    let reversedMinor = BigInt(billing?.reversed_minor ?? 0);
    let heldMinor = BigInt(billing?.held_minor ?? 0);
    const firstRevisionRow = writes.revisions.length;
    const firstOutboxRow = writes.erpOutbox.length;

    const posted = () => chargedMinor - reversedMinor;

    for (const item of items) {
      if (item.type === 'milestone') {
        const outcome = await this.#decideMilestone(em, item, now, posted());
        if (outcome.kind === 'defer') { deferred.add(item); counts.deferred++; continue; }
        if (outcome.kind === 'exception') { writes.exceptions.push(outcome.exception); counts.exceptions++; continue; }
        if (outcome.kind === 'charge') {
          writes.erpOutbox.push(outcome.outbox);
          chargedMinor += outcome.amountMinor;
          counts.milestones++;
        } else if (outcome.kind === 'held') {
          writes.exceptions.push(outcome.exception);
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
          chargedRevision: state?.chargedRevision ?? null,
          chargedHours: state?.chargedHours ?? 0n,
          chargedAmountMinor: state?.chargedAmountMinor ?? 0n,
          latestRevision: state?.latestRevision ?? null,
        },
        { revision: entry.revision, chargeable: false },
      );
      const project = item.snapshot.project;
      const region = project?.region ?? item.region;
      const firstSeenAt = seen ? new Date(seen.first_seen_at) : item.receivedAt;
      // Enrichment parsed the hours already; an entry not enriched (waiting, closed project) is parsed here.
      const hours = item.outcome.kind === 'enriched' ? item.outcome.hoursHundredths : parseHours(entry.hours);
      const baseRow = {
        entry_id: entry.entryId, revision: entry.revision, project_id: projectId, region, status: entry.status,
        hours_hundredths: hours.toString(), work_date: entry.workDate, record: entry,
        trace_id: item.traceId ?? null, trace_parent: item.traceParent ?? null,
        first_seen_at: firstSeenAt.toISOString(), approved_at: entry.approvedAt ?? null,
      };
      // A revision older than one already decided is stale: counted and ignored
      // (recorded once; a revision that was waiting is closed as stale).
      if (plan.stale) {
        if (!seen || reopenable) writes.revisions.push({ ...baseRow, stage: 'stale' });
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
          writes.revisions.push({ ...baseRow, stage: 'waiting', waiting_for: outcome.missing });
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
      let current: EntryBillingState = state ?? { latestRevision: entry.revision, chargedRevision: null, chargedHours: 0n, chargedAmountMinor: 0n, chargedTransaction: null };
      current = { ...current, latestRevision: Math.max(current.latestRevision ?? entry.revision, entry.revision) };
      if (current.chargedRevision !== null && current.chargedRevision !== entry.revision && current.chargedTransaction) {
        const reversal = reversalOf(current.chargedTransaction);
        writes.erpOutbox.push(outboxRow(reversal, projectId, region, item.traceParent ?? null));
        reversedMinor += current.chargedAmountMinor;
        writes.reversedRevisions.push({ entry_id: entry.entryId, revision: current.chargedRevision });
        counts.reversed++;
        current = { ...current, chargedRevision: null, chargedHours: 0n, chargedAmountMinor: 0n, chargedTransaction: null };
      }

      let stage: string;
      let exceptionCode: string | null = null;
      const enrichment = outcome.kind === 'enriched' ? outcome : null;
      if (failure) {
        stage = 'exception';
        exceptionCode = failure.code;
        const row = exceptionRow({ code: failure.code, recordKind: 'time', recordId: entry.entryId, revision: entry.revision, projectId, region, message: failure.reason, record: entry });
        writes.exceptions.push(row);
        if (item.traceParent) writes.exceptionHeaders.set(row.id, { traceparent: item.traceParent });
        counts.exceptions++;
      } else if (enrichment && entry.status === 'approved' && enrichment.billable && enrichment.amountMinor !== null && project) {
        if (wouldExceedCap(project.notToExceed === undefined ? null : parseMoney(project.notToExceed), posted(), enrichment.amountMinor)) {
          stage = 'held';
          exceptionCode = 'cap_exceeded';
          const row = exceptionRow({
            code: 'cap_exceeded', recordKind: 'time', recordId: entry.entryId, revision: entry.revision, projectId, region, record: entry,
            message: `charging ${formatMoney(enrichment.amountMinor)} ${enrichment.currency} for entry ${entry.entryId} revision ${entry.revision} would take project ${projectId} past its notToExceed of ${project.notToExceed} (posted so far ${formatMoney(posted())})`,
          });
          writes.exceptions.push(row);
          if (item.traceParent) writes.exceptionHeaders.set(row.id, { traceparent: item.traceParent });
          heldMinor += enrichment.amountMinor;
          counts.held++;
        } else {
          stage = 'charged';
          const transaction = chargeOf(entry, project, enrichment, hours);
          writes.erpOutbox.push(outboxRow(transaction, projectId, region, item.traceParent ?? null, { hours, amount: enrichment.amountMinor }));
          chargedMinor += enrichment.amountMinor;
          current = { ...current, chargedRevision: entry.revision, chargedHours: hours, chargedAmountMinor: enrichment.amountMinor, chargedTransaction: transaction };
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
        if (stage !== 'exception' && stage !== 'held') writes.resolvedExceptionEntries.push({ entry_id: entry.entryId, revision: entry.revision });
      }

      writes.revisions.push({
        ...baseRow, stage, waiting_for: null, exception_code: exceptionCode,
        billable: enrichment?.billable ?? null, role: enrichment?.role ?? null,
        rate_minor: enrichment?.rateMinor?.toString() ?? null, amount_minor: enrichment?.amountMinor?.toString() ?? null,
        currency: enrichment?.currency ?? project?.currency ?? null, enriched_at: enrichment ? now.toISOString() : null, decided_at: now.toISOString(),
      });
      entryStates.set(entry.entryId, current);
      seenRevisions.set(key, { stage, first_seen_at: firstSeenAt.toISOString(), amount_minor: enrichment?.amountMinor?.toString() ?? null });
      decisions.push({ entryId: entry.entryId, revision: entry.revision, stage, traceId: item.traceId });
      if (enrichment && project) {
        writes.nats.push(enrichedAnnouncement({
          entry, region: project.region, billable: enrichment.billable, role: enrichment.role, rateMinor: enrichment.rateMinor, amountMinor: enrichment.amountMinor,
          currency: enrichment.currency, customerId: project.customerId, contractId: project.contractId, legalEntity: project.legalEntity,
          costAmountMinor: enrichment.costAmountMinor, processedAt: now, traceId: item.traceId ?? null, traceParent: item.traceParent ?? null,
        }));
      }
    }

    turnTrace.decided(writes.revisions.slice(firstRevisionRow));
    writes.projectTotals.push({ project_id: projectId, charged_minor: chargedMinor.toString(), reversed_minor: reversedMinor.toString(), held_minor: heldMinor.toString() });
    writes.duplicates += counts.duplicates;
    writes.stale += counts.stale;
    return { projectId, counts, outboxRows: writes.erpOutbox.length - firstOutboxRow, decisions };
  }

  /**
   * What nearly every turn writes (its new revisions, ERP lines, announcements
   * and project totals) in one statement, the rarer writes one statement each;
   * returns the ERP outbox rows it wrote.
   */
  async #write(em: EntityManager, writes: TurnWrites): Promise<{ erpRows: ClaimedRow[]; enriched: QueuedNatsBatch | null }> {
    const { fresh, known } = splitRevisions(writes.revisions, writes.storedRevisions);
    const nats = natsOutboxBatch(writes.nats);
    // The ERP lines are queued with the lease already running: they go to this
    // instance's poster in memory and no other poster claims them meanwhile.
    const written = await nativeQuery<{ id: string; external_id: string | null }>(em, TURN_WRITES,
      [REVISION_ROWS.json(fresh), ERP_OUTBOX_ROWS.json(writes.erpOutbox), this.#options.erpLeaseMs ?? 30_000, nats?.text ?? '', nats?.count ?? 0,
        JSON.stringify(writes.projectTotals)]);
    let enriched: QueuedNatsBatch | null = null;
    const erpRows: ClaimedRow[] = [];
    const lines = new Map(writes.erpOutbox.map((row) => [row.external_id as string, row]));
    for (const { id, external_id: externalId } of written) {
      if (externalId === null) { enriched = nats && { id, messages: nats.messages }; continue; }
      const row = lines.get(externalId);
      if (!row) continue;
      erpRows.push({
        id, external_id: externalId, project_id: row.project_id as string, region: row.region as string,
        transaction: row.transaction as Record<string, unknown>, trace_parent: (row.trace_parent as string | null) ?? null, attempts: 1,
      });
    }
    if (known.length > 0) await nativeQuery(em, UPSERT_REVISIONS, [REVISION_ROWS.json(known)]);
    if (writes.reversedRevisions.length > 0) {
      await nativeQuery(em, `update entry_revision e set stage = 'reversed' from jsonb_to_recordset($1::jsonb) as x(entry_id text, revision int)
        where e.entry_id = x.entry_id and e.revision = x.revision`, [JSON.stringify(writes.reversedRevisions)]);
    }
    if (writes.resolvedExceptionEntries.length > 0) {
      await nativeQuery(em, `update billing_exception b set status = 'resolved', resolved_at = now(), resolved_by = 'pipeline'
        from jsonb_to_recordset($1::jsonb) as x(entry_id text, revision int)
        where b.entry_id = x.entry_id and b.revision = x.revision and b.status in ('open', 'replayed')`, [JSON.stringify(writes.resolvedExceptionEntries)]);
    }
    await recordExceptions(em, writes.exceptions, (row) => writes.exceptionHeaders.get(row.id) ?? null);
    await addToCounters(em, { duplicates: writes.duplicates, stale: writes.stale });
    return { erpRows, enriched };
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
    const inserted = await nativeQuery<{ milestone_id: string }>(em,
      `insert into milestone (milestone_id, project_id, amount_minor, currency, status, stage, record) values ($1, $2, $3, $4, $5, $6, $7)
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
      await nativeQuery(em, `update milestone set stage = 'held' where milestone_id = $1`, [milestone.milestoneId]);
      return { kind: 'held', amountMinor, exception: exceptionRow({ code: 'cap_exceeded', recordKind: 'milestone', recordId: milestone.milestoneId, projectId: project.projectId, region: project.region, record: milestone, message: `milestone ${milestone.milestoneId} of ${milestone.amount} would take project ${project.projectId} past its notToExceed of ${project.notToExceed}` }) };
    }
    // Keys in the order the ERP poster sends them (canonicalLine).
    const transaction = {
      amount: milestone.amount, currency: milestone.currency, customerId: project.customerId, externalId: `milestone:${milestone.milestoneId}`,
      kind: 'milestone', legalEntity: project.legalEntity, milestoneId: milestone.milestoneId, projectId: project.projectId,
      revision: milestone.revision ?? 1, workDate: now.toISOString().slice(0, 10),
    };
    return { kind: 'charge', amountMinor, outbox: outboxRow(transaction, project.projectId, project.region, item.traceParent ?? null) };
  }
}

/** How many projects a ProjectActors remembers having a project_billing row (a firm's projects fit: ~100 bytes each). */
const PROJECT_ROWS_REMEMBERED = 100_000;

/**
 * Every stored revision of the given entries, one primary-key probe per entry.
 * Written as a lateral join so the plan cannot depend on statistics: as
 * `where entry_id = any($1)`, a table never analyzed (autovacuum off, or a week
 * close outrunning auto-analyze) has the planner assume each id matches 0.5% of
 * the rows, so a thousand ids "match" the whole table and every turn scanned all
 * of entry_revision (225 ms a turn at a million entries). A lateral subquery
 * cannot become a hash join, and `offset 0` keeps it from being flattened into
 * one.
 */
export const ENTRY_REVISIONS_OF_ENTRIES = `select r.entry_id, r.revision, r.stage, r.first_seen_at, r.amount_minor, r.hours_hundredths
  from unnest($1::text[]) as k(entry_id),
  lateral (select entry_id, revision, stage, first_seen_at, amount_minor, hours_hundredths from entry_revision e where e.entry_id = k.entry_id offset 0) r`;

/** `minor`: the line's hours and amount when the caller has them as numbers (a charge it just built), rather than parsed back from its text. */
function outboxRow(transaction: Record<string, string | number>, projectId: string, region: string, traceParent: string | null, minor?: { hours: bigint; amount: bigint }): Record<string, unknown> {
  return {
    external_id: transaction.externalId, kind: transaction.kind, project_id: projectId, region,
    entry_id: transaction.entryId ?? null, milestone_id: transaction.milestoneId ?? null, revision: transaction.revision ?? null,
    work_date: transaction.workDate || null, hours_hundredths: (minor?.hours ?? signedHours(String(transaction.hours ?? '0.00'))).toString(),
    amount_minor: (minor?.amount ?? parseMoney(String(transaction.amount))).toString(), currency: transaction.currency, transaction, trace_parent: traceParent,
  };
}

function signedHours(text: string): bigint {
  return text.startsWith('-') ? -parseHours(text.slice(1)) : parseHours(text);
}

const REVISION_ROWS = new PositionalRows([
  ['entry_id', 'text'], ['revision', 'int'], ['project_id', 'text'], ['region', 'text'], ['status', 'text'], ['stage', 'text'], ['waiting_for', 'text'],
  ['billable', 'boolean'], ['role', 'text'], ['rate_minor', 'bigint'], ['amount_minor', 'bigint'], ['currency', 'text'], ['hours_hundredths', 'bigint'],
  ['work_date', 'date'], ['record', 'jsonb'], ['exception_code', 'text'], ['trace_id', 'text'], ['trace_parent', 'text'], ['first_seen_at', 'timestamptz'],
  ['approved_at', 'timestamptz'], ['enriched_at', 'timestamptz'], ['decided_at', 'timestamptz'],
]);

/**
 * A turn's revision rows: the ones it read no row of (`fresh`) are inserted
 * plainly, the others (`known`: a waiting revision decided, a replayed one)
 * upserted. `on conflict` probes the primary key for every row before the
 * insert's own probe; a row the turn read nothing of under its projects' locks
 * cannot have been written since by anyone, and if it were, the insert fails the
 * turn (retried project by project, which then reads it) instead of passing over it.
 */
function splitRevisions(rows: readonly Record<string, unknown>[], stored: ReadonlySet<string>): { fresh: Record<string, unknown>[]; known: Record<string, unknown>[] } {
  const fresh: Record<string, unknown>[] = [];
  const known: Record<string, unknown>[] = [];
  for (const [key, row] of new Map(rows.map((r) => [`${String(r.entry_id)}:${String(r.revision)}`, r]))) (stored.has(key) ? known : fresh).push(row);
  return { fresh, known };
}

const UPSERT_REVISIONS = `insert into entry_revision as t (${REVISION_ROWS.columns})
  select ${REVISION_ROWS.select} from jsonb_array_elements($1::jsonb) as x
  on conflict (entry_id, revision) do update set stage = excluded.stage, waiting_for = excluded.waiting_for, billable = excluded.billable,
    role = excluded.role, rate_minor = excluded.rate_minor, amount_minor = excluded.amount_minor, currency = excluded.currency,
    exception_code = excluded.exception_code, region = excluded.region, enriched_at = excluded.enriched_at, decided_at = excluded.decided_at,
    trace_id = coalesce(t.trace_id, excluded.trace_id), trace_parent = coalesce(t.trace_parent, excluded.trace_parent)`;

const ERP_OUTBOX_ROWS = new PositionalRows([
  ['external_id', 'text'], ['kind', 'text'], ['project_id', 'text'], ['region', 'text'], ['entry_id', 'text'], ['milestone_id', 'text'], ['revision', 'int'],
  ['work_date', 'date'], ['hours_hundredths', 'bigint'], ['amount_minor', 'bigint'], ['currency', 'text'], ['transaction', 'jsonb'], ['trace_parent', 'text'],
]);

/**
 * A turn's usual writes as one statement (each `with` part runs once, whatever
 * the select reads): $1 the new revisions, $2 the ERP lines (each also queued in
 * erp_pending, its lease $3 ms), $4/$5 the announcements' outbox row, $6 the
 * projects' totals. One row per ERP line written (a line already there is not),
 * then the outbox row's id with a null external_id.
 */
const TURN_WRITES = `with revisions as (
    insert into entry_revision (${REVISION_ROWS.columns}) select ${REVISION_ROWS.select} from jsonb_array_elements($1::jsonb) as x),
  lines as (
    insert into erp_outbox (${ERP_OUTBOX_ROWS.columns}, attempts) select ${ERP_OUTBOX_ROWS.select}, 1 from jsonb_array_elements($2::jsonb) as x
    on conflict (external_id) do nothing returning id, external_id),
  queued as (insert into erp_pending (id, next_attempt_at) select id, now() + ($3::int * interval '1 millisecond') from lines),
  announced as (${natsOutboxInsert('$4', '$5')}),
  totals as (
    update project_billing p set charged_minor = x.charged_minor, reversed_minor = x.reversed_minor, held_minor = x.held_minor, turns = p.turns + 1, updated_at = now()
    from jsonb_to_recordset($6::jsonb) as x(project_id text, charged_minor bigint, reversed_minor bigint, held_minor bigint) where p.project_id = x.project_id)
  select id, external_id from lines
  union all select id, null from announced`;
