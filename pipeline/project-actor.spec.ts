import { describe, expect, it } from 'vitest';
import { createTestLedger } from '../test/support/database.ts';
import { ENTRY_REVISIONS_OF_ENTRIES } from './project-actor.ts';

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
