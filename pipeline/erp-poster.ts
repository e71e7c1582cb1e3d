// Posts the ERP outbox. Every row is reserved with a lease (so several
// instances, or a restarted one, never post the same row at the same moment),
// posted in batches with an Idempotency-Key derived from the batch, then marked
// posted and announced on billing.posted.* in one transaction. The ERP never
// makes two documents for one externalId, so a crash anywhere in between only
// repeats a post that answers `duplicate` with the same documentId.
//
// Rows a turn has just committed arrive in memory (`submit`), already reserved:
// the turn wrote them with the lease running. Only what no one holds in memory
// is claimed from the ledger (a crashed instance's rows once their lease has
// run out, posts waiting out a backoff, lines requeued from the workbench), by a
// sweep when there is nothing in memory to post. Claiming every batch from the
// table instead rewrote each row once more and had every claim wade through the
// dead versions those rewrites left at the head of the pending index.
import { createHash } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { exceptionRow, recordExceptions } from './exception-records.ts';
import { postedAnnouncement, type PostedFacts } from './announcements.ts';
import { natsOutboxBatch, natsOutboxInsert, type QueuedNatsBatch } from './nats-outbox.ts';
import { EntryTracing } from './entry-tracing.ts';
import { nativeQuery } from './state/native-sql.ts';
import { Admission } from './admission.ts';

export interface ErpLineError { externalId: string; code: string; message: string }
export interface ErpPostedLine { externalId: string; documentId: string; status: string }

/** What the poster needs of an ERP connector; ops wires the cloud ERP client in. */
export interface ErpPort {
  postTransactions(transactions: Record<string, unknown>[], idempotencyKey: string): Promise<ErpPostedLine[]>;
}

/** Recognises the ERP's 422 answer: its per-line errors become exceptions. */
export type RejectionReader = (err: unknown) => ErpLineError[] | null;

export interface ErpPosterOptions {
  /** @default 200 */
  batchSize?: number;
  /**
   * How long a claimed batch is reserved for its poster. Past it, another poster
   * may take the batch; if the first is still alive, both post and the ERP's
   * per-externalId idempotency keeps one document. @default 30 s
   */
  leaseMs?: number;
  /** Parallel posting loops. @default 4 */
  concurrency?: number;
  /**
   * Lines queued by this instance and not yet settled above which `admit()`
   * waits: the actors' batches then stop committing, their messages stay
   * unacked, and the consumer stops pulling. @default 20000
   */
  maxPending?: number;
  /**
   * Sleep between polls when the outbox is empty (a wake() cuts it short). The
   * ledger itself is swept for lines nobody holds (their lease or backoff ran
   * out) once a tenth of the lease has passed since the last sweep, and never
   * more often than this. @default 500 ms
   */
  idleMs?: number;
  /** After the posted lines' transaction committed, with their billing.posted.* announcements' outbox batch (for the relay to publish from memory). */
  onPosted?: (lines: PostedFacts[], announcements: QueuedNatsBatch | null) => void;
  onError?: (err: unknown) => void;
  /** Traces each post (a batch span linked to its entries, an erp.posted span in each entry's trace). @default EntryTracing.off */
  tracing?: EntryTracing;
}

/** An outbox row reserved for this poster: handed over by a turn, or claimed from the ledger. */
export interface ClaimedRow {
  id: string;
  external_id: string;
  project_id: string;
  region: string;
  transaction: Record<string, unknown>;
  trace_parent: string | null;
  attempts: number;
}

export class ErpPoster {
  readonly #orm: MikroORM;
  readonly #erp: ErpPort;
  readonly #rejection: RejectionReader;
  readonly #options: Required<Omit<ErpPosterOptions, 'onPosted' | 'onError' | 'tracing'>> & Pick<ErpPosterOptions, 'onPosted' | 'onError'>;
  readonly #tracing: EntryTracing;
  #running = false;
  #loops: Promise<void>[] = [];
  #wakers = new Set<() => void>();
  /** Lines this instance's turns handed over that are in memory: queued, or in a post. */
  #inMemory = 0;
  /**
   * This instance's lines that went back to the ledger after a failed post: still
   * unposted, so still counted against `maxPending` until a sweep (this
   * instance's or another's) settles them.
   */
  #released = new Set<string>();
  /** Committed rows handed over by turns, in commit order, not yet taken by a loop. */
  #queue: ClaimedRow[] = [];
  #sweeping = false;
  #sweepRequested = true;
  #lastSweepAt = 0;
  /** Turns wait here while more than `maxPending` lines are unsettled (never while stopped). */
  readonly #admission = new Admission(() => !this.#running || this.pending <= this.#options.maxPending);

