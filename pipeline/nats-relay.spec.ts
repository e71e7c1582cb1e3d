import { describe, expect, it } from 'vitest';
import type { EntityManager } from '@mikro-orm/postgresql';
import { createTestLedger, type TestLedger } from '../test/support/database.ts';
import { queueNatsMessages, type OutboxMessage, type QueuedNatsBatch } from './nats-outbox.ts';
import { NatsRelay } from './nats-relay.ts';

/** A batch of `count` messages committed to the outbox, as a turn hands it over. */
async function committedBatch(em: EntityManager, name: string, count: number): Promise<QueuedNatsBatch> {
  const batch = await em.transactional((tx) => queueNatsMessages(tx as EntityManager, Array.from({ length: count }, (_, i) => ({
    subject: `enriched.time.amer.p-1`, msg_id: `${name}-${i}`, payload: { entryId: `${name}-${i}` }, headers: null,
  }))));
  if (!batch) throw new Error('no batch queued');
  return batch;
}

/** A publish the test lets through one call at a time. */
function gatedPublish() {
  const published: OutboxMessage[][] = [];
  const gates: (() => void)[] = [];
  return {
    published,
    publish: (messages: OutboxMessage[]) => new Promise<void>((resolve) => { gates.push(() => { published.push(messages); resolve(); }); }),
    waiting: () => gates.length,
    release: () => gates.shift()?.(),
    /** Waits for the relay's next publish and lets it through. */
    async releaseNext() {
      await expect.poll(() => gates.length).toBe(1);
      gates.shift()?.();
    },
  };
}

/** Outbox rows left in the ledger (published rows are deleted). */
const outboxRows = async (ledger: TestLedger) =>
  (await ledger.sql.query<{ n: number }>('select count(*)::int as n from nats_outbox_batch')).rows[0]?.n;

/** Whether the promise settles within `ms`. */
const settles = async (promise: Promise<unknown>, ms = 100) => Promise.race([promise.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), ms))]);

describe('NatsRelay', () => {
  it('makes writers wait while more than maxQueuedMessages handed over are unpublished, and lets them go as it publishes', async () => {
    await using ledger = await createTestLedger();
    const em = ledger.orm.em.fork() as EntityManager;
    const nats = gatedPublish();
    const relay = new NatsRelay(ledger.orm, nats.publish, { roundMessages: 1, maxQueuedMessages: 3 });
    relay.start();
    try {
      expect(await settles(relay.admit())).toBe(true);
      relay.publishCommitted(await committedBatch(em, 'a', 2));
      relay.publishCommitted(await committedBatch(em, 'b', 2));
      expect(relay.queuedMessages).toBe(4);
      const admitted = relay.admit();
      expect(await settles(admitted)).toBe(false);

      // The first batch is being published, not yet acknowledged: still held.
      await expect.poll(() => nats.waiting()).toBe(1);
      expect(await settles(admitted)).toBe(false);
      nats.release();
      expect(await settles(admitted)).toBe(true);
      expect(relay.queuedMessages).toBe(2);

      await nats.releaseNext();
      await expect.poll(() => relay.queuedMessages).toBe(0);
      expect(nats.published.map((batch) => batch.map((m) => m.msgId))).toEqual([['a-0', 'a-1'], ['b-0', 'b-1']]);
      await expect.poll(() => outboxRows(ledger)).toBe(0);
    } finally {
      while (nats.waiting() > 0) nats.release();
      await relay.stop();
    }
  });

  it('publishes the batches waiting in one round, in commit order, up to roundMessages, and deletes their rows', async () => {
    await using ledger = await createTestLedger();
    const em = ledger.orm.em.fork() as EntityManager;
    const nats = gatedPublish();
    const relay = new NatsRelay(ledger.orm, nats.publish, { roundMessages: 5 });
    for (const name of ['a', 'b', 'c', 'd']) relay.publishCommitted(await committedBatch(em, name, 2));
    relay.start();
    try {
      // a, b and c make 6 messages: the round stops at the batch that reaches 5.
      await nats.releaseNext();
      await nats.releaseNext();
      await expect.poll(() => relay.queuedMessages).toBe(0);
      expect(nats.published.map((round) => round.map((m) => m.msgId))).toEqual([['a-0', 'a-1', 'b-0', 'b-1', 'c-0', 'c-1'], ['d-0', 'd-1']]);
      await expect.poll(() => outboxRows(ledger)).toBe(0);
    } finally {
      while (nats.waiting() > 0) nats.release();
      await relay.stop();
    }
  });

  it('lets writers go when it stops, and when a publish fails (the poll then has the batch)', async () => {
    await using ledger = await createTestLedger();
    const em = ledger.orm.em.fork() as EntityManager;
    const failing = new NatsRelay(ledger.orm, () => Promise.reject(new Error('nats-server went away')), { maxQueuedMessages: 1, onError: () => undefined });
    failing.start();
    failing.publishCommitted(await committedBatch(em, 'c', 2));
    expect(await settles(failing.admit(), 5_000)).toBe(true);
    expect(failing.queuedMessages).toBe(0);
    await failing.stop();
    // Still in the outbox for the next poll, not lost.
    expect(await outboxRows(ledger)).toBe(1);

    const nats = gatedPublish();
    const stopping = new NatsRelay(ledger.orm, nats.publish, { maxQueuedMessages: 1 });
    stopping.start();
    stopping.publishCommitted(await committedBatch(em, 'd', 2));
    const admitted = stopping.admit();
    expect(await settles(admitted)).toBe(false);
    const stopped = stopping.stop();
    expect(await settles(admitted)).toBe(true);
    while (nats.waiting() > 0 || !(await settles(stopped))) nats.release();
  });
});
