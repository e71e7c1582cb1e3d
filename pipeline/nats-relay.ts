// Relays the NATS outbox: messages written in the same transaction as the state
// they announce (enriched entries, exceptions, posted documents) are published
// after commit, then deleted. Each outbox row holds every message of the
// transaction that wrote it, published in order. A crash between publish and
// delete republishes with the same Nats-Msg-Id, which the stream's duplicate
// window absorbs.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { textArray } from './state/sql-arrays.ts';
import { nativeQuery } from './state/native-sql.ts';

export interface OutboxMessage { subject: string; msgId: string; payload: unknown; headers: Record<string, string> | null }

export interface NatsRelayOptions {
  /** Outbox rows (each a transaction's messages) taken per round. @default 8 */
  batchSize?: number;
  /** @default 200 ms */
  idleMs?: number;
  onError?: (err: unknown) => void;
}

export class NatsRelay {
  readonly #orm: MikroORM;
  readonly #publish: (messages: OutboxMessage[]) => Promise<unknown>;
  readonly #options: Required<Omit<NatsRelayOptions, 'onError'>> & Pick<NatsRelayOptions, 'onError'>;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #waker: (() => void) | null = null;

  constructor(orm: MikroORM, publish: (messages: OutboxMessage[]) => Promise<unknown>, options: NatsRelayOptions = {}) {
    this.#orm = orm;
    this.#publish = publish;
    this.#options = { batchSize: 8, idleMs: 200, ...options };
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.wake();
    await this.#loop;
  }

  wake(): void {
    this.#waker?.();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let relayed = 0;
      try {
        relayed = await this.relayOnce();
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
      const rows = await nativeQuery<{ id: string; messages: string }>(em,
        `select id, messages from nats_outbox_batch order by id limit $1 for update skip locked`, [this.#options.batchSize]);
      if (rows.length === 0) return 0;
      let relayed = 0;
      for (const row of rows) {
        const messages = JSON.parse(row.messages) as { subject: string; msg_id: string; payload: unknown; headers: Record<string, string> | null }[];
        await this.#publish(messages.map((m) => ({ subject: m.subject, msgId: m.msg_id, payload: m.payload, headers: m.headers })));
        relayed += messages.length;
      }
      await nativeQuery(em, `delete from nats_outbox_batch where id = any($1::bigint[])`, [textArray(rows.map((r) => r.id))]);
      return relayed;
    });
  }

  async depth(): Promise<number> {
    const [row] = await nativeQuery<{ n: string }>(this.#orm.em.fork() as EntityManager, `select coalesce(sum(message_count), 0) as n from nats_outbox_batch`);
    return Number(row?.n ?? 0);
  }
}
