// Array parameters for raw SQL. The ORM's `execute` expands a JavaScript array
// into a list of placeholders, so an array travels as one text parameter in
// PostgreSQL's array literal form and is cast in the statement:
// `where entry_id = any(?::text[])`. That form matters on hot paths: with
// `in (select jsonb_array_elements_text(?))` the planner guesses 100 rows from
// the function and prefers a hash join over a sequential scan of the whole
// table, which grows with every entry ever seen; `= any(array)` is an index scan.

/** `['a', 'b"c']` → `{"a","b\"c"}`: every element quoted, backslashes and quotes escaped. */
export function textArray(values: Iterable<string>): string {
  const quoted: string[] = [];
  for (const value of values) quoted.push(`"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`);
  return `{${quoted.join(',')}}`;
}
