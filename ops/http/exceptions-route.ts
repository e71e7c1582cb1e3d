// The exception workbench over HTTP (CONTRACT §5): the queue (GET /v1/exceptions,
// oldest first, filtered by status, code and project, paged by (first_seen_at,
// id)), one exception with its audit trail, and the replay and dismiss actions,
// one by one or in bulk. The actions' rules live in pipeline/exception-workbench.ts.
import type { MikroORM } from '@mikro-orm/postgresql';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ID_PATTERN, REASONS } from '../../pipeline/model/records.ts';
import { EXCEPTION_CODES, type FieldError } from '../../pipeline/model/types.ts';
import { ExceptionWorkbench, isWorkbenchError, WORKBENCH_ERROR_CODES, type WorkbenchDeps } from '../../pipeline/exception-workbench.ts';
import { requireBearer } from './auth.ts';
import { errorBodySchema, HTTP_ERROR_CODES, HttpError } from './errors.ts';
import { instantSql } from './ledger-sql.ts';
import { decodeCursor, INSTANT_KEY_SQL, instantKeySchema, keysetAfter, pageOf, pageQueryShape, type Page } from './paging.ts';

/** The states of an exception in the workbench. */
export const EXCEPTION_STATUSES = ['open', 'replayed', 'dismissed', 'resolved'] as const;

export const exceptionItemSchema = z.object({
  id: z.string(),
  code: z.string(),
  status: z.string().describe(`One of ${EXCEPTION_STATUSES.join(', ')}`),
  recordKind: z.string(),
  entryId: z.string().nullable(),
  revision: z.number().int().nullable(),
  projectId: z.string().nullable(),
  region: z.string(),
  message: z.string(),
  errors: z.array(z.object({ field: z.string(), reason: z.string() })).nullable(),
  record: z.unknown().describe('The record as received; its raw text when it was not even JSON'),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  attempts: z.number().int(),
});
export type ExceptionItem = z.infer<typeof exceptionItemSchema>;

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


const auditSnapshotSchema = z.object({
  status: z.string(),
  attempts: z.number().int(),
  resolvedAt: z.string().nullable(),
  resolvedBy: z.string().nullable(),
  resolutionNote: z.string().nullable(),
  outboxStatus: z.string().nullable().optional().describe('erp_rejected only: the status of its ERP outbox row'),
});

export const exceptionDetailSchema = exceptionItemSchema.extend({
  audit: z.array(z.object({
    action: z.enum(['replay', 'dismiss']),
    actor: z.string().describe('Who acted (the request\'s "by")'),
    reason: z.string().nullable(),
    at: z.string(),
    before: auditSnapshotSchema,
    after: auditSnapshotSchema,
  })).describe('Every workbench action on the exception, oldest first'),
}).describe('One exception with its audit trail');

const replayResultSchema = z.object({
  exceptionId: z.string(),
  code: z.string(),
  replayed: z.boolean().describe('False when it was already replayed or resolved and nothing was done'),
  status: z.string().describe('The exception\'s status now'),
  action: z.enum(['reevaluated', 'requeued', 'none']).describe('reevaluated: the time entry goes through enrichment and its actor again; requeued: the ERP document is posted again'),
  message: z.string(),
});

const dismissResultSchema = z.object({
  exceptionId: z.string(),
  code: z.string(),
  dismissed: z.boolean().describe('False when it was already dismissed: the answer is that first dismissal'),
  status: z.literal('dismissed'),
  dismissedBy: z.string(),
  dismissedAt: z.string(),
  reason: z.string(),
  message: z.string(),
});

const bulkReplayResultSchema = z.object({
  code: z.string(),
  projectId: z.string().nullable(),
  matched: z.number().int(),
  replayed: z.array(z.string()).describe('Ids of the exceptions replayed'),
  skipped: z.array(z.object({ exceptionId: z.string(), reason: z.string() })),
  truncated: z.boolean().describe('More open exceptions match than one call replays; call again'),
});

const BY_REASON = 'must be who acts: 1 to 128 characters';
const by = z.string({ error: BY_REASON }).trim().min(1, { error: BY_REASON }).max(128, { error: BY_REASON });
const idParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be an exception id as GET /v1/exceptions lists it' }) });
const replayBody = z.object({
  by: by.optional().describe('Who replays; recorded in the audit trail. @default "ops-api"'),
  force: z.boolean({ error: 'must be true or false' }).optional().describe('Replay an exception already replayed once more'),
}).nullish(); // fastify hands a request without a body over as null
const dismissBody = z.object({
  by: by.describe('Who dismisses; recorded in the audit trail'),
  reason: z.string({ error: 'must say why: 1 to 2000 characters' }).trim().min(1, { error: 'must say why: 1 to 2000 characters' }).max(2000, { error: 'must say why: 1 to 2000 characters' }),
});
const bulkReplayBody = z.object({
  code: z.enum(EXCEPTION_CODES, { error: `must be one of ${EXCEPTION_CODES.join(', ')}` }),
  projectId: z.string({ error: REASONS.id }).regex(ID_PATTERN, { error: REASONS.id }).optional(),
  by: by.optional().describe('Who replays. @default "ops-api"'),
});

const DEFAULT_ACTOR = 'ops-api';

