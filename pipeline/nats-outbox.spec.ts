import { describe, expect, it } from 'vitest';
import type { EntityManager } from '@mikro-orm/postgresql';
import { TRACE_PARENT, referenceView, timeItem } from '../test/support/actor-items.ts';
import { createTestLedger } from '../test/support/database.ts';
import { ErpPoster } from './erp-poster.ts';
import { readOutboxBatch, type OutboxMessage, type QueuedNatsBatch } from './nats-outbox.ts';
import { ProjectActors } from './project-actor.ts';

/** A message as a consumer reads it: the payload parsed (key order is not part of JSON's meaning). */
function asPublished(message: OutboxMessage): Record<string, unknown> {
  return { ...message, payload: typeof message.payload === 'string' ? JSON.parse(message.payload) as unknown : message.payload };
}

describe('the NATS outbox', () => {
  it('keeps enriched and posted announcements as references, and rebuilds from the ledger the messages their writers published', async () => {
    await using ledger = await createTestLedger();
    const { orm, sql } = ledger;
    const view = referenceView();
    const items = [
      timeItem(view, { entryId: 'e-1', hours: 7.5 }, true),
      timeItem(view, { entryId: 'e-2', hours: 2, workDate: '2026-11-17' }, false),
      timeItem(view, { entryId: 'e-3', hours: '1.25', workDate: '2026-11-20', status: 'submitted' }, true),
    ];
    const turn = await new ProjectActors(orm, { referenceGraceMs: 300_000 }).turnBatch(items);
    const [enriched] = turn.enriched as [QueuedNatsBatch];
    expect(enriched.messages.map((m) => m.subject)).toEqual(['enriched.time.amer.p-1', 'enriched.time.amer.p-1', 'enriched.time.amer.p-1']);

    let announcements: QueuedNatsBatch | null = null;
    const poster = new ErpPoster(orm, {
      postTransactions: async (lines) => Promise.resolve(lines.map((line, i) => ({ externalId: String(line.externalId), documentId: `doc-${i + 1}`, status: 'created' }))),
    }, () => null, { onPosted: (_lines, queued) => { announcements = queued; } });
    poster.start();
    poster.submit(turn.erpRows);
    await expect.poll(() => announcements, { timeout: 10_000 }).not.toBeNull();
    await poster.stop();
    const posted = announcements as unknown as QueuedNatsBatch;
    expect(posted.messages.map((m) => m.msgId)).toEqual(['posted:e-1:1:charge', 'posted:e-2:1:charge']);

    const { rows } = await sql.query<{ id: string; messages: string }>('select id::text as id, messages from nats_outbox_batch order by id');
    expect(rows.map((r) => r.id)).toEqual([enriched.id, posted.id]);
    for (const [row, batch] of [[rows[0], enriched], [rows[1], posted]] as const) {
      // What the ledger keeps is a reference per message, not its payload.
      expect(JSON.parse(row?.messages ?? '[]')).toEqual(batch.messages.map(() => expect.any(Array)));
      expect(row?.messages.length).toBeLessThan(100 * batch.messages.length);
      const read = await readOutboxBatch(orm.em.fork() as EntityManager, row?.messages ?? '[]');
      expect(read.unresolved).toEqual([]);
      expect(read.messages.map(asPublished)).toEqual(batch.messages.map(asPublished));
    }
    const [charged] = enriched.messages.map(asPublished);
    expect(charged?.payload).toMatchObject({ entryId: 'e-1', billable: true, rate: '150.00', amount: '1125.00', costAmount: '600.00', customerId: 'cust-1', traceId: TRACE_PARENT.split('-')[1] });
    expect(charged?.headers).toEqual({ 'Schema-Version': '1', traceparent: TRACE_PARENT });
  });

  it('reads back rows written as whole messages, and names a reference whose row is gone', async () => {
    await using ledger = await createTestLedger();
    const { orm } = ledger;
    const text = JSON.stringify([
      { subject: 'exceptions.amer.p-1', msg_id: 'exception:x-1', headers: null, payload: { code: 'no_assignment' } },
      ['posted', '42'],
      ['enriched', 'e-9', 1, 'cust-1', 'k-1', 'le-us', null],
    ]);
    const read = await readOutboxBatch(orm.em.fork() as EntityManager, text);
    expect(read.messages).toEqual([{ subject: 'exceptions.amer.p-1', msgId: 'exception:x-1', headers: null, payload: { code: 'no_assignment' } }]);
    expect(read.unresolved).toEqual([['posted', '42'], ['enriched', 'e-9', 1, 'cust-1', 'k-1', 'le-us', null]]);
  });
});
