// `billstream trace <entryId>`: the traceId of each revision and its Jaeger URL.
import { loadConfig } from '../config.ts';
import { openLedger } from '../../pipeline/state/orm.ts';

export async function runTrace(args: string[]): Promise<number> {
  const entryId = args[0];
  if (!entryId) {
    console.error('usage: billstream trace <entryId>');
    return 2;
  }
  const config = loadConfig();
  const ui = (process.env.JAEGER_UI_URL ?? 'http://localhost:16686').replace(/\/$/, '');
  const orm = await openLedger({ databaseUrl: config.DATABASE_URL, poolSize: 1 });
  try {
    const rows = await orm.em.fork().execute<{ revision: number; stage: string; trace_id: string | null }[]>(
      'select revision, stage, trace_id from entry_revision where entry_id = ? order by revision', [entryId]);
    if (rows.length === 0) {
      console.error(`billstream: entry ${entryId} is not in the ledger`);
      return 1;
    }
    for (const row of rows) {
      const url = row.trace_id ? `${ui}/trace/${row.trace_id}` : '(no trace recorded)';
      console.log(`${entryId} revision ${row.revision} [${row.stage}] traceId ${row.trace_id ?? '-'} ${url}`);
    }
    return 0;
  } finally {
    await orm.close();
  }
}
