// POST /v1/ingest/{kind} (CONTRACT §5): a JSON array of canonical records in,
// each validated on its own; the valid ones are published to
// `ingest.<kind>.<region>.<key>` with their default Nats-Msg-Id, the invalid ones
// are answered by index with every field and reason. The answer (202) comes only
// after JetStream acked every accepted record, so "accepted" means durable.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { defaultMsgId, isRecordKind, recordId, recordKey, REGION_PATTERN, validateRecord } from '../../pipeline/model/records.ts';
import { RECORD_KINDS, type FieldError, type RecordKind } from '../../pipeline/model/types.ts';
import { forEachBounded } from './bounded-concurrency.ts';
import { errorBodySchema, HTTP_ERROR_CODES, HttpError } from './errors.ts';

export interface IngestDeps {
  publishIngest(kind: RecordKind, record: object, subject: string, msgId: string): Promise<void>;
  regionFor(kind: RecordKind, record: Record<string, unknown>): string;
  ingestToken?: string;
  /** Observes each answered request (metrics): records accepted and rejected. */
  onIngested?: (kind: RecordKind, accepted: number, rejected: number) => void;
}

export interface IngestLimits {
  maxRecordsPerRequest: number;
  /** Publishes awaiting their JetStream ack at any moment. */
  publishConcurrency: number;
}

export interface IngestRejection {
  index: number;
  errors: FieldError[];
}

export interface IngestResult {
  accepted: number;
  rejected: IngestRejection[];
}

interface Publication {
  record: Record<string, unknown>;
  subject: string;
  msgId: string;
}

/** Kinds whose records belong to no region; CONTRACT §2 routes them under `global`. */
const GLOBAL_KINDS: ReadonlySet<RecordKind> = new Set(['consultant', 'ratecard']);

const paramsSchema = z.object({ kind: z.enum(RECORD_KINDS) });
// Each record is validated by its kind's schema, so one bad record rejects only
// itself, by index; the body schema only checks that the body is an array.
const bodySchema = z.array(z.unknown(), { error: 'must be a JSON array of records, e.g. [{...}, {...}]' })
  .describe('Canonical records of the kind (CONTRACT §2; components.schemas holds each kind\'s record schema)');

export const ingestResultSchema = z.object({
  accepted: z.number().int().describe('Records published to JetStream and acked'),
  rejected: z.array(z.object({
    index: z.number().int().describe('Position of the record in the request array'),
    errors: z.array(z.object({ field: z.string(), reason: z.string() })),
  })).describe('Records refused, each with every field and reason'),
});

/**
 * True when the Authorization header carries `Bearer <expected>`.
 *
 * Both sides are hashed first so the comparison takes the same time whatever
 * the given token's length or content, leaking neither through timing.
 */
export function bearerTokenMatches(authorization: string | undefined, expected: string): boolean {
  const match = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
  const given = createHash('sha256').update(match?.[1] ?? '').digest();
  const wanted = createHash('sha256').update(expected).digest();
  return timingSafeEqual(given, wanted) && match !== null;
}

/**
 * The region token a valid record is published under: its own `region` when it
 * gives one, `global` for consultants and ratecards, else (time, milestone,
 * assignment) the region of its project as `regionFor` knows it.
 */
function regionOf(kind: RecordKind, record: Record<string, unknown>, regionFor: IngestDeps['regionFor']): { region: string } | { error: FieldError } {
  if (typeof record.region === 'string') return { region: record.region };
  if (GLOBAL_KINDS.has(kind)) return { region: 'global' };
  let derived: string;
  try {
    derived = regionFor(kind, record);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { error: { field: 'region', reason: `is not given and could not be derived from the project (${why}); give the record a "region"` } };
  }
  if (!REGION_PATTERN.test(derived)) {
    return { error: { field: 'region', reason: `is not given and the project's region ${JSON.stringify(derived)} is no valid region token; give the record a "region"` } };
  }
  return { region: derived };
}

