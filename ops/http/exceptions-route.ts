// GET /v1/exceptions (CONTRACT §5): the exception queue, oldest first, filtered
// by status, code and project, paged by (first_seen_at, id).
import type { MikroORM } from '@mikro-orm/postgresql';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ID_PATTERN, REASONS } from '../../pipeline/model/records.ts';
import { EXCEPTION_CODES, type FieldError } from '../../pipeline/model/types.ts';
import { instantSql } from './ledger-sql.ts';
import { decodeCursor, INSTANT_KEY_SQL, instantKeySchema, keysetAfter, pageOf, pageQueryShape, type Page } from './paging.ts';

/** The states of an exception in the workbench. */
export const EXCEPTION_STATUSES = ['open', 'replayed', 'dismissed', 'resolved'] as const;

export interface ExceptionItem {
  id: string;
  code: string;
  status: string;
  recordKind: string;
  entryId: string | null;
  revision: number | null;
  projectId: string | null;
  region: string;
  message: string;
  errors: FieldError[] | null;
  /** The record as received; its raw text when it was not even JSON. */
  record: unknown;
  firstSeenAt: string;
  lastSeenAt: string;
  attempts: number;
}

interface ExceptionRow {
  id: string;
  code: string;
  status: string;
  record_kind: string;
  entry_id: string | null;
  revision: number | null;
  project_id: string | null;
  region: string;
  message: string;
  errors: FieldError[] | null;
  record: unknown;
  raw: string | null;
  attempts: number;
  first_seen_at: string;
  last_seen_at: string;
  cursor_at: string;
}

export const exceptionsQuerySchema = z.object({
  status: z.enum(EXCEPTION_STATUSES, { error: `must be one of ${EXCEPTION_STATUSES.join(', ')}` }).optional(),
  code: z.enum(EXCEPTION_CODES, { error: `must be one of ${EXCEPTION_CODES.join(', ')}` }).optional(),
  projectId: z.string({ error: REASONS.id }).regex(ID_PATTERN, { error: REASONS.id }).optional(),
  ...pageQueryShape,
});
export type ExceptionsQuery = z.infer<typeof exceptionsQuerySchema>;

const cursorKeySchema = z.tuple([instantKeySchema, z.string().min(1).max(256)]);

export async function listExceptions(orm: MikroORM, query: ExceptionsQuery): Promise<Page<ExceptionItem>> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (query.status !== undefined) {
    where.push('status = ?');
    params.push(query.status);
  }
  if (query.code !== undefined) {
    where.push('code = ?');
    params.push(query.code);
  }
  if (query.projectId !== undefined) {
    where.push('project_id = ?');
    params.push(query.projectId);
  }
  if (query.cursor !== undefined) {
    const [firstSeenAt, id] = decodeCursor(query.cursor, cursorKeySchema);
    where.push(keysetAfter(['e.first_seen_at', 'e.id'], ['timestamptz', 'text']));
    params.push(firstSeenAt, id);
  }
  params.push(query.limit + 1);
  // ORDER BY names the table's columns: unqualified, `first_seen_at` would mean
  // the formatted text of the select list, which drops the microseconds.
  const rows = await orm.em.fork().execute<ExceptionRow[]>(
    `select id, code, status, record_kind, entry_id, revision, project_id, region, message, errors, record, raw, attempts,
            ${instantSql('first_seen_at')} as first_seen_at, ${instantSql('last_seen_at')} as last_seen_at,
            ${INSTANT_KEY_SQL('first_seen_at')} as cursor_at
       from billing_exception e
      ${where.length > 0 ? `where ${where.join(' and ')}` : ''}
      order by e.first_seen_at, e.id
      limit ?`,
    params,
  );
  return pageOf(rows, query.limit, itemOf, (row) => [row.cursor_at, row.id]);
}

function itemOf(row: ExceptionRow): ExceptionItem {
  return {
    id: row.id,
    code: row.code,
    status: row.status,
    recordKind: row.record_kind,
    entryId: row.entry_id,
    revision: row.revision,
    projectId: row.project_id,
    region: row.region,
    message: row.message,
    errors: row.errors,
    record: row.record ?? row.raw,
    firstSeenAt: row.first_seen_at,
    lastSeenAt: row.last_seen_at,
    attempts: row.attempts,
  };
}

export function registerExceptionsRoute(app: FastifyInstance, orm: MikroORM): void {
  app.get<{ Querystring: ExceptionsQuery }>('/v1/exceptions', { schema: { querystring: exceptionsQuerySchema } }, async (request) =>
    listExceptions(orm, request.query),
  );
}
