// POST /v1/webhooks/{source}: time entries pushed by a time-capture source.
// The body is signed: header `X-Billstream-Signature: t=<unix>,v1=<hex>`, the
// hex being HMAC-SHA256 with the source's secret (WEBHOOK_SECRET_<SOURCE>) over
// `<t>.<raw body>`. A missing or wrong signature, or a timestamp more than 300 s
// away, answers 401 before the body is even parsed, and nothing is ingested.
// Verified entries are mapped like pulled ones and published with their
// idempotency key as Nats-Msg-Id, so a replayed delivery changes nothing.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { recordKey, REGION_PATTERN } from '../../pipeline/model/records.ts';
import type { FieldError, RecordByKind, RecordKind } from '../../pipeline/model/types.ts';
import { forEachBounded } from './bounded-concurrency.ts';
import { errorBodySchema, HTTP_ERROR_CODES, HttpError } from './errors.ts';

export const SIGNATURE_HEADER = 'x-billstream-signature';
/** How far the signed timestamp may be from now, either way. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;
const SOURCE_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;

export interface WebhookRecord {
  kind: RecordKind;
  record: Record<string, unknown>;
  msgId: string;
  /** The entry's id at the source, for the answer. */
  sourceId: string;
}

export interface WebhookMapping {
  records: WebhookRecord[];
  skipped: Array<{ sourceId: string; reason: string }>;
  invalid: Array<{ sourceId: string; errors: FieldError[] }>;
}

export interface WebhookDeps {
  /** The secret of a source (WEBHOOK_SECRET_<SOURCE>); undefined or empty: that source's webhooks are off. */
  webhookSecret(source: string): string | undefined;
  /**
   * Maps a verified payload to canonical records. Throws an error whose name is
   * `WebhookPayloadError` for a body it cannot read (answered 400).
   */
  mapWebhook(source: string, payload: unknown, receivedAt: Date): Promise<WebhookMapping>;
  publishIngest(kind: RecordKind, record: object, subject: string, msgId: string): Promise<void>;
  regionFor(kind: RecordKind, record: Record<string, unknown>): string;
  /** Publishes awaiting their ack at once. @default 16 */
  publishConcurrency?: number;
  /** @default Date.now */
  now?: () => number;
}

/** The signature header's value for a body, as a sender computes it. */
export function signWebhook(secret: string, body: string | Buffer, timestampSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
  return `t=${timestampSeconds},v1=${mac}`;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * Checks a signature header against the raw body: timestamp within the
 * tolerance, and one `v1` equal to the expected HMAC, compared in constant time.
 */
export function verifyWebhookSignature(header: string | undefined, rawBody: Buffer, secret: string, nowMs: number): SignatureCheck {
  if (!header) return { ok: false, reason: 'no X-Billstream-Signature header was sent' };
  let timestamp: number | null = null;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [key, value = ''] = part.trim().split('=', 2) as [string, string?];
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/i.test(value)) signatures.push(value.toLowerCase());
  }
  if (timestamp === null || signatures.length === 0) return { ok: false, reason: 'the X-Billstream-Signature header must read t=<unix seconds>,v1=<hex HMAC-SHA256>' };
  if (Math.abs(nowMs / 1000 - timestamp) > SIGNATURE_TOLERANCE_SECONDS) {
    return { ok: false, reason: `the signature's timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} s from now` };
  }
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest();
  let match = false;
  for (const signature of signatures) {
    // Every candidate is compared, so the time taken says nothing about which one (if any) matched.
    if (timingSafeEqual(expected, Buffer.from(signature, 'hex'))) match = true;
  }
  return match ? { ok: true } : { ok: false, reason: 'the signature does not match the body' };
}

const GLOBAL_KINDS: ReadonlySet<RecordKind> = new Set(['consultant', 'ratecard']);

const paramsSchema = z.object({ source: z.string().describe('The time-capture source: harvest, toggl, clockify or kimai.') });

const fieldErrorSchema = z.object({ field: z.string(), reason: z.string() });
export const webhookResultSchema = z
  .object({
    accepted: z.number().int().describe('Records published (each under its idempotency key).'),
    skipped: z.array(z.object({ sourceId: z.string(), reason: z.string() })).describe('Entries left for later, e.g. running timers.'),
    rejected: z.array(z.object({ sourceId: z.string(), errors: z.array(fieldErrorSchema) })).describe('Entries that could not be mapped, with every field and reason.'),
  })
  .describe('What became of the entries of the payload');