export function registerIngestRoute(app: FastifyInstance, deps: IngestDeps, limits: IngestLimits): void {
  // An empty INGEST_TOKEN means none: a blank secret would only lock everyone out.
  const token = deps.ingestToken === undefined || deps.ingestToken === '' ? null : deps.ingestToken;

  // Checked on request, before the body is read: a caller without the token, or
  // naming no kind, should not get to upload 16 MiB first.
  const admit = async (request: FastifyRequest): Promise<void> => {
    if (token !== null && !bearerTokenMatches(request.headers.authorization, token)) {
      const reason = request.headers.authorization === undefined ? 'no Authorization header was sent' : 'the bearer token does not match';
      throw new HttpError(401, HTTP_ERROR_CODES.unauthorized, `ingest requires "Authorization: Bearer <INGEST_TOKEN>"; ${reason}`);
    }
    const { kind } = request.params as { kind?: string };
    if (kind === undefined || !isRecordKind(kind)) {
      throw new HttpError(404, HTTP_ERROR_CODES.unknownRecordKind, `unknown record kind ${JSON.stringify(kind ?? '')}; POST to /v1/ingest/{kind} with kind one of ${RECORD_KINDS.join(', ')}`, {
        details: { kind: kind ?? null, kinds: RECORD_KINDS },
      });
    }
  };

  app.post<{ Params: z.infer<typeof paramsSchema>; Body: z.infer<typeof bodySchema> }>(
    '/v1/ingest/:kind',
    {
      schema: {
        summary: 'Ingest records of one kind',
        description: 'A JSON array of canonical records; each valid one is published to ingest.<kind>.<region>.<key> with its default Nats-Msg-Id (resending is safe), '
          + 'each invalid one is answered by index with every field and reason. 202 once JetStream acked every accepted record. '
          + `At most ${limits.maxRecordsPerRequest} records per request (413 too_many_records) and the body limit (413 payload_too_large).`,
        tags: ['ingest'],
        security: ['ingestToken'],
        params: paramsSchema,
        body: bodySchema,
        response: {
          202: ingestResultSchema, 400: errorBodySchema, 401: errorBodySchema, 404: errorBodySchema, 413: errorBodySchema, 415: errorBodySchema, 503: errorBodySchema,
        },
      },
      onRequest: admit,
    },
    async (request, reply) => {
      const { kind } = request.params;
      const records = request.body;
      if (records.length > limits.maxRecordsPerRequest) {
        throw new HttpError(413, HTTP_ERROR_CODES.tooManyRecords, `the request holds ${records.length} records; at most ${limits.maxRecordsPerRequest} records are accepted per request`, {
          details: { records: records.length, limit: limits.maxRecordsPerRequest },
        });
      }

      const rejected: IngestRejection[] = [];
      // Records with the same identity (say revisions 1 and 2 of one entry) are
      // published one after the other in array order, so the stream holds them
      // as the sender listed them; different records go out concurrently.
      const byIdentity = new Map<string, Publication[]>();
      records.forEach((raw, index) => {
        const validation = validateRecord(kind, raw);
        if (!validation.ok) {
          rejected.push({ index, errors: validation.errors });
          return;
        }
        const record = validation.record as Record<string, unknown>;
        const routed = regionOf(kind, record, deps.regionFor);
        if ('error' in routed) {
          rejected.push({ index, errors: [routed.error] });
          return;
        }
        const identity = `${kind}:${recordId(kind, validation.record)}`;
        const publication = {
          record,
          subject: `ingest.${kind}.${routed.region}.${recordKey(kind, validation.record)}`,
          msgId: defaultMsgId(kind, validation.record),
        };
        const group = byIdentity.get(identity);
        if (group) group.push(publication);
        else byIdentity.set(identity, [publication]);
      });

      let published = 0;
      try {
        await forEachBounded([...byIdentity.values()], limits.publishConcurrency, async (group) => {
          for (const p of group) {
            await deps.publishIngest(kind, p.record, p.subject, p.msgId);
            published++;
          }
        });
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        request.log.error({ err, published }, 'ingest publish failed');
        throw new HttpError(503, HTTP_ERROR_CODES.publishFailed, `publishing to JetStream failed after ${published} records (${why}); resending the whole request is safe, JetStream drops records it already holds by their Nats-Msg-Id`, {
          details: { published, rejected },
          cause: err,
        });
      }

      const result: IngestResult = { accepted: published, rejected };
      deps.onIngested?.(kind, published, rejected.length);
      return reply.code(202).send(result);
    },
  );
}
