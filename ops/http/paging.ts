// Keyset paging shared by every list route (CONTRACT §5): `limit` (default 100,
// at most 1000) and an opaque `cursor` in, `{items, nextCursor}` out, with
// nextCursor null on the last page.
//
// Keyset rather than offset: the queues these routes list grow while someone
// pages through them, and an offset would skip or repeat rows as they do. The
// cursor names the last row's sort key, so the next page starts strictly after
// it whatever was inserted meanwhile.
import { z, type ZodType } from 'zod';
import { HTTP_ERROR_CODES, HttpError } from './errors.ts';

/** @default 100 */
export const DEFAULT_PAGE_LIMIT = 100;
/** Larger pages would hold a database connection and the event loop for too long. */
export const MAX_PAGE_LIMIT = 1000;

const LIMIT_REASON = `must be an integer from 1 to ${MAX_PAGE_LIMIT}`;

/** The `limit` and `cursor` query parameters, to spread into a route's querystring schema. */
export const pageQueryShape = {
  limit: z
    .string({ error: LIMIT_REASON })
    .regex(/^\d{1,7}$/, { error: LIMIT_REASON })
    .transform(Number)
    .pipe(z.number().int().min(1, { error: LIMIT_REASON }).max(MAX_PAGE_LIMIT, { error: LIMIT_REASON }))
    .default(DEFAULT_PAGE_LIMIT),
  cursor: z.string({ error: 'must be a cursor returned as nextCursor by the previous page' }).max(2048, { error: 'is too long to be a cursor' }).optional(),
};

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` to get the next page; null when this page is the last. */
  nextCursor: string | null;
}

/** The sort key of one row, as stored in a cursor: JSON scalars only. */
export type CursorKey = readonly (string | number)[];

/** Wraps a sort key into an opaque, URL-safe cursor. */
export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/**
 * Unwraps a cursor made by {@link encodeCursor} and checks it against the
 * route's key schema, so a tampered or foreign cursor is a 400, never a SQL error.
 *
 * @throws {HttpError} `invalid_cursor` (400)
 */
export function decodeCursor<K>(cursor: string, keySchema: ZodType<K>): K {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    raw = undefined;
  }
  const result = keySchema.safeParse(raw);
  if (!result.success) {
    throw new HttpError(400, HTTP_ERROR_CODES.invalidCursor, 'cursor is not one this list returned; start again without a cursor', {
      details: [{ field: 'cursor', reason: 'must be a nextCursor returned by this list' }],
    });
  }
  return result.data;
}

/**
 * Turns `limit + 1` fetched rows into a page: the extra row only tells that
 * another page exists, and the last row kept gives the next cursor.
 *
 * @param rows rows in the list's order, fetched with `LIMIT limit + 1`
 * @param keyOf the row's sort key, matching the key schema the route decodes cursors with
 */
export function pageOf<Row, Item>(rows: readonly Row[], limit: number, toItem: (row: Row) => Item, keyOf: (row: Row) => CursorKey): Page<Item> {
  const kept = rows.slice(0, limit);
  const last = kept.at(-1);
  const nextCursor = rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null;
  return { items: kept.map(toItem), nextCursor };
}

/**
 * The SQL condition "row comes after the cursor" for an ascending order over
 * `columns`, with one `?` placeholder per column (row-value comparison, so an
 * index on the same columns serves it). Qualify the columns (`e.first_seen_at`)
 * and order by the same qualified names: a select-list alias of the same name
 * (a formatted timestamp, say) would otherwise be what ORDER BY sorts on.
 *
 * @example keysetAfter(['first_seen_at', 'id'], ['timestamptz', 'text']) // "(first_seen_at, id) > (?::timestamptz, ?::text)"
 */
export function keysetAfter(columns: readonly string[], types: readonly string[]): string {
  if (columns.length !== types.length || columns.length === 0) throw new RangeError('keysetAfter: one type per column, at least one column');
  return `(${columns.join(', ')}) > (${types.map((t) => `?::${t}`).join(', ')})`;
}

/**
 * An instant as a cursor key: UTC with microseconds, the full precision of a
 * PostgreSQL timestamptz, so no row sharing a millisecond is skipped.
 */
export const INSTANT_KEY_SQL = (column: string): string => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
export const instantKeySchema = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