  constructor(orm: MikroORM, erp: ErpPort, rejection: RejectionReader, options: ErpPosterOptions = {}) {
    this.#orm = orm;
    this.#erp = erp;
    this.#rejection = rejection;
    this.#options = { batchSize: 200, leaseMs: 30_000, concurrency: 4, idleMs: 500, maxPending: 20_000, ...options };
    this.#tracing = options.tracing ?? EntryTracing.off;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loops = Array.from({ length: this.#options.concurrency }, () => this.#loop());
  }

  /** Stops claiming new batches and waits for the ones in flight to finish. */
  async stop(): Promise<void> {
    this.#running = false;
    this.wake();
    this.#admission.recheck();
    await Promise.all(this.#loops);
  }

  /**
   * Rows a turn has just committed (written with their lease running): posted
   * from memory, in order, without a claim. They count against `maxPending`
   * until posted or rejected.
   */
  submit(rows: readonly ClaimedRow[]): void {
    if (rows.length === 0) return;
    for (const row of rows) this.#queue.push(row);
    this.#inMemory += rows.length;
    this.#wakeLoops();
  }

  /** This instance's lines not settled yet (posted or rejected), in memory or back in the ledger. */
  get pending(): number {
    return this.#inMemory + this.#released.size;
  }

  /** Resolves once the lines waiting for this poster are at most `maxPending` (at once while stopped). */
  admit(): Promise<void> {
    return this.#admission.wait();
  }

  /** A post of rows ended: memory's rows leave memory; settled ones leave the released set, unsettled ones of memory join it. */
  #settled(rows: readonly ClaimedRow[], fromMemory: boolean, settledIds: ReadonlySet<string>): void {
    if (fromMemory) this.#inMemory = Math.max(0, this.#inMemory - rows.length);
    for (const row of rows) {
      if (settledIds.has(row.id)) this.#released.delete(row.id);
      else if (fromMemory) this.#released.add(row.id);
    }
    this.#admission.recheck();
  }

  /** Released lines another instance has settled meanwhile stop counting. */
  async #forgetSettledElsewhere(): Promise<void> {
    if (this.#released.size === 0) return;
    const ids = [...this.#released];
    const still = await nativeQuery<{ id: string }>(this.#orm.em.fork() as EntityManager,
      `select id::text as id from erp_pending where id = any($1::bigint[])`, [ids]);
    const pending = new Set(still.map((r) => r.id));
    for (const id of ids) if (!pending.has(id)) this.#released.delete(id);
    this.#admission.recheck();
  }

  /** Something may wait in the ledger (a requeued line, a replay): sweep it soon. */
  wake(): void {
    this.#sweepRequested = true;
    this.#wakeLoops();
  }

  #wakeLoops(): void {
    for (const w of this.#wakers) w();
    this.#wakers.clear();
  }

  async #loop(): Promise<void> {
    // Stopping, a loop still posts what is held in memory (a graceful stop flushes
    // its batches), unless a post fails: the ledger then keeps those rows, and
    // they are posted once their lease runs out.
    while (this.#running || this.#queue.length > 0) {
      let posted = 0;
      try {
        const batch = this.#queue.splice(0, this.#options.batchSize);
        if (batch.length > 0) posted = await this.#post(batch, true);
        else if (this.#running && this.#sweepDue()) posted = await this.#sweep();
      } catch (err) {
        this.#options.onError?.(err);
        if (!this.#running) return;
      }
      if (posted === 0 && this.#queue.length === 0 && this.#running) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.#options.idleMs);
          this.#wakers.add(() => { clearTimeout(timer); resolve(); });
        });
      }
    }
  }