function subjectOf(record: WebhookRecord, regionFor: WebhookDeps['regionFor']): { subject: string } | { error: FieldError } {
  let region: string;
  if (typeof record.record.region === 'string') region = record.record.region;
  else if (GLOBAL_KINDS.has(record.kind)) region = 'global';
  else {
    try {
      region = regionFor(record.kind, record.record);
    } catch (err) {
      return { error: { field: 'region', reason: `is not mapped and the project's region is unknown (${err instanceof Error ? err.message : String(err)}); map a "region" in the source's template` } };
    }
  }
  if (!REGION_PATTERN.test(region)) return { error: { field: 'region', reason: `${JSON.stringify(region)} is no region token; map a "region" in the source's template` } };
  const key = recordKey(record.kind, record.record as unknown as RecordByKind[RecordKind]);
  return { subject: `ingest.${record.kind}.${region}.${key}` };
}

export function registerWebhooksRoute(app: FastifyInstance, deps: WebhookDeps): void {
  const now = deps.now ?? Date.now;
  // Encapsulated: only this route reads bodies raw (the signature covers the exact bytes).
  void app.register(async (scope) => {
    // Response schemas here are zod (documentation for /openapi.json), never handed to fastify's serializer.
    scope.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data));
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

    scope.post('/v1/webhooks/:source', {
      schema: {
        summary: 'Time entries pushed by a time-capture source',
        description: 'The body is one native time entry of the source, a list of them, or an envelope with "payload". It must be signed: '
          + 'X-Billstream-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<raw body>" with WEBHOOK_SECRET_<SOURCE>>; '
          + `a wrong signature or a timestamp more than ${SIGNATURE_TOLERANCE_SECONDS} s off answers 401 and ingests nothing. `
          + 'Entries are mapped through the source\'s template and published with their idempotency keys, so a replayed delivery changes nothing.',
        tags: ['ingest'],
        params: paramsSchema,
        response: { 202: webhookResultSchema, 400: errorBodySchema, 401: errorBodySchema, 404: errorBodySchema, 503: errorBodySchema },
      },
    }, async (request: FastifyRequest<{ Params: z.infer<typeof paramsSchema> }>, reply) => {
      const { source } = request.params;
      const secret = SOURCE_PATTERN.test(source) ? deps.webhookSecret(source) : undefined;
      if (!secret) {
        throw new HttpError(404, HTTP_ERROR_CODES.notFound, `webhooks from ${JSON.stringify(source)} are not enabled; set WEBHOOK_SECRET_${source.toUpperCase().replace(/-/g, '_')}`, {
          details: { source },
        });
      }
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const check = verifyWebhookSignature(request.headers[SIGNATURE_HEADER] as string | undefined, raw, secret, now());
      if (!check.ok) throw new HttpError(401, HTTP_ERROR_CODES.unauthorized, `webhook from ${source} refused: ${check.reason}; nothing was ingested`);

      let payload: unknown;
      try {
        payload = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new HttpError(400, HTTP_ERROR_CODES.invalidJson, 'request body is not valid JSON');
      }
      let mapping: WebhookMapping;
      try {
        mapping = await deps.mapWebhook(source, payload, new Date(now()));
      } catch (err) {
        if (err instanceof Error && err.name === 'WebhookPayloadError') throw new HttpError(400, HTTP_ERROR_CODES.invalidRequest, err.message);
        throw err;
      }

      const rejected = mapping.invalid.map((i) => ({ sourceId: i.sourceId, errors: i.errors }));
      const publications: Array<{ record: WebhookRecord; subject: string }> = [];
      for (const record of mapping.records) {
        const routed = subjectOf(record, deps.regionFor);
        if ('error' in routed) rejected.push({ sourceId: record.sourceId, errors: [routed.error] });
        else publications.push({ record, subject: routed.subject });
      }
      let published = 0;
      try {
        await forEachBounded(publications, deps.publishConcurrency ?? 16, async ({ record, subject }) => {
          await deps.publishIngest(record.kind, record.record, subject, record.msgId);
          published++;
        });
      } catch (err) {
        throw new HttpError(503, HTTP_ERROR_CODES.publishFailed, `publishing to JetStream failed after ${published} records (${err instanceof Error ? err.message : String(err)}); the source may deliver again safely, the records carry their idempotency keys`, {
          details: { published },
          cause: err,
        });
      }
      return reply.code(202).send({ accepted: published, skipped: mapping.skipped, rejected });
    });
  });
}
