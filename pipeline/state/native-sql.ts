// Parameterised SQL for the hot paths (a batch turn, an ERP post, the relay).
//
// The ORM's `em.execute` formats every parameter into the statement text on the
// client: a batch of a thousand entries becomes a megabyte of escaped SQL that is
// built, scanned and written to the socket as one string (a profile of a week
// close spent more time there than in any decision). Here the same statement
// goes to PostgreSQL with `$1, $2, ...` placeholders and its parameters apart,
// on the connection of the entity manager's transaction when it has one, so a
// unit of work stays one transaction whichever way its statements travel.
// JavaScript arrays travel as PostgreSQL arrays: `where entry_id = any($1::text[])`.
// That form matters on hot paths: with `in (select jsonb_array_elements_text($1))`
// the planner guesses 100 rows from the function and prefers a hash join over a
// sequential scan of the whole table, which grows with every entry ever seen;
// `= any(array)` is an index scan where each value matches at most one row (a
// unique index). On a non-unique key of a table without statistics the planner
// assumes each value matches 0.5% of the rows, and a thousand values the whole
// table: there a lateral probe per value is the form that stays an index scan
// (see ENTRY_REVISIONS_OF_ENTRIES in project-actor.ts).
import type { EntityManager } from '@mikro-orm/postgresql';
import { CompiledQuery, type Kysely, type Transaction } from 'kysely';

export async function nativeQuery<R = Record<string, unknown>>(em: EntityManager, sql: string, params: readonly unknown[] = []): Promise<R[]> {
  const executor = em.getTransactionContext<Transaction<unknown>>() ?? (em.getConnection().getClient() as Kysely<unknown>);
  const result = await executor.executeQuery<R>(CompiledQuery.raw(sql, [...params]));
  return result.rows;
}

/**
 * A hot table's rows sent as one JSON parameter with one array per row, the
 * values in the columns' order, instead of one object per row: keyed rows
 * repeat every column's name in every row, a third of what a turn's revision
 * rows weighed on the wire. `select` reads them back typed from
 * `jsonb_array_elements($n::jsonb) as x`, each column under its own name.
 */
export class PositionalRows {
  readonly #names: readonly string[];
  /** `(x->>0)::text as entry_id, (x->>1)::int as revision, ...`; a jsonb column's JSON null is SQL null, as a keyed row's missing key was. */
  readonly select: string;
  /** `entry_id, revision, ...` */
  readonly columns: string;

  constructor(columns: readonly (readonly [name: string, type: string])[]) {
    this.#names = columns.map(([name]) => name);
    this.columns = this.#names.join(', ');
    this.select = columns.map(([name, type], i) => (type === 'jsonb' ? `nullif(x->${i}, 'null'::jsonb) as ${name}` : `(x->>${i})::${type} as ${name}`)).join(', ');
  }

  /** The rows' JSON text; a column a row does not have is null. */
  json(rows: readonly Readonly<Record<string, unknown>>[]): string {
    const names = this.#names;
    return JSON.stringify(rows.map((row) => names.map((name) => row[name] ?? null)));
  }
}
