// Relays the NATS outbox: messages written in the same transaction as the state
// they announce (enriched entries, exceptions, posted documents) are published
// after commit, then deleted. Each outbox row holds every message of the
// transaction that wrote it, published in order. A crash between publish and
// delete republishes with the same Nats-Msg-Id, which the stream's duplicate
// window absorbs.
//
// A batch whose writer hands it over after its commit (`publishCommitted`) is
// published from memory and its row deleted; the poll reads back only the rows
// no one handed over (other writers, or what a crashed process left).
//
// The handed-over batches go out in rounds: every batch waiting (up to
// `roundMessages`) in one publish, in commit order on one connection, so the
// server always has the next round's messages while it stores this one's, and
// the delete of a round's rows runs while the next round is published. One
// batch at a time, each waiting for its acks and then its delete, the relay
// held 400-490 batches at a week close of a million entries; in rounds, 4-41.
//
// What is handed over waits in memory until it is published, so the writers
// ask `admit()` before their next turn: with more than `maxQueuedMessages`
// waiting they wait too, and the consumer stops pulling. A week close of a
// million entries had 220-270 batches (a few hundred thousand announcements)
// waiting behind nats-server before the relay had this bound.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { readOutboxBatch, type OutboxMessage, type QueuedNatsBatch } from './nats-outbox.ts';
import { nativeQuery } from './state/native-sql.ts';
import { Admission } from './admission.ts';

export interface NatsRelayOptions {
  /** Outbox rows (each a transaction's messages) the poll takes per round. @default 8 */
  batchSize?: number;
  /** Messages of handed-over batches published per round (at least one batch). @default 5000 */
  roundMessages?: number;
  /** @default 200 ms */
  idleMs?: number;
  /** Messages handed over and not yet published above which `admit()` waits. @default 20000 */
  maxQueuedMessages?: number;
  onError?: (err: unknown) => void;
}

export class NatsRelay {
  readonly #orm: MikroORM;
  readonly #publish: (messages: OutboxMessage[]) => Promise<unknown>;
  readonly #options: Required<Omit<NatsRelayOptions, 'onError'>> & Pick<NatsRelayOptions, 'onError'>;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #waker: (() => void) | null = null;
  /** Committed batches handed over in memory, in commit order. */
  #committed: QueuedNatsBatch[] = [];
  /** Messages of the handed-over batches not yet published (nor given up to the poll). */
  #queuedMessages = 0;
  /** The delete of the last published round's rows, running while the next round is published. */
  #deleting: Promise<void> = Promise.resolve();
  /** Writers wait here while more than `maxQueuedMessages` are unpublished (never while stopped). */
  readonly #admission = new Admission(() => !this.#running || this.#queuedMessages <= this.#options.maxQueuedMessages);

  constructor(orm: MikroORM, publish: (messages: OutboxMessage[]) => Promise<unknown>, options: NatsRelayOptions = {}) {
    this.#orm = orm;
    this.#publish = publish;
    this.#options = { batchSize: 8, roundMessages: 5_000, idleMs: 200, maxQueuedMessages: 20_000, ...options };
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Stops polling; what was handed over in memory is still published (or left to the next poll). */
  async stop(): Promise<void> {
    this.#running = false;
    this.wake();
    this.#admission.recheck();
    await this.#loop;
    while (this.#committed.length > 0) if ((await this.#relayCommitted().catch(() => 0)) === 0) break;
    await this.#deleting;
  }

  wake(): void {
    this.#waker?.();
  }

  /** A batch whose transaction has committed: published from memory, in order, then its outbox row deleted. */
  publishCommitted(batch: QueuedNatsBatch | null): void {
    if (!batch) return;
    this.#committed.push(batch);
    this.#queuedMessages += batch.messages.length;
    this.wake();
  }

  /** Messages handed over and not yet published. */
  get queuedMessages(): number {
    return this.#queuedMessages;
  }

  /** Resolves once at most `maxQueuedMessages` wait to be published (at once while stopped). */
  admit(): Promise<void> {
    return this.#admission.wait();
  }

  /** Messages published, or left to the poll, are no longer held here. */
  #letGo(messages: number): void {
    this.#queuedMessages -= messages;
    this.#admission.recheck();
  }

  /** Publishes a round of the handed-over batches; returns how many messages went out. */
  async #relayCommitted(): Promise<number> {
    let take = 0;
    for (let n = 0; take < this.#committed.length && (take === 0 || n < this.#options.roundMessages); take++) n += this.#committed[take]!.messages.length;
    const batches = this.#committed.splice(0, take);
    if (batches.length === 0) return 0;
    const messages = batches.length === 1 ? batches[0]!.messages : batches.flatMap((b) => b.messages);
    try {
      await this.#publish(messages);
    } catch (err) {
      // Their rows are still in the outbox: the poll publishes them (what the
      // server stored before the failure again, which its duplicate window absorbs).
      this.#options.onError?.(err);
      return 0;
    } finally {
      this.#letGo(messages.length);
    }
    // At most one delete in flight: the previous round's is awaited first.
    await this.#deleting;
    this.#deleting = nativeQuery(this.#orm.em.fork() as EntityManager, `delete from nats_outbox_batch where id = any($1::bigint[])`, [batches.map((b) => b.id)])
      .then(() => undefined, (err: unknown) => { this.#options.onError?.(err); });
    return messages.length;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let relayed = 0;
      try {
        relayed = await this.#relayCommitted();
        // The poll must not take rows whose delete is still running.
        if (this.#committed.length === 0) { await this.#deleting; relayed += await this.relayOnce(); }
      } catch (err) {
        this.#options.onError?.(err);
      }
      if (relayed === 0 && this.#running) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.#options.idleMs);
          this.#waker = () => { clearTimeout(timer); this.#waker = null; resolve(); };
        });
      }
    }
  }

  /** Publishes up to `batchSize` outbox rows; returns how many messages went out. */
  async relayOnce(): Promise<number> {
    return this.#orm.em.fork().transactional(async (em) => {
      // Rows handed over in memory are left to that path (one taken here anyway
      // in the instant before its handover is published twice, which the
      // stream's duplicate window absorbs).
      const rows = await nativeQuery<{ id: string; messages: string }>(em,
        `select id, messages from nats_outbox_batch where not (id = any($2::bigint[])) order by id limit $1 for update skip locked`,
        [this.#options.batchSize, this.#committed.map((b) => b.id)]);
      if (rows.length === 0) return 0;
      let relayed = 0;
      for (const row of rows) {
        const { messages, unresolved } = await readOutboxBatch(em as EntityManager, row.messages);
        if (unresolved.length > 0) this.#options.onError?.(new Error(`outbox batch ${row.id}: ${unresolved.length} messages could not be rebuilt from the rows they refer to, gone or re-decided since (first: ${JSON.stringify(unresolved[0])}); the rest is published`));
        await this.#publish(messages);
        relayed += messages.length;
      }
      await nativeQuery(em, `delete from nats_outbox_batch where id = any($1::bigint[])`, [rows.map((r) => r.id)]);
      return relayed;
    });
  }

  async depth(): Promise<number> {
    const [row] = await nativeQuery<{ n: string }>(this.#orm.em.fork() as EntityManager, `select coalesce(sum(message_count), 0) as n from nats_outbox_batch`);
    return Number(row?.n ?? 0);
  }
}
