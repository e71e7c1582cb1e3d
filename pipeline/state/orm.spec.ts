import { describe, expect, it } from 'vitest';
import { createTestLedger } from '../../test/support/database.ts';
import { nativeQuery } from './native-sql.ts';
import { openLedger } from './orm.ts';
import type { EntityManager } from '@mikro-orm/postgresql';

describe('openLedger', () => {
  it('brings a new database up to date, with the NATS outbox compressed by lz4 where the server has it', async () => {
    await using ledger = await createTestLedger();
    const { sql } = ledger;
    const { rows: [server] } = await sql.query<{ lz4: boolean }>(
      `select exists (select 1 from pg_settings where name = 'default_toast_compression' and 'lz4' = any(enumvals)) as lz4`);
    // A thousand-entry turn's messages: far past the TOAST threshold.
    const text = JSON.stringify(Array.from({ length: 1000 }, (_, i) => ({ subject: `enriched.time.amer.p-${i % 50}`, msg_id: `enriched:e-${i}:1`, headers: { 'Schema-Version': '1' }, payload: { entryId: `e-${i}`, hours: '7.50', status: 'approved' } })));
    await sql.query('insert into nats_outbox_batch (messages, message_count) values ($1, 1000)', [text]);
    const { rows: [stored] } = await sql.query<{ bytes: number }>('select pg_column_size(messages) as bytes from nats_outbox_batch');
    if (server?.lz4) expect(stored?.bytes).toBeLessThan(text.length / 4);
    else expect(stored?.bytes).toBeGreaterThanOrEqual(text.length);
    // The view over the outbox still reads the messages.
    const { rows: [count] } = await sql.query<{ n: string }>('select count(*) as n from nats_outbox');
    expect(Number(count?.n)).toBe(1000);
  });

  it('runs its sessions with JIT off, so a misestimated statement is not compiled', async () => {
    await using ledger = await createTestLedger();
    const { orm } = ledger;
    const [row] = await nativeQuery<{ jit: string }>(orm.em.fork() as EntityManager, 'show jit');
    expect(row?.jit).toBe('off');
    const [inTransaction] = await orm.em.fork().transactional((em) => nativeQuery<{ jit: string }>(em as EntityManager, 'show jit'));
    expect(inTransaction?.jit).toBe('off');
  });

  it('names its sessions billstream in pg_stat_activity, unless DATABASE_URL names them otherwise', async () => {
    await using ledger = await createTestLedger();
    const [row] = await nativeQuery<{ application_name: string }>(ledger.orm.em.fork() as EntityManager, 'show application_name');
    expect(row?.application_name).toBe('billstream');
    const url = new URL(ledger.url);
    url.searchParams.set('application_name', 'billstream-emea');
    const named = await openLedger({ databaseUrl: url.toString() });
    try {
      const [own] = await nativeQuery<{ application_name: string }>(named.em.fork() as EntityManager, 'show application_name');
      expect(own?.application_name).toBe('billstream-emea');
    } finally {
      await named.close();
    }
  });
});
