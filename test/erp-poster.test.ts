// The ERP poster's admission counts this instance's unposted lines, in memory
// and back in the ledger after a failed post, until somebody posts them: this
// instance's sweep, or another instance's.
import type { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ErpPoster, type ClaimedRow, type ErpPort } from '../pipeline/erp-poster.ts';
import { openLedger } from '../pipeline/state/orm.ts';
import { createTestDatabase } from './support/database.ts';

/** Outbox rows as a turn writes them: pending, their lease running, handed to the poster in memory. */
async function writeOutbox(sql: pg.Client, count: number, leaseMs: number): Promise<ClaimedRow[]> {
  const rows: ClaimedRow[] = [];
  for (let i = 0; i < count; i++) {
    const transaction = { externalId: `e-${i}:1:charge`, kind: 'charge', entryId: `e-${i}`, revision: 1, projectId: 'p-1', amount: '150.00', currency: 'USD' };
    const { rows: [row] } = await sql.query<{ id: string }>(
      `insert into erp_outbox (external_id, kind, project_id, region, entry_id, revision, amount_minor, currency, transaction, next_attempt_at)
       values ($1, 'charge', 'p-1', 'amer', $2, 1, 15000, 'USD', $3, now() + ($4::int * interval '1 millisecond')) returning id::text as id`,
      [transaction.externalId, transaction.entryId, JSON.stringify(transaction), leaseMs]);
    rows.push({ id: (row as { id: string }).id, external_id: transaction.externalId, project_id: 'p-1', region: 'amer', transaction, trace_parent: null, attempts: 0 });
  }
  return rows;
}

// Answers 503 only after the poster's lease (200 ms below) has run out. The
// failing instance retries the lines it gave back once their backoff is over,
// racing the survivor for them (skip locked: each takes the lines the other has
// not locked yet). Failing at once, every line it won had its backoff doubled
// (1, 2, 4, 8 s), so four wins in a row outlasted the deadline: a full run of
// the suite once ended with one line posted and four pending. Failing slowly,
// what it claims is the survivor's to take once its lease is out.
const unavailable: ErpPort = { postTransactions: () => new Promise((_, reject) => setTimeout(() => reject(new Error('503 Service Unavailable')), 300)) };
const books: ErpPort = {
  postTransactions: (transactions) => Promise.resolve(transactions.map((t, i) => ({ externalId: String(t.externalId), documentId: `DOC-${i}`, status: 'created' }))),
};

describe('ErpPoster admission', () => {
  it('keeps counting lines a failed post gave back to the ledger, and stops once another instance has posted them', async () => {
    await using db = await createTestDatabase();
    const orms: MikroORM[] = [await openLedger({ databaseUrl: db.url }), await openLedger({ databaseUrl: db.url })];
    const sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    const failing = new ErpPoster(orms[0] as MikroORM, unavailable, () => null, { maxPending: 2, leaseMs: 200, idleMs: 50, concurrency: 1 });
    const survivor = new ErpPoster(orms[1] as MikroORM, books, () => null, { leaseMs: 200, idleMs: 50, concurrency: 1 });
    try {
      failing.start();
      failing.submit(await writeOutbox(sql, 5, 200));
      // The post fails: the lines are back in the ledger, still this instance's, still unposted.
      const failedBy = Date.now() + 10_000;
      while (Date.now() < failedBy && (await sql.query(`select 1 from erp_outbox where last_error is null`)).rowCount !== 0) await new Promise((r) => setTimeout(r, 20));
      expect((await sql.query(`select 1 from erp_outbox where status = 'pending' and last_error like '503%'`)).rowCount).toBe(5);
      expect(failing.pending).toBe(5);
      let admitted = false;
      void failing.admit().then(() => { admitted = true; });
      await new Promise((r) => setTimeout(r, 200));
      expect(admitted).toBe(false);

      survivor.start();
      const deadline = Date.now() + 15_000;
      while (!admitted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const { rows } = await sql.query<{ status: string; n: number }>(`select status, count(*)::int as n from erp_outbox group by status`);
      expect(rows).toEqual([{ status: 'posted', n: 5 }]);
      expect(admitted).toBe(true);
      expect(failing.pending).toBe(0);
    } finally {
      await failing.stop();
      await survivor.stop();
      await sql.end();
      for (const orm of orms) await orm.close();
    }
  });
});
