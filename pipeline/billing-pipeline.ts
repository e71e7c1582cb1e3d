// The topology of billstream's stream processing:
//
//   ingest.{consultant,project,assignment,ratecard}.>  → decode → batch → store (PG) → view → ack → release waiting entries
//   ingest.time.>  → decode → quarantine invalid → dedupe → enrich ─┐
//   released / swept waiting entries ────────────────→ enrich ─┤
//   ingest.milestone.> → decode → quarantine invalid ──────────┴→ batch by region (count, bytes, time)
//                                                                 → regional lane turn: every project's actor in the
//                                                                   batch, one PG transaction → ack
//                                                                     └→ ERP outbox → ErpPoster → ERP
//                                                                     └→ NATS outbox → NatsRelay → enriched.*, exceptions.*, billing.posted.*
//
// Sources arrive as IncomingMessage observables (the NATS connector adapts JsMsg);
// nothing here talks to NATS directly, so the whole chain runs in tests on real
// JetStream and in marble tests alike.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { EMPTY, Subject, concatMap, from, map, merge, mergeMap, share, takeUntil, type Observable, type Subscription } from 'rxjs';
import { batchByCountOrTime } from '../operators/batchByCountOrTime.ts';
import { batchByRegion, type RegionWindow } from '../operators/batchByRegion.ts';
import { decodeWith } from '../operators/decodeWith.ts';
import { dedupeByKey } from '../operators/dedupeByKey.ts';
import { enrichWith } from '../operators/enrichWith.ts';
import { serialPerKey } from '../operators/serialPerKey.ts';
import { splitIntoLanes } from '../operators/splitIntoLanes.ts';
import { tapRejected } from '../operators/tapRejected.ts';
import { evaluateEntry } from './model/billing-rules.ts';
import { decodeRecord, recordId } from './model/records.ts';
import type { AssignmentRecord, FieldError, MilestoneRecord, RecordKind, TimeRecord } from './model/types.ts';
import { addToCounters, exceptionRow, recordExceptions } from './exception-records.ts';
import type { QueuedNatsBatch } from './nats-outbox.ts';
import { ProjectActors, groupByProject, projectIdOf, type ActorItem, type BatchTurnResult, type MilestoneItem, type Settlement, type TimeItem, type TurnResult } from './project-actor.ts';
import { REFERENCE_KINDS, affectedProjects, applyToView, storeReferences, type ReferenceItem, type ReferenceKind } from './reference-store.ts';
import type { ReferenceView } from './reference-view.ts';
import { nativeQuery } from './state/native-sql.ts';
import { EntryTracing, type EntryTiming } from './entry-tracing.ts';
import type { ClaimedRow } from './erp-poster.ts';
import { laneOfProject } from './partitioning.ts';

/** One message from an ingest subject, as the NATS connector hands it over. */
export interface IncomingMessage extends Settlement {
  subject: string;
  data: Uint8Array;
  header(name: string): string | undefined;
  /** When the broker stored it: an entry's wait for reference data counts from here. */
  publishedAt: Date;
  /** True when the broker delivers it again (after a nak, an ack timeout or a restart). */
  redelivered: boolean;
  streamSequence: number;
}

export interface PipelineSources {
  reference: Observable<IncomingMessage>;
  time: Observable<IncomingMessage>;
  milestone: Observable<IncomingMessage>;
}

