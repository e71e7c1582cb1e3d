import { createRequire } from 'node:module';
import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { referenceView, timeItem } from '../test/support/actor-items.ts';
import { createTestLedger } from '../test/support/database.ts';
import { ErpPoster } from './erp-poster.ts';
import type { QueuedNatsBatch } from './nats-outbox.ts';
import { ENTRY_REVISIONS_OF_ENTRIES, ProjectActors } from './project-actor.ts';

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; Plans?: PlanNode[] }

function scansOf(node: PlanNode): string[] {
  return [`${node['Node Type']}${node['Relation Name'] ? ` on ${node['Relation Name']}` : ''}`, ...(node.Plans ?? []).flatMap(scansOf)];
}

describe('a turn reading its entries', () => {
  it('probes entry_revision by primary key even when the table has no statistics', async () => {
    await using ledger = await createTestLedger();
    const { sql } = ledger;
    // No statistics whatever the server's autovacuum does: the state of a ledger
    // on a server with autovacuum off, or at the start of a week close.
    await sql.query('alter table entry_revision set (autovacuum_enabled = false)');
    await sql.query(`insert into entry_revision (entry_id, revision, project_id, region, status, stage, hours_hundredths, work_date, record)
      select 'e-' || i, 1, 'p-' || (i % 300), 'amer', 'approved', 'charged', 750, date '2026-11-30', '{}'::jsonb from generate_series(1, 100000) as i`);
    const ids = Array.from({ length: 1000 }, (_, i) => `e-${i * 97 + 1}`);
    const plan = async (text: string) => {
      const { rows: [row] } = await sql.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`explain (format json) ${text}`, [ids]);
      return scansOf((row as { 'QUERY PLAN': [{ Plan: PlanNode }] })['QUERY PLAN'][0].Plan);
    };

    // The conditions are the ones that hurt: the plain `= any` form reads the whole table.
    expect(await plan('select entry_id, revision, stage from entry_revision where entry_id = any($1::text[])')).toContain('Seq Scan on entry_revision');
    const scans = await plan(ENTRY_REVISIONS_OF_ENTRIES);
    expect(scans).not.toContain('Seq Scan on entry_revision');
    // Probed through the primary key (a bitmap or plain index scan per entry).
    expect(scans.filter((s) => s.endsWith(' on entry_revision'))).toEqual([expect.stringMatching(/^(Bitmap Heap|Index|Index Only) Scan on entry_revision$/)]);
    expect(scans[0]).toBe('Nested Loop');

    const { rows } = await sql.query<{ entry_id: string }>(ENTRY_REVISIONS_OF_ENTRIES, [ids]);
    expect(rows.map((r) => r.entry_id).sort()).toEqual([...ids].sort());
  });
});

/** The pg client class the ledger's ORM talks through (its own copy of pg), to count what goes on the wire. */
const LedgerClient = (createRequire(import.meta.resolve('@mikro-orm/postgresql')) as (id: string) => typeof pg)('pg').Client;

/** The text of each statement a spied client sent, trimmed (pg takes it as a string or as a config's `text`). */
function sentSql(spy: { mock: { calls: unknown[][] } }): string[] {
  return spy.mock.calls.map(([query]) => (typeof query === 'string' ? query : String((query as { text?: string }).text)).trim());
}

describe('a turn and a post on the wire', () => {
  it('a turn of a project seen before is five statements and a post one, whatever they write', async () => {
    await using ledger = await createTestLedger();
    const { orm, sql } = ledger;
    const view = referenceView();
    const actors = new ProjectActors(orm, { referenceGraceMs: 300_000 });
    await actors.turnBatch([timeItem(view, { entryId: 'e-1' })]);

    // The second turn writes revisions, ERP lines, announcements and totals.
    const sent = vi.spyOn(LedgerClient.prototype, 'query');
    const turn = await actors.turnBatch([timeItem(view, { entryId: 'e-2' }), timeItem(view, { entryId: 'e-3', hours: 2 })]);
    const statements = sentSql(sent).map((text) => text.split(/\s+/).slice(0, 3).join(' '));
    sent.mockRestore();
    expect(turn.erpRows.map((r) => r.external_id)).toEqual(['e-2:1:charge', 'e-3:1:charge']);
    expect(turn.enriched[0]?.messages.map((m) => m.msgId)).toEqual(['enriched:e-2:1', 'enriched:e-3:1']);
    // begin, the project's lock, its entries' revisions, every write, commit.
    expect(statements).toHaveLength(5);
    expect(statements[0]).toMatch(/^begin/i);
    expect(statements[1]).toMatch(/^select project_id, charged_minor/);
    expect(statements[3]).toMatch(/^with revisions as/);
    expect(statements[4]).toMatch(/^commit/i);
    const { rows: [billing] } = await sql.query<{ charged_minor: string; turns: string }>(`select charged_minor, turns from project_billing where project_id = 'p-1'`);
    expect(billing).toEqual({ charged_minor: String(112_500 + 112_500 + 30_000), turns: '2' });
    const { rows: pending } = await sql.query<{ external_id: string }>('select external_id from erp_pending join erp_outbox using (id) order by external_id');
    expect(pending.map((r) => r.external_id)).toEqual(['e-1:1:charge', 'e-2:1:charge', 'e-3:1:charge']);

    let posted: QueuedNatsBatch | null = null;
    const poster = new ErpPoster(orm, {
      postTransactions: async (lines) => Promise.resolve(lines.map((line, i) => ({ externalId: String(line.externalId), documentId: `doc-${i + 1}`, status: 'created' }))),
    }, () => null, { onPosted: (_lines, queued) => { posted = queued; } });
    const posting = vi.spyOn(LedgerClient.prototype, 'query');
    poster.start();
    poster.submit(turn.erpRows);
    await expect.poll(() => posted, { timeout: 10_000 }).not.toBeNull();
    await poster.stop();
    const settling = sentSql(posting).filter((text) => !/^with claimed as/.test(text));
    posting.mockRestore();
    // Besides its claims of due lines (none are due), the poster sent one statement, its own
    // transaction: the lines leave the queue, are marked posted and announced.
    expect(settling).toHaveLength(1);
    expect(settling[0]).toMatch(/delete from erp_pending[\s\S]*update billing_exception[\s\S]*update erp_outbox[\s\S]*insert into nats_outbox_batch/);
    expect((posted as unknown as QueuedNatsBatch).messages.map((m) => m.msgId)).toEqual(['posted:e-2:1:charge', 'posted:e-3:1:charge']);
    const { rows: lines } = await sql.query<{ external_id: string; status: string; document_id: string }>(
      `select external_id, status, document_id from erp_outbox where entry_id in ('e-2', 'e-3') order by external_id`);
    expect(lines).toEqual([{ external_id: 'e-2:1:charge', status: 'posted', document_id: 'doc-1' }, { external_id: 'e-3:1:charge', status: 'posted', document_id: 'doc-2' }]);
  });
});
