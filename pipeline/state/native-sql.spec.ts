import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase } from '../../test/support/database.ts';
import { PositionalRows } from './native-sql.ts';

describe('PositionalRows', () => {
  const rows = new PositionalRows([['id', 'text'], ['n', 'int'], ['amount', 'bigint'], ['ok', 'boolean'], ['day', 'date'], ['at', 'timestamptz'], ['doc', 'jsonb']]);

  it('sends each row as an array of its values in column order, a missing column as null, no column names', () => {
    const text = rows.json([{ id: 'e-1', n: 2, amount: '900719925474099312', ok: false, day: '2026-11-30', at: '2026-11-30T10:00:00.123Z', doc: { entryId: 'e-1', n: 2 } }, { id: 'e-2' }]);
    expect(JSON.parse(text)).toEqual([
      ['e-1', 2, '900719925474099312', false, '2026-11-30', '2026-11-30T10:00:00.123Z', { entryId: 'e-1', n: 2 }],
      ['e-2', null, null, null, null, null, null],
    ]);
    expect(rows.columns).toBe('id, n, amount, ok, day, at, doc');
  });

  it('is read back by PostgreSQL with every value typed as its column', async () => {
    await using db = await createTestDatabase();
    const sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    try {
      await sql.query('create table t (id text primary key, n int, amount bigint, ok boolean, day date, at timestamptz, doc jsonb)');
      await sql.query(`insert into t (${rows.columns}) select ${rows.select} from jsonb_array_elements($1::jsonb) as x`, [rows.json([
        { id: 'e-1', n: 2, amount: '900719925474099312', ok: true, day: '2026-11-30', at: '2026-11-30T10:00:00.123Z', doc: { entryId: 'e-1', hours: '7.50', nested: [1, null] } },
        { id: 'e-2', doc: null },
      ])]);
      const { rows: stored } = await sql.query(`select id, n, amount::text, ok, day::text, (extract(epoch from at) * 1000)::bigint::text as at_ms, doc, doc is null as doc_null from t order by id`);
      expect(stored).toEqual([
        { id: 'e-1', n: 2, amount: '900719925474099312', ok: true, day: '2026-11-30', at_ms: String(Date.parse('2026-11-30T10:00:00.123Z')), doc: { entryId: 'e-1', hours: '7.50', nested: [1, null] }, doc_null: false },
        // A JSON null is SQL null in every column, the jsonb one too.
        { id: 'e-2', n: null, amount: null, ok: null, day: null, at_ms: null, doc: null, doc_null: true },
      ]);
    } finally {
      await sql.end();
    }
  });
});