export interface BillingPipelineOptions {
  referenceGraceMs: number;
  /** How often entries past their grace are swept into exceptions. @default min(5 s, grace / 2) */
  sweepIntervalMs?: number;
  /**
   * How entries are batched per region before their actors' turn: a region's
   * batch leaves at `maxCount` items, at `maxBytes` of message payload, or
   * `maxWaitMs` after its first item, whichever comes first; `regions` overrides
   * any of the three for a region. @default { maxCount: 1000, maxBytes: 1 MiB, maxWaitMs: 20 }
   */
  batching?: RegionBatching;
  /** Lane batch turns (transactions) running at once; one lane's batches never run concurrently. @default 4 */
  maxConcurrentBatches?: number;
  /**
   * Lanes per region: a region's projects are spread over this many lanes by a
   * stable hash of the project id, and each region batch is split into its
   * lanes' parts. One lane's turns run one at a time, so each project's items
   * stay in arrival order; a busy region's lanes run side by side. @default 2
   */
  lanesPerRegion?: number;
  /**
   * Entries one turn may take: a busy region's batches that queued while its
   * previous turn ran go into its next turn together, up to this many entries
   * (under a backlog, few large transactions; at low load, small quick ones).
   * @default 4 × batching.maxCount
   */
  maxTurnEntries?: number;
  /**
   * Awaited after a batch has committed, before its region's next turn: the ERP
   * poster's and the NATS relay's admission, so a poster behind (a rate-limited
   * or slow ERP) or a relay behind (a busy nats-server) slows the consumer
   * instead of letting what waits in memory grow without bound.
   */
  admit?: () => Promise<void>;
  /** Distinct (entryId, revision) keys the in-memory dedupe remembers. @default 200000 */
  dedupeCapacity?: number;
  onTurn?: (result: TurnResult) => void;
  onError?: (err: unknown, context: string) => void;
  /**
   * The pipeline's stream ended on an error (a defect, since every expected
   * failure is caught, naked or quarantined): nothing more is consumed. Its
   * unacked messages come back to whoever consumes next, so the process should
   * end and be started again rather than hold its consumers (and, in cluster
   * mode, its partition leases) while doing nothing.
   */
  onFailed?: (err: unknown) => void;
  /**
   * Called after a commit that wrote outbox rows, with the ERP rows it wrote
   * (reserved for this instance's poster) and its enriched messages' outbox
   * batches (for the relay to publish from memory).
   */
  onOutbox?: (erpRows: readonly ClaimedRow[], enriched: readonly QueuedNatsBatch[]) => void;
  /** Notes each stage's timing for the entry's trace. @default EntryTracing.off */
  tracing?: EntryTracing;
}

/** Every region's batch window, and per region any of its fields overridden (batchByRegion's own window type). */
export interface RegionBatching extends Required<RegionWindow> { regions?: Readonly<Record<string, RegionWindow>> }

export function defaultRegionBatching(): RegionBatching {
  return { maxCount: 1000, maxBytes: 1024 * 1024, maxWaitMs: 20 };
}

/** The region whose batches an item goes in: its project's own once known, else the subject's. */
function regionOf(item: ActorItem): string {
  return item.type === 'time' ? (item.snapshot.project?.region ?? item.region) : (item.project?.region ?? item.region);
}

/** What an item weighs in a batch: its message's payload, or an estimate for a released entry that has none. */
function bytesOf(item: ActorItem): number {
  return item.bytes ?? 512;
}

interface SubjectRoute { kind: RecordKind; region: string; key: string }

function routeOf(subject: string): SubjectRoute | null {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'ingest') return null;
  return { kind: parts[1] as RecordKind, region: parts[2] as string, key: parts[3] as string };
}

interface Quarantined { message: IncomingMessage; kind: string; region: string; errors: FieldError[]; raw: string; record: unknown; traceParent?: string | null }

const decoder = new TextDecoder();

function traceIdOf(traceParent: string | undefined | null): string | null {
  const parts = traceParent?.split('-');
  return parts && parts.length === 4 && parts[1]?.length === 32 ? parts[1] : null;
}

export class BillingPipeline {
  readonly #orm: MikroORM;
  readonly #view: ReferenceView;
  readonly #actors: ProjectActors;
  readonly #options: Required<Omit<BillingPipelineOptions, 'onTurn' | 'onError' | 'onFailed' | 'onOutbox' | 'admit'>> & BillingPipelineOptions;
  readonly #released = new Subject<TimeItem>();
  readonly #quarantine = new Subject<Quarantined>();
  readonly #stop = new Subject<void>();
  #subscription: Subscription | null = null;
  #sweeper: NodeJS.Timeout | null = null;
  #drained: Promise<void> = Promise.resolve();