  /**
   * One loop sweeps at a time: when asked to, or once a tenth of the lease has
   * passed (at least idleMs). A line nobody holds waits for a lease to run out,
   * so sweeping more often finds nothing sooner; and each sweep walks the due
   * index past every line settled since the last vacuum (one at the end of a 1M
   * week close visited 3,300–5,900 pages, 5–13 ms; sweeping every idle period,
   * that index was the one PostgreSQL read back most, 118,000 blocks, and 48,000
   * after this).
   */
  #sweepDue(): boolean {
    return !this.#sweeping && (this.#sweepRequested || performance.now() - this.#lastSweepAt >= Math.max(this.#options.idleMs, this.#options.leaseMs / 10));
  }

  async #sweep(): Promise<number> {
    this.#sweeping = true;
    this.#sweepRequested = false;
    try {
      const posted = await this.postOnce();
      if (posted === 0) await this.#forgetSettledElsewhere();
      return posted;
    } finally {
      this.#sweeping = false;
      this.#lastSweepAt = performance.now();
    }
  }

  /** Claims one batch from the ledger (rows no one holds: their lease ran out or their backoff is over) and posts it. */
  async postOnce(): Promise<number> {
    const em = this.#orm.em.fork() as EntityManager;
    const rows = await nativeQuery<ClaimedRow>(em,
      `with claimed as (
         update erp_pending set next_attempt_at = now() + ($1::int * interval '1 millisecond')
         where id in (select id from erp_pending where next_attempt_at <= now()
                      -- the due index's order: ordered by id alone, every claim would sort the whole backlog
                      order by next_attempt_at, id limit $2 for update skip locked)
         returning id)
       update erp_outbox o set attempts = o.attempts + 1 from claimed c where o.id = c.id
       returning o.id, o.external_id, o.project_id, o.region, o.transaction, o.trace_parent, o.attempts`,
      [this.#options.leaseMs, this.#options.batchSize]);
    if (rows.length === 0) return 0;
    rows.sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
    return this.#post(rows, false);
  }

  /** Posts reserved rows as one ERP request and settles them; returns how many it settled. */
  async #post(rows: ClaimedRow[], fromMemory: boolean): Promise<number> {
    const settled = new Set<string>();
    try {
      return await this.#postAndSettle(rows, settled);
    } finally {
      this.#settled(rows, fromMemory, settled);
    }
  }

  async #postAndSettle(rows: ClaimedRow[], settledIds: Set<string>): Promise<number> {
    const key = `billstream-${createHash('sha256').update(rows.map((r) => r.external_id).join('\n')).digest('hex').slice(0, 40)}`;
    const startedAt = this.#tracing.now();
    let results: ErpPostedLine[];
    try {
      results = await this.#erp.postTransactions(rows.map((r) => canonicalLine(r.transaction)), key);
    } catch (err) {
      const lineErrors = this.#rejection(err);
      if (lineErrors) {
        const settled = await this.#settleRejected(rows, lineErrors, settledIds);
        this.#traceBatch(rows, startedAt, { lineErrors });
        return settled;
      }
      await this.#release(rows, err);
      this.#traceBatch(rows, startedAt, { error: err });
      throw err;
    }
    const settled = await this.#settlePosted(rows, results, settledIds);
    this.#traceBatch(rows, startedAt, { results });
    return settled;
  }

  /** Posted rows get their documentId, rejected ones their code; a failed post marks every row. */
  #traceBatch(rows: ClaimedRow[], startedAt: number, outcome: { results?: ErpPostedLine[]; lineErrors?: ErpLineError[]; error?: unknown }): void {
    if (!this.#tracing.enabled) return;
    const documents = new Map(outcome.results?.map((r) => [r.externalId, r.documentId]));
    const rejections = new Map(outcome.lineErrors?.map((e) => [e.externalId, e]));
    const traced = rows
      .filter((r) => outcome.error !== undefined || documents.has(r.external_id) || rejections.has(r.external_id))
      .map((r) => ({
        traceParent: r.trace_parent, externalId: r.external_id, projectId: r.project_id, region: r.region, attempts: r.attempts, transaction: r.transaction,
        documentId: documents.get(r.external_id) ?? null, rejection: rejections.get(r.external_id) ?? null,
      }));
    this.#tracing.erpPost({ startedAt, rows: traced, ...(outcome.error !== undefined ? { error: outcome.error } : {}) });
  }

  async #settlePosted(rows: ClaimedRow[], results: ErpPostedLine[], settledIds: Set<string>): Promise<number> {
    const byExternalId = new Map(results.map((r) => [r.externalId, r]));
    const posted: PostedFacts[] = [];
    const ids: string[] = [];
    for (const row of rows) {
      const result = byExternalId.get(row.external_id);
      if (!result) continue;
      ids.push(row.id);
      posted.push({ id: row.id, externalId: row.external_id, documentId: result.documentId, projectId: row.project_id, region: row.region, traceParent: row.trace_parent, transaction: row.transaction });
    }
    // One statement, so its own transaction (no begin and commit around it): the
    // lines leave the queue and are marked posted (an update of no indexed
    // column on a half-filled page: it stays on the page and touches no index,
    // the erp_pending_queue migration), a rejected document replayed from the
    // exception workbench that has now landed is resolved, and the posted
    // announcements are queued.
    const outbox = natsOutboxBatch(posted.map(postedAnnouncement));
    const [queued] = await nativeQuery<{ id: string }>(this.#orm.em.fork() as EntityManager,
      `with settled as (delete from erp_pending where id = any($2::bigint[])),
       landed as (update billing_exception set status = 'resolved', resolved_at = now(), resolved_by = 'pipeline'
         where code = 'erp_rejected' and status = 'replayed' and record->>'externalId' = any($3::text[])),
       lines as (update erp_outbox o set status = 'posted', document_id = x.document_id, posted_at = now(), last_error = null
         from jsonb_to_recordset($1::jsonb) as x(external_id text, document_id text) where o.external_id = x.external_id)
       ${natsOutboxInsert('$4', '$5')}`,
      [JSON.stringify(posted.map((p) => ({ external_id: p.externalId, document_id: p.documentId }))), ids, posted.map((p) => p.externalId),
        outbox?.text ?? '', outbox?.count ?? 0]);
    const announcements = queued && outbox ? { id: queued.id, messages: outbox.messages } : null;
    for (const id of ids) settledIds.add(id);
    this.#options.onPosted?.(posted, announcements);
    return posted.length;
  }

  async #settleRejected(rows: ClaimedRow[], errors: ErpLineError[], settledIds: Set<string>): Promise<number> {
    const byExternalId = new Map(errors.map((e) => [e.externalId, e]));
    const rejected = rows.filter((r) => byExternalId.has(r.external_id));
    await this.#orm.em.fork().transactional(async (em) => {
      await nativeQuery(em,
        `with settled as (delete from erp_pending where id = any($2::bigint[]))
         update erp_outbox o set status = 'rejected', last_error = x.message from jsonb_to_recordset($1::jsonb) as x(external_id text, message text)
         where o.external_id = x.external_id`,
        [JSON.stringify(rejected.map((r) => ({ external_id: r.external_id, message: byExternalId.get(r.external_id)?.message }))), rejected.map((r) => r.id)]);
      // The ERP refuses the whole request when any line is bad; the good lines go again at once (the sweep asked for below).
      await nativeQuery(em, `update erp_pending set next_attempt_at = now() where id = any($1::bigint[])`,
        [rows.filter((r) => !byExternalId.has(r.external_id)).map((r) => r.id)]);
      await recordExceptions(em as EntityManager, rejected.map((r) => {
        const error = byExternalId.get(r.external_id) as ErpLineError;
        const tx = r.transaction;
        return exceptionRow({
          code: 'erp_rejected', recordKind: 'erp_transaction', recordId: r.external_id, revision: typeof tx.revision === 'number' ? tx.revision : null,
          projectId: r.project_id, region: r.region, record: tx,
          message: `the ERP rejected ${r.external_id}: ${error.code}: ${error.message}`,
        });
      }));
    });
    for (const r of rejected) settledIds.add(r.id);
    if (rejected.length < rows.length) this.#sweepRequested = true;
    return rejected.length;
  }

  async #release(rows: ClaimedRow[], err: unknown): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const attempts = Math.max(...rows.map((r) => r.attempts));
    const delayMs = Math.min(60_000, 500 * 2 ** Math.min(attempts, 7));
    await nativeQuery(this.#orm.em.fork() as EntityManager,
      `with backoff as (update erp_pending set next_attempt_at = now() + ($1::int * interval '1 millisecond') where id = any($3::bigint[]))
       update erp_outbox set last_error = $2 where id = any($3::bigint[])`,
      [delayMs, message.slice(0, 500), rows.map((r) => r.id)]);
  }
}

/**
 * A line with its fields in one fixed order, however the row was read. A batch
 * is posted under an Idempotency-Key derived from its externalIds, and the ERP
 * refuses that key with a different body. The same batch can be posted from
 * memory by the turn's instance (fields in the order they were built) and, after
 * that instance died, by another from the ledger (jsonb reorders keys), so the
 * body must not depend on which.
 */
export function canonicalLine(transaction: Record<string, unknown>): Record<string, unknown> {
  // A turn builds its lines in this order already (project-actor.ts): those go
  // out as they are, and only a line read back from jsonb is copied in order.
  let previous = '';
  for (const key in transaction) {
    if (key < previous) {
      const line: Record<string, unknown> = {};
      for (const sortedKey of Object.keys(transaction).sort()) line[sortedKey] = transaction[sortedKey];
      return line;
    }
    previous = key;
  }
  return transaction;
}