/** One exception as listed, or null. */
export async function readException(orm: MikroORM, id: string): Promise<ExceptionItem | null> {
  const [row] = await orm.em.fork().execute<ExceptionRow[]>(
    `select id, code, status, record_kind, entry_id, revision, project_id, region, message, errors, record, raw, attempts,
            ${instantSql('first_seen_at')} as first_seen_at, ${instantSql('last_seen_at')} as last_seen_at, '' as cursor_at
       from billing_exception where id = ?`,
    [id],
  );
  return row ? itemOf(row) : null;
}

function httpErrorOf(err: unknown): unknown {
  if (!isWorkbenchError(err)) return err;
  const details = { exceptionId: err.exceptionId };
  switch (err.code) {
    case WORKBENCH_ERROR_CODES.notFound: return new HttpError(404, HTTP_ERROR_CODES.notFound, err.message, { details, cause: err });
    case WORKBENCH_ERROR_CODES.notReplayable: return new HttpError(409, HTTP_ERROR_CODES.notReplayable, err.message, { details, cause: err });
    case WORKBENCH_ERROR_CODES.dismissed: return new HttpError(409, HTTP_ERROR_CODES.exceptionDismissed, err.message, { details, cause: err });
    case WORKBENCH_ERROR_CODES.resolved: return new HttpError(409, HTTP_ERROR_CODES.exceptionResolved, err.message, { details, cause: err });
  }
}

export interface ExceptionsRouteDeps extends WorkbenchDeps {
  orm: MikroORM;
  /** OPS_TOKEN: when set, the actions require `Authorization: Bearer <token>`. */
  opsToken?: string;
}

export function registerExceptionsRoute(app: FastifyInstance, deps: ExceptionsRouteDeps): void {
  const { orm } = deps;
  const workbench = new ExceptionWorkbench(orm, deps);
  const guard = requireBearer(deps.opsToken, 'OPS_TOKEN');
  const tags = ['exceptions'];
  const security = ['opsToken'];

  app.get<{ Querystring: ExceptionsQuery }>('/v1/exceptions', {
    schema: {
      summary: 'The exception queue',
      description: 'Exceptions oldest first, filtered by status, code and project; `{items, nextCursor}` paged by `limit` and `cursor`.',
      tags,
      querystring: exceptionsQuerySchema,
      response: { 200: z.object({ items: z.array(exceptionItemSchema), nextCursor: z.string().nullable() }), 400: errorBodySchema },
    },
  }, async (request) => listExceptions(orm, request.query));

  app.get<{ Params: z.infer<typeof idParams> }>('/v1/exceptions/:id', {
    schema: {
      summary: 'One exception and its audit trail',
      tags,
      params: idParams,
      response: { 200: exceptionDetailSchema, 404: errorBodySchema },
    },
  }, async (request) => {
    const [item, audit] = await Promise.all([readException(orm, request.params.id), workbench.auditTrail(request.params.id)]);
    if (item === null || audit === null) {
      throw new HttpError(404, HTTP_ERROR_CODES.notFound, `exception ${request.params.id} does not exist; list exceptions with GET /v1/exceptions`, { details: { exceptionId: request.params.id } });
    }
    return { ...item, audit };
  });

  app.post<{ Params: z.infer<typeof idParams>; Body: z.infer<typeof replayBody> }>('/v1/exceptions/:id/replay', {
    onRequest: guard,
    schema: {
      summary: 'Replay an exception against today\'s reference data',
      description: 'A time-entry exception is re-evaluated (enrichment and its project\'s actor run again); the exception turns `replayed`, then `resolved` when the entry succeeds or `open` again when it fails. '
        + 'An erp_rejected exception puts its ERP document back to pending. An invalid_record answers 409: fix the record and ingest it again. '
        + 'Replaying an exception already replayed is a 200 with `replayed: false` (send `force: true` to run it again). Audited.',
      tags,
      security,
      params: idParams,
      body: replayBody,
      response: { 200: replayResultSchema, 401: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema },
    },
  }, async (request) => {
    try {
      return await workbench.replay(request.params.id, { by: request.body?.by ?? DEFAULT_ACTOR, force: request.body?.force ?? false });
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  app.post<{ Params: z.infer<typeof idParams>; Body: z.infer<typeof dismissBody> }>('/v1/exceptions/:id/dismiss', {
    onRequest: guard,
    schema: {
      summary: 'Dismiss an exception, saying who and why',
      description: 'Dismissing twice is the same dismissal: the second call answers the first one (`dismissed: false`) and records nothing. A resolved exception answers 409. Audited.',
      tags,
      security,
      params: idParams,
      body: dismissBody,
      response: { 200: dismissResultSchema, 400: errorBodySchema, 401: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema },
    },
  }, async (request) => {
    try {
      return await workbench.dismiss(request.params.id, { by: request.body.by, reason: request.body.reason });
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  app.post<{ Body: z.infer<typeof bulkReplayBody> }>('/v1/exceptions/replay', {
    onRequest: guard,
    schema: {
      summary: 'Replay every open exception of a code (and project)',
      description: 'Oldest first, at most 1000 per call (`truncated` says when more remain); each is replayed as by POST /v1/exceptions/{id}/replay, and one that cannot be is listed in `skipped` with the reason.',
      tags,
      security,
      body: bulkReplayBody,
      response: { 200: bulkReplayResultSchema, 400: errorBodySchema, 401: errorBodySchema },
    },
  }, async (request) =>
    workbench.replayMatching({ code: request.body.code, projectId: request.body.projectId ?? null, by: request.body.by ?? DEFAULT_ACTOR }));
}