  constructor(orm: MikroORM, view: ReferenceView, actors: ProjectActors, options: BillingPipelineOptions) {
    this.#orm = orm;
    this.#view = view;
    this.#actors = actors;
    this.#options = {
      sweepIntervalMs: Math.max(200, Math.min(5_000, Math.floor(options.referenceGraceMs / 2))),
      batching: defaultRegionBatching(),
      maxConcurrentBatches: 4,
      lanesPerRegion: 2,
      maxTurnEntries: 4 * (options.batching ?? defaultRegionBatching()).maxCount,
      dedupeCapacity: 200_000,
      tracing: EntryTracing.off,
      ...options,
    };
  }

  get view(): ReferenceView {
    return this.#view;
  }

  run(sources: PipelineSources): void {
    const stop = this.#stop;
    const reference$ = sources.reference.pipe(takeUntil(stop), batchByCountOrTime({ maxCount: 1000, maxWaitMs: 20 }), concatMap((batch) => from(this.#storeReferenceBatch(batch))));
    const quarantine$ = this.#quarantine.pipe(batchByCountOrTime({ maxCount: 500, maxWaitMs: 20 }), concatMap((batch) => from(this.#storeQuarantined(batch))));

    const time$ = sources.time.pipe(
      takeUntil(stop),
      decodeWith((message: IncomingMessage) => this.#decodeTime(message), (err, message) => this.#decodeFailure(message, err)),
      tapRejected((d): d is Extract<typeof d, { ok: false }> => !d.ok, (d) => this.#quarantine.next(d.error)),
      map((d) => d.value),
      // The in-memory filter drops a copy of an entry revision published twice.
      // A redelivery (after a nak, a timeout or a restart) is never dropped here:
      // its first copy may have failed, and the ledger's key decides instead.
      dedupeByKey((m) => (m.message.redelivered ? `${m.key}#${m.message.streamSequence}#${Math.random()}` : m.key), {
        capacity: this.#options.dedupeCapacity,
        onDuplicate: (m) => { m.message.ack(); this.#duplicatesInMemory++; },
      }),
      map((m): TimeItem => {
        // Read once: each read of a NATS header looks through all of them.
        const traceParent = m.message.header('traceparent') ?? null;
        return {
          type: 'time', entry: m.record, outcome: { kind: 'waiting', missing: 'project', code: 'unknown_project', reason: '' }, snapshot: {},
          region: m.region, receivedAt: m.message.publishedAt, traceParent, traceId: traceIdOf(traceParent),
          settle: m.message, bytes: m.message.data.length, timing: this.#options.tracing.deduped(m.timing),
        };
      }),
    );
    const entries$ = merge(time$, this.#released.pipe(takeUntil(stop))).pipe(
      enrichWith(() => this.#view, (item: TimeItem, view): TimeItem => {
        const startedAt = this.#options.tracing.now();
        const snapshot = view.snapshotFor(item.entry.projectId, item.entry.consultantId);
        const outcome = evaluateEntry(item.entry, snapshot);
        const timing = this.#options.tracing.enriched(item.timing, startedAt, outcome.kind === 'enriched' ? snapshot.assignmentSpans.get(outcome.assignment.assignmentId) : null);
        return { ...item, snapshot: { project: snapshot.project, consultant: snapshot.consultant }, outcome, timing };
      }),
    );
    const milestones$ = sources.milestone.pipe(
      takeUntil(stop),
      decodeWith((message: IncomingMessage) => this.#decode<MilestoneRecord>('milestone', message), (err, message) => this.#decodeFailure(message, err)),
      tapRejected((d): d is Extract<typeof d, { ok: false }> => !d.ok, (d) => this.#quarantine.next(d.error)),
      map((d): MilestoneItem => ({
        type: 'milestone', milestone: d.value.record, project: this.#view.project(d.value.record.projectId), region: d.value.region,
        receivedAt: d.value.message.publishedAt, traceParent: d.value.message.header('traceparent') ?? null, settle: d.value.message, bytes: d.value.message.data.length,
      })),
    );
    // Batches per region, each region on its own count, bytes and clock, each
    // batch split into the region's lanes (its projects spread by a stable hash);
    // the lanes take turns for the transaction slots (serialPerKey's line is
    // first come, first served, and a busy lane goes to its back after each
    // turn), so a spike in one region never holds back another's batch. One
    // lane's batches run one at a time, which keeps each project's items in
    // arrival order; with one lane per region, the region whose share is half the
    // week was a single queue the whole drain waited on.
    const { regions, ...window } = this.#options.batching;
    const lanes = this.#options.lanesPerRegion;
    const turns$ = merge(entries$, milestones$).pipe(
      batchByRegion(regionOf, { ...window, sizeOf: bytesOf, ...(regions ? { regions } : {}) }),
      splitIntoLanes(lanes, (item: ActorItem) => laneOfProject(projectIdOf(item), lanes)),
      serialPerKey((batch) => batch.lane, (_lane, batches) => this.#turn(batches.flatMap((b) => b.items)), {
        maxConcurrentKeys: this.#options.maxConcurrentBatches,
        maxBatch: Number.MAX_SAFE_INTEGER,
        weightOf: (batch) => batch.items.length,
        maxWeight: this.#options.maxTurnEntries,
      }),
    );

    const all$ = merge(reference$, quarantine$, turns$).pipe(share());
    this.#drained = new Promise<void>((resolve) => {
      this.#subscription = all$.subscribe({
        error: (err: unknown) => { this.#options.onError?.(err, 'pipeline'); this.#options.onFailed?.(err); resolve(); },
        complete: () => resolve(),
      });
    });
    this.#sweeper = setInterval(() => { void this.sweepExpired().catch((err: unknown) => this.#options.onError?.(err, 'sweep')); }, this.#options.sweepIntervalMs);
    // Entries left waiting by an earlier run resume at once.
    void this.releaseWaiting(null).catch((err: unknown) => this.#options.onError?.(err, 'release'));
  }

  /** Cluster mode: whether this instance's actors own a project (waiting entries of others are left to them). */
  ownsProject: ((projectId: string) => boolean) | null = null;

  #duplicatesInMemory = 0;
  get duplicatesInMemory(): number {
    return this.#duplicatesInMemory;
  }

  /** Graceful stop: stop taking messages, let turns in flight commit and ack, then return. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#stop.next();
    this.#quarantine.complete();
    this.#released.complete();
    // The bound's timer is cleared once the turns have drained: left running, it
    // kept a stopped `billstream start` process alive for the rest of the bound.
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([this.#drained, new Promise((r) => { bound = setTimeout(r, timeoutMs); })]);
    clearTimeout(bound);
    this.#subscription?.unsubscribe();
  }

  #decode<T>(kind: RecordKind, message: IncomingMessage):
    { ok: true; value: { record: T; region: string; key: string; message: IncomingMessage } } | { ok: false; error: Quarantined } {
    const route = routeOf(message.subject);
    const raw = decoder.decode(message.data);
    if (!route || route.kind !== kind) {
      return { ok: false, error: { message, kind, region: route?.region ?? 'unrouted', raw, record: null, errors: [{ field: '(subject)', reason: `${message.subject} is not ingest.${kind}.<region>.<key>` }] } };
    }
    const result = decodeRecord(kind, raw);
    if (!result.ok) return { ok: false, error: { message, kind, region: route.region, raw, record: safeJson(raw), errors: result.errors } };
    const record = result.record as unknown as T;
    return { ok: true, value: { record, region: route.region, key: `${recordId(kind, result.record as never)}:${(record as { revision?: number }).revision ?? 1}`, message } };
  }

  /** Decodes a time message; with tracing on, notes when it arrived and was decoded (or traces why it is invalid). */
  #decodeTime(message: IncomingMessage):
    { ok: true; value: { record: TimeRecord; region: string; key: string; message: IncomingMessage; timing?: EntryTiming } } | { ok: false; error: Quarantined } {
    const tracing = this.#options.tracing;
    if (!tracing.enabled) return this.#decode<TimeRecord>('time', message);
    const receivedAt = tracing.now();
    const decoded = this.#decode<TimeRecord>('time', message);
    if (!decoded.ok) return { ok: false, error: { ...decoded.error, traceParent: tracing.invalid(message, receivedAt, 'time', decoded.error.errors) } };
    return { ok: true, value: { ...decoded.value, timing: tracing.received(message, receivedAt) } };
  }

  #decodeFailure(message: IncomingMessage, err: unknown): Quarantined {
    const raw = decoder.decode(message.data);
    return { message, kind: routeOf(message.subject)?.kind ?? 'unknown', region: routeOf(message.subject)?.region ?? 'unrouted', raw, record: safeJson(raw), errors: [{ field: '(record)', reason: `could not be decoded: ${err instanceof Error ? err.message : String(err)}` }] };
  }

  async #storeQuarantined(batch: Quarantined[]): Promise<void> {
    try {
      const traceParents = new Map<string, string>();
      await this.#orm.em.fork().transactional(async (em) => {
        await recordExceptions(em as EntityManager, batch.map((q) => {
          const record = (q.record && typeof q.record === 'object' ? q.record : {}) as Record<string, unknown>;
          const id = typeof record.entryId === 'string' ? record.entryId : typeof record.milestoneId === 'string' ? record.milestoneId : null;
          const row = exceptionRow({
            code: 'invalid_record', recordKind: q.kind, recordId: id, revision: typeof record.revision === 'number' ? record.revision : null,
            projectId: typeof record.projectId === 'string' ? record.projectId : null, region: q.region, errors: q.errors,
            record: q.record ?? null, raw: q.record ? null : q.raw,
            message: `${q.kind} record on ${q.message.subject} is invalid: ${q.errors.map((e) => `${e.field} ${e.reason}`).join('; ')}`,
            discriminator: `${q.message.subject}#${q.raw}`,
          });
          const traceParent = q.traceParent ?? q.message.header('traceparent');
          if (traceParent) traceParents.set(row.id, traceParent);
          return row;
        }), (row) => { const tp = traceParents.get(row.id); return tp ? { traceparent: tp } : null; });
      });
      for (const q of batch) q.message.ack();
      this.#options.onOutbox?.([], []);
    } catch (err) {
      for (const q of batch) q.message.nak(2_000);
      this.#options.onError?.(err, 'quarantine');
    }
  }

  async #storeReferenceBatch(batch: IncomingMessage[]): Promise<void> {
    const valid: { item: ReferenceItem; message: IncomingMessage }[] = [];
    // Each assignment is recorded by a span of its own: entries link to it.
    const recording = this.#options.tracing.startAssignments();
    for (const message of batch) {
      const route = routeOf(message.subject);
      const kind = route?.kind as ReferenceKind | undefined;
      if (!route || !kind || !REFERENCE_KINDS.includes(kind)) {
        this.#quarantine.next({ message, kind: route?.kind ?? 'unknown', region: route?.region ?? 'unrouted', raw: decoder.decode(message.data), record: null, errors: [{ field: '(subject)', reason: `${message.subject} is not a reference subject` }] });
        continue;
      }
      const decoded = this.#decode<never>(kind, message);
      if (!decoded.ok) { this.#quarantine.next(decoded.error); continue; }
      const spanContext = kind === 'assignment' && recording ? recording.record(decoded.value.record as AssignmentRecord, message) : (message.header('traceparent') ?? null);
      valid.push({ item: { kind, record: decoded.value.record, spanContext }, message });
    }
    if (valid.length === 0) return;
    try {
      const stored = await this.#orm.em.fork().transactional(async (em) => {
        const result = await storeReferences(em as EntityManager, valid.map((v) => v.item));
        await addToCounters(em as EntityManager, { stale_reference: result.stale.length });
        return result;
      });
      applyToView(this.#view, stored.applied);
      recording?.end(new Set(stored.stale.filter((i) => i.kind === 'assignment').map((i) => (i.record as AssignmentRecord).assignmentId)));
      for (const v of valid) v.message.ack();
      const projects = affectedProjects(this.#view, stored.applied);
      const consultants = stored.applied.filter((i) => i.kind === 'consultant');
      if (projects.size > 0 || consultants.length > 0) {
        await this.releaseWaiting(consultants.length > 0 ? null : [...projects]);
      }
    } catch (err) {
      recording?.fail(err);
      for (const v of valid) v.message.nak(2_000);
      this.#options.onError?.(err, 'reference');
    }
  }

  async #turn(items: ActorItem[]): Promise<BatchTurnResult | null> {
    const result = await this.#decide(items);
    if (result === null) return null;
    this.#recheckWaiting(result.turns, items);
    if (result.outboxRows > 0 || result.turns.some((t) => t.decisions.length > 0)) this.#options.onOutbox?.(result.erpRows, result.enriched);
    for (const turn of result.turns) this.#options.onTurn?.(turn);
    await this.#options.admit?.();
    return result;
  }

  /**
   * One transaction for the batch; if it fails, one per project, so a project
   * whose turn keeps failing (or a deadlock with another instance during a
   * handover) holds back only its own entries, not its whole region's.
   */
  async #decide(items: ActorItem[]): Promise<BatchTurnResult | null> {
    try {
      return await this.#actors.turnBatch(items);
    } catch (err) {
      const byProject = groupByProject(items);
      if (byProject.size <= 1) {
        this.#nak(items, err, `turn of project ${[...byProject.keys()].join('')}`);
        return null;
      }
      this.#options.onError?.(err, `batch turn of ${items.length} items in ${byProject.size} projects (deciding them project by project)`);
      const merged: BatchTurnResult = { turns: [], outboxRows: 0, erpRows: [], enriched: [] };
      for (const [projectId, projectItems] of byProject) {
        try {
          const one = await this.#actors.turnBatch(projectItems);
          merged.turns.push(...one.turns);
          merged.outboxRows += one.outboxRows;
          merged.erpRows.push(...one.erpRows);
          merged.enriched.push(...one.enriched);
        } catch (projectErr) {
          this.#nak(projectItems, projectErr, `turn of project ${projectId}`);
        }
      }
      return merged;
    }
  }

  /** Nothing of the turn committed: every message comes back later. Released
   *  entries have no message; they are still stored as waiting and the sweep finds them. */
  #nak(items: readonly ActorItem[], err: unknown, context: string): void {
    for (const item of items) item.settle?.nak(2_000);
    this.#options.onError?.(err, context);
  }

  /**
   * Closes the race between a turn and a reference batch: the turn evaluated its
   * entry before the batch reached the view, and committed it as waiting after the
   * batch's release had looked for waiting entries. Checking the view again after
   * the commit sees the batch whenever the release did not see the entry, so no
   * entry waits for data that is already here.
   */
  #recheckWaiting(turns: readonly TurnResult[], items: readonly ActorItem[]): void {
    const waiting = new Set<string>();
    for (const turn of turns) for (const d of turn.decisions) if (d.stage === 'waiting') waiting.add(`${d.entryId}:${d.revision}`);
    if (waiting.size === 0) return;
    for (const item of items) {
      if (item.type !== 'time' || !waiting.has(`${item.entry.entryId}:${item.entry.revision}`)) continue;
      if (evaluateEntry(item.entry, this.#view.snapshotFor(item.entry.projectId, item.entry.consultantId)).kind === 'waiting') continue;
      waiting.delete(`${item.entry.entryId}:${item.entry.revision}`);
      this.#released.next({ ...item, reevaluate: true, settle: undefined });
    }
  }

  /** Re-evaluates waiting entries (of the given projects, or all) against the current view. */
  async releaseWaiting(projectIds: string[] | null, onlyExpired = false): Promise<number> {
    if (projectIds !== null && projectIds.length === 0) return 0;
    const clauses = ["stage = 'waiting'"];
    const params: unknown[] = [];
    if (projectIds) { params.push(projectIds); clauses.push(`project_id = any($${params.length}::text[])`); }
    if (onlyExpired) { params.push(this.#options.referenceGraceMs); clauses.push(`first_seen_at <= now() - ($${params.length}::int * interval '1 millisecond')`); }
    const rows = await nativeQuery<{ record: TimeRecord; region: string; first_seen_at: string; trace_parent: string | null; trace_id: string | null }>(this.#orm.em.fork() as EntityManager,
      `select record, region, first_seen_at, trace_parent, trace_id from entry_revision where ${clauses.join(' and ')} order by first_seen_at limit 20000`, params);
    for (const row of rows) {
      // In cluster mode another instance's actor owns this project: it releases its own.
      if (this.ownsProject && !this.ownsProject(row.record.projectId)) continue;
      this.#released.next({
        type: 'time', entry: row.record, outcome: { kind: 'waiting', missing: 'project', code: 'unknown_project', reason: '' }, snapshot: {},
        region: row.region, receivedAt: new Date(row.first_seen_at), traceParent: row.trace_parent, traceId: row.trace_id, reevaluate: true,
      });
    }
    return rows.length;
  }

  /** Entries whose grace has run out go through their actor once more, which files their exception. */
  sweepExpired(): Promise<number> {
    return this.releaseWaiting(null, true);
  }

  /** Re-evaluates one stored revision (an exception replay from the workbench). */
  async reevaluate(entryId: string, revision: number): Promise<boolean> {
    const [row] = await this.#orm.em.fork().execute<{ record: TimeRecord; region: string; first_seen_at: string; trace_parent: string | null; trace_id: string | null }[]>(
      `select record, region, first_seen_at, trace_parent, trace_id from entry_revision where entry_id = ? and revision = ?`, [entryId, revision]);
    if (!row) return false;
    this.#released.next({
      type: 'time', entry: row.record, outcome: { kind: 'waiting', missing: 'project', code: 'unknown_project', reason: '' }, snapshot: {},
      region: row.region, receivedAt: new Date(), traceParent: row.trace_parent, traceId: row.trace_id, reevaluate: true,
    });
    return true;
  }
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return null;
  }
}

export { EMPTY, mergeMap };
