import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { REASONS } from '../../pipeline/model/records.ts';
import type { RecordKind } from '../../pipeline/model/types.ts';
import { openLedger } from '../../pipeline/state/orm.ts';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';
import { forEachBounded } from './bounded-concurrency.ts';
import { buildOpsServer, type OpsServerDeps, type OpsServerOptions } from './ops-server.ts';
import { decodeCursor, encodeCursor, pageOf } from './paging.ts';

interface Publication {
  kind: RecordKind;
  record: Record<string, unknown>;
  subject: string;
  msgId: string;
}

/** A JetStream stand-in: records what was published and how many acks were outstanding at most. */
class RecordingPublisher {
  readonly published: Publication[] = [];
  inFlight = 0;
  maxInFlight = 0;
  failOn: ((p: Publication) => boolean) | null = null;

  readonly publish = async (kind: RecordKind, record: object, subject: string, msgId: string): Promise<void> => {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      // An ack arrives on a later turn of the event loop, as a real one would.
      await new Promise((resolve) => setImmediate(resolve));
      const publication = { kind, record: record as Record<string, unknown>, subject, msgId };
      if (this.failOn?.(publication)) throw new Error('nats: timeout');
      this.published.push(publication);
    } finally {
      this.inFlight--;
    }
  };
}

interface Ops extends AsyncDisposable {
  db: TestDatabase;
  orm: MikroORM;
  app: FastifyInstance;
  baseUrl: string;
  publisher: RecordingPublisher;
  sql(text: string, params?: unknown[]): Promise<void>;
  fetchJson(path: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: unknown }>;
}

const PROJECT_REGIONS: Record<string, string> = { 'p-1': 'emea', 'p-2': 'amer' };

async function setup(overrides: Partial<OpsServerDeps> = {}, options: OpsServerOptions = {}): Promise<Ops> {
  const db = await createTestDatabase();
  const orm = await openLedger({ databaseUrl: db.url, poolSize: 4 });
  const publisher = new RecordingPublisher();
  const app = await buildOpsServer(
    {
      orm,
      publishIngest: publisher.publish,
      regionFor: (_kind, record) => {
        const region = PROJECT_REGIONS[String(record.projectId)];
        if (region === undefined) throw new Error(`project ${String(record.projectId)} is not known yet`);
        return region;
      },
      readiness: async () => ({ ready: true, checks: { database: true, nats: true } }),
      reevaluate: async () => true,
      closeBillingPeriod: async (periodEnd) => ({ periodEnd, invoices: [], failed: [] }),
      ...overrides,
    },
    options,
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('ops server has no TCP address');
  const baseUrl = `http://127.0.0.1:${address.port}`;
  return {
    db,
    orm,
    app,
    baseUrl,
    publisher,
    async sql(text, params = []) {
      await orm.em.fork().execute(text, params);
    },
    async fetchJson(path, init) {
      const response = await fetch(`${baseUrl}${path}`, init);
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: text === '' ? null : JSON.parse(text) };
    },
    async [Symbol.asyncDispose]() {
      await app.close();
      await orm.close();
      await db[Symbol.asyncDispose]();
      // The migrator leaves a schema snapshot per database name in the checkout;
      // this suite's databases are gone, so are their snapshots.
      await rm(join(orm.config.get('baseDir'), `.snapshot-${db.name}.json`), { force: true });
    },
  };
}

function postJson(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) };
}

const timeEntry = (overrides: Record<string, unknown> = {}) => ({
  entryId: 'e-1',
  source: 'harvest',
  revision: 1,
  consultantId: 'c-1',
  projectId: 'p-1',
  taskId: 't-1',
  workDate: '2026-11-20',
  hours: 7.5,
  status: 'approved',
  ...overrides,
});

describe('POST /v1/ingest/:kind', () => {
  it('publishes the valid records with their subjects and msg ids and rejects the rest by index and field', async () => {
    await using ops = await setup();
    const batch = [
      timeEntry(),
      timeEntry({ entryId: 'e-2', hours: 0 }),
      timeEntry({ entryId: 'e-3', projectId: 'p-2', region: 'apac' }),
      'not a record',
      timeEntry({ entryId: 'e-4', projectId: 'p-9' }),
      timeEntry({ revision: 2, hours: '8' }),
      timeEntry({ entryId: 'bad id', workDate: '2026-02-30' }),
    ];

    const { status, body } = await ops.fetchJson('/v1/ingest/time', postJson(batch));

    expect(status).toBe(202);
    expect(body).toEqual({
      accepted: 3,
      rejected: [
        { index: 1, errors: [{ field: 'hours', reason: REASONS.hoursRange }] },
        { index: 3, errors: [{ field: '(record)', reason: REASONS.notObject }] },
        { index: 4, errors: [{ field: 'region', reason: expect.stringContaining('project p-9 is not known yet') }] },
        {
          index: 6,
          errors: expect.arrayContaining([
            { field: 'entryId', reason: REASONS.id },
            { field: 'workDate', reason: REASONS.date },
          ]),
        },
      ],
    });
    const sent = ops.publisher.published.map((p) => ({ kind: p.kind, subject: p.subject, msgId: p.msgId, hours: p.record.hours }));
    expect(sent).toHaveLength(3);
    expect(sent).toEqual(
      expect.arrayContaining([
        { kind: 'time', subject: 'ingest.time.emea.p-1', msgId: 'time:p-1:e-1:1', hours: '7.50' },
        { kind: 'time', subject: 'ingest.time.apac.p-2', msgId: 'time:p-2:e-3:1', hours: '7.50' },
        { kind: 'time', subject: 'ingest.time.emea.p-1', msgId: 'time:p-1:e-1:2', hours: '8.00' },
      ]),
    );
    // Two revisions of one entry keep the order the sender gave them.
    const e1 = ops.publisher.published.filter((p) => p.record.entryId === 'e-1').map((p) => p.msgId);
    expect(e1).toEqual(['time:p-1:e-1:1', 'time:p-1:e-1:2']);
  });

  it('routes consultants and ratecards under global and projects under their own region', async () => {
    await using ops = await setup();
    const consultant = { consultantId: 'c-1', homeRegion: 'emea', costRate: '80.00', currency: 'EUR' };
    const ratecard = { contractId: 'k-1', role: 'Senior', rate: '150.00', currency: 'EUR', effectiveFrom: '2026-01-01' };
    const project = {
      projectId: 'p-7', customerId: 'cust-1', contractId: 'k-1', region: 'apac', currency: 'EUR', billingModel: 'tm',
      status: 'active', legalEntity: 'Acme GmbH', tasks: [{ taskId: 't-1', billable: true }],
    };

    expect((await ops.fetchJson('/v1/ingest/consultant', postJson([consultant]))).body).toEqual({ accepted: 1, rejected: [] });
    expect((await ops.fetchJson('/v1/ingest/ratecard', postJson([ratecard]))).body).toEqual({ accepted: 1, rejected: [] });
    expect((await ops.fetchJson('/v1/ingest/project', postJson([project]))).body).toEqual({ accepted: 1, rejected: [] });

    expect(ops.publisher.published.map((p) => [p.subject, p.msgId])).toEqual([
      ['ingest.consultant.global.c-1', 'consultant:c-1:c-1:1'],
      ['ingest.ratecard.global.k-1', 'ratecard:k-1:k-1:Senior:2026-01-01:1'],
      ['ingest.project.apac.p-7', 'project:p-7:p-7:1'],
    ]);
  });

  it('keeps at most 64 publishes in flight for a request of 10,000 records', async () => {
    await using ops = await setup();
    const batch = Array.from({ length: 10_000 }, (_, i) => timeEntry({ entryId: `e-${i}` }));

    const { status, body } = await ops.fetchJson('/v1/ingest/time', postJson(batch));

    expect(status).toBe(202);
    expect(body).toEqual({ accepted: 10_000, rejected: [] });
    expect(ops.publisher.published).toHaveLength(10_000);
    expect(new Set(ops.publisher.published.map((p) => p.msgId)).size).toBe(10_000);
    expect(ops.publisher.maxInFlight).toBeLessThanOrEqual(64);
    expect(ops.publisher.maxInFlight).toBeGreaterThan(1);
  });

  it('answers 413 with the limit when a request holds more records than allowed', async () => {
    await using ops = await setup({}, { maxRecordsPerRequest: 3 });
    const { status, body } = await ops.fetchJson('/v1/ingest/time', postJson(Array.from({ length: 4 }, (_, i) => timeEntry({ entryId: `e-${i}` }))));
    expect(status).toBe(413);
    expect(body).toEqual({ error: { code: 'too_many_records', message: expect.stringContaining('at most 3 records'), details: { records: 4, limit: 3 } } });
    expect(ops.publisher.published).toHaveLength(0);
  });

  it('answers 413 naming the byte limit when the body is too large', async () => {
    await using ops = await setup({}, { bodyLimitBytes: 1024 });
    const batch = Array.from({ length: 20 }, (_, i) => timeEntry({ entryId: `e-${i}` }));
    const { status, body } = await ops.fetchJson('/v1/ingest/time', postJson(batch));
    expect(status).toBe(413);
    expect(body).toEqual({
      error: { code: 'payload_too_large', message: expect.stringContaining('limit of 1024 bytes'), details: { limitBytes: 1024 } },
    });
    expect(ops.publisher.published).toHaveLength(0);
  });

  it('requires the bearer token when one is configured', async () => {
    await using ops = await setup({ ingestToken: 's3cret-token' });

    const missing = await ops.fetchJson('/v1/ingest/time', postJson([timeEntry()]));
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(missing.body).toEqual({ error: { code: 'unauthorized', message: expect.stringContaining('no Authorization header'), details: null } });

    const wrong = await ops.fetchJson('/v1/ingest/time', postJson([timeEntry()], { authorization: 'Bearer s3cret-tokem' }));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Bearer/);

    const basic = await ops.fetchJson('/v1/ingest/time', postJson([timeEntry()], { authorization: 'Basic s3cret-token' }));
    expect(basic.status).toBe(401);
    expect(ops.publisher.published).toHaveLength(0);

    const right = await ops.fetchJson('/v1/ingest/time', postJson([timeEntry()], { authorization: 'Bearer s3cret-token' }));
    expect(right.status).toBe(202);
    expect(ops.publisher.published).toHaveLength(1);
  });

  it('refuses unknown kinds, malformed JSON and bodies that are not arrays', async () => {
    await using ops = await setup();

    const unknownKind = await ops.fetchJson('/v1/ingest/invoice', postJson([]));
    expect(unknownKind.status).toBe(404);
    expect(unknownKind.body).toEqual({
      error: {
        code: 'unknown_record_kind',
        message: expect.stringContaining('consultant, project, assignment, ratecard, time, milestone'),
        details: { kind: 'invoice', kinds: ['consultant', 'project', 'assignment', 'ratecard', 'time', 'milestone'] },
      },
    });

    const badJson = await ops.fetchJson('/v1/ingest/time', postJson('[{"entryId": '));
    expect(badJson.status).toBe(400);
    expect(badJson.body).toEqual({ error: { code: 'invalid_json', message: 'request body is not valid JSON', details: null } });

    const notArray = await ops.fetchJson('/v1/ingest/time', postJson(timeEntry()));
    expect(notArray.status).toBe(400);
    expect(notArray.body).toEqual({
      error: { code: 'invalid_request', message: expect.stringContaining('must be a JSON array'), details: [{ field: '(value)', reason: expect.stringContaining('JSON array') }] },
    });

    const textBody = await ops.fetchJson('/v1/ingest/time', { method: 'POST', headers: { 'content-type': 'text/csv' }, body: 'a,b' });
    expect(textBody.status).toBe(415);
    expect(textBody.body).toMatchObject({ error: { code: 'unsupported_media_type' } });
    expect(ops.publisher.published).toHaveLength(0);
  });

  it('answers 503 when JetStream does not ack, saying a resend is safe', async () => {
    await using ops = await setup();
    ops.publisher.failOn = (p) => p.record.entryId === 'e-2';
    const { status, body } = await ops.fetchJson('/v1/ingest/time', postJson([timeEntry(), timeEntry({ entryId: 'e-2' })]));
    expect(status).toBe(503);
    expect(body).toMatchObject({ error: { code: 'publish_failed', message: expect.stringContaining('resending the whole request is safe') } });
  });
});

/** Inserts one exception row; `at` is its first_seen_at. */
async function insertException(ops: Ops, row: { id: string; code: string; status: string; projectId: string | null; at: string; entryId?: string; revision?: number }): Promise<void> {
  await ops.sql(
    `insert into billing_exception (id, code, status, record_kind, entry_id, revision, project_id, region, message, errors, record, attempts, first_seen_at, last_seen_at)
     values (?, ?, ?, 'time', ?, ?, ?, 'emea', ?, ?::jsonb, ?::jsonb, 2, ?, ?)`,
    [
      row.id, row.code, row.status, row.entryId ?? null, row.revision ?? null, row.projectId, `${row.code} for ${row.id}`,
      JSON.stringify([{ field: 'hours', reason: 'x' }]), JSON.stringify({ entryId: row.entryId ?? row.id }), row.at, row.at,
    ],
  );
}

describe('GET /v1/exceptions', () => {
  it('pages a filtered queue in a stable order across 3 pages, ending with a null nextCursor', async () => {
    await using ops = await setup();
    // 12 matching rows: four share one instant, so the id must break the tie; four
    // more share one millisecond, so a cursor cut to milliseconds would repeat rows.
    const matching: string[] = [];
    for (let i = 0; i < 12; i++) {
      const at = i < 4 ? '2026-11-20T10:00:00.000001Z' : i < 8 ? `2026-11-20T10:00:00.00500${i}Z` : `2026-11-2${i - 7}T09:00:00Z`;
      const id = `exc_m${String(11 - i).padStart(2, '0')}`;
      matching.push(id);
      await insertException(ops, { id, code: 'rate_missing', status: 'open', projectId: 'p-1', at });
    }
    await insertException(ops, { id: 'exc_other_project', code: 'rate_missing', status: 'open', projectId: 'p-2', at: '2026-11-20T10:00:00Z' });
    await insertException(ops, { id: 'exc_other_code', code: 'no_assignment', status: 'open', projectId: 'p-1', at: '2026-11-20T10:00:00Z' });
    await insertException(ops, { id: 'exc_dismissed', code: 'rate_missing', status: 'dismissed', projectId: 'p-1', at: '2026-11-20T10:00:00Z' });

    const ids: string[] = [];
    const pageSizes: number[] = [];
    let cursor: string | null = null;
    let last: unknown = null;
    for (let page = 0; page < 5; page++) {
      const query = new URLSearchParams({ status: 'open', code: 'rate_missing', projectId: 'p-1', limit: '5' });
      if (cursor !== null) query.set('cursor', cursor);
      const { status, body } = await ops.fetchJson(`/v1/exceptions?${query}`);
      expect(status).toBe(200);
      const result = body as { items: { id: string }[]; nextCursor: string | null };
      ids.push(...result.items.map((item) => item.id));
      pageSizes.push(result.items.length);
      last = result.items.at(-1);
      cursor = result.nextCursor;
      if (cursor === null) break;
    }

    expect(pageSizes).toEqual([5, 5, 2]);
    expect(cursor).toBeNull();
    // Oldest first; within one instant, by id.
    const sameMicrosecond = matching.slice(0, 4).sort();
    expect(ids).toEqual([...sameMicrosecond, ...matching.slice(4)]);
    expect(last).toEqual({
      id: 'exc_m00', code: 'rate_missing', status: 'open', recordKind: 'time', entryId: null, revision: null, projectId: 'p-1', region: 'emea',
      message: 'rate_missing for exc_m00', errors: [{ field: 'hours', reason: 'x' }], record: { entryId: 'exc_m00' },
      firstSeenAt: '2026-11-24T09:00:00.000Z', lastSeenAt: '2026-11-24T09:00:00.000Z', attempts: 2,
    });

    const unfiltered = (await ops.fetchJson('/v1/exceptions')).body as { items: unknown[]; nextCursor: string | null };
    expect(unfiltered.items).toHaveLength(15);
    expect(unfiltered.nextCursor).toBeNull();
    const dismissed = (await ops.fetchJson('/v1/exceptions?status=dismissed')).body as { items: { id: string }[] };
    expect(dismissed.items.map((i) => i.id)).toEqual(['exc_dismissed']);
  });

  it('refuses a limit above 1000, an unknown code and a forged cursor', async () => {
    await using ops = await setup();
    const tooMany = await ops.fetchJson('/v1/exceptions?limit=1001');
    expect(tooMany.status).toBe(400);
    expect(tooMany.body).toEqual({
      error: { code: 'invalid_request', message: 'invalid query: limit must be an integer from 1 to 1000', details: [{ field: 'limit', reason: 'must be an integer from 1 to 1000' }] },
    });
    expect((await ops.fetchJson('/v1/exceptions?limit=ten')).status).toBe(400);
    expect((await ops.fetchJson('/v1/exceptions?limit=1000')).status).toBe(200);

    const badCode = await ops.fetchJson('/v1/exceptions?code=bogus');
    expect(badCode.status).toBe(400);
    expect(badCode.body).toMatchObject({ error: { code: 'invalid_request', details: [{ field: 'code', reason: expect.stringContaining('rate_missing') }] } });

    for (const cursor of ['not-a-cursor', encodeCursor(['yesterday', 'exc_1']), encodeCursor([1])]) {
      const forged = await ops.fetchJson(`/v1/exceptions?cursor=${cursor}`);
      expect(forged.status).toBe(400);
      expect(forged.body).toMatchObject({ error: { code: 'invalid_cursor' } });
    }
  });
});

describe('GET /v1/entries/:entryId', () => {
  it('shows both revisions of a re-approved entry, the first charged then reversed, the second posted and invoiced', async () => {
    await using ops = await setup();
    const record = (revision: number, hours: string) => JSON.stringify(timeEntry({ revision, hours }));
    await ops.sql(
      `insert into entry_revision (entry_id, revision, project_id, region, status, stage, billable, role, rate_minor, amount_minor, currency,
         hours_hundredths, work_date, record, exception_code, trace_id, first_seen_at, approved_at, enriched_at, decided_at)
       values ('e-1', 1, 'p-1', 'emea', 'approved', 'reversed', true, 'Senior', 15000, 112500, 'EUR', 750, '2026-11-20', ?::jsonb, null,
               'trace-1', '2026-11-20T17:00:00Z', '2026-11-20T17:30:00Z', '2026-11-20T17:30:01.250Z', '2026-11-20T17:30:01.500Z'),
              ('e-1', 2, 'p-1', 'emea', 'approved', 'charged', true, 'Senior', 15000, 120000, 'EUR', 800, '2026-11-20', ?::jsonb, null,
               'trace-2', '2026-11-21T09:00:00Z', '2026-11-21T09:05:00Z', '2026-11-21T09:05:01Z', '2026-11-21T09:05:02Z')`,
      [record(1, '7.50'), record(2, '8.00')],
    );
    await ops.sql(
      `insert into erp_outbox (external_id, kind, project_id, region, entry_id, revision, work_date, hours_hundredths, amount_minor, currency, transaction, status, document_id, invoice_id, posted_at)
       values ('e-1:1:charge', 'charge', 'p-1', 'emea', 'e-1', 1, '2026-11-20', 750, 112500, 'EUR', '{}'::jsonb, 'posted', 'DOC-1', null, '2026-11-20T17:31:00Z'),
              ('e-1:1:reversal', 'reversal', 'p-1', 'emea', 'e-1', 1, '2026-11-20', -750, -112500, 'EUR', '{}'::jsonb, 'posted', 'DOC-2', null, '2026-11-21T09:06:00Z'),
              ('e-1:2:charge', 'charge', 'p-1', 'emea', 'e-1', 2, '2026-11-20', 800, 120000, 'EUR', '{}'::jsonb, 'posted', 'DOC-3', 'INV-1', '2026-11-21T09:06:00Z')`,
    );
    await insertException(ops, { id: 'exc_rate', code: 'rate_missing', status: 'resolved', projectId: 'p-1', at: '2026-11-20T17:10:00Z', entryId: 'e-1', revision: 1 });
    await ops.sql(
      `insert into invoice (invoice_id, project_id, region, customer_id, period_end, status, total_minor, currency, document_count, idempotency_key, created_at)
       values ('INV-1', 'p-1', 'emea', 'cust-1', '2026-11-27', 'issued', 120000, 'EUR', 1, 'invoice:p-1:2026-11-27', '2026-11-28T12:00:00Z')`,
    );

    const { status, body } = await ops.fetchJson('/v1/entries/e-1');

    expect(status).toBe(200);
    expect(body).toEqual({
      entryId: 'e-1',
      projectId: 'p-1',
      revisions: [
        {
          revision: 1, status: 'approved', stage: 'reversed',
          stages: {
            firstSeenAt: '2026-11-20T17:00:00.000Z', approvedAt: '2026-11-20T17:30:00.000Z', enrichedAt: '2026-11-20T17:30:01.250Z',
            decidedAt: '2026-11-20T17:30:01.500Z', postedAt: '2026-11-20T17:31:00.000Z', invoicedAt: null,
          },
          billable: true, role: 'Senior', rate: '150.00', amount: '1125.00', currency: 'EUR', hours: '7.50',
          exceptions: [{ id: 'exc_rate', code: 'rate_missing', status: 'resolved', message: 'rate_missing for exc_rate' }],
          erpDocuments: [
            { externalId: 'e-1:1:charge', kind: 'charge', documentId: 'DOC-1', status: 'posted', amount: '1125.00', hours: '7.50', invoiceId: null },
            { externalId: 'e-1:1:reversal', kind: 'reversal', documentId: 'DOC-2', status: 'posted', amount: '-1125.00', hours: '-7.50', invoiceId: null },
          ],
          documentIds: ['DOC-1', 'DOC-2'],
          invoiceId: null, invoiceStatus: null, traceId: 'trace-1', waitingFor: null,
        },
        {
          revision: 2, status: 'approved', stage: 'invoiced',
          stages: {
            firstSeenAt: '2026-11-21T09:00:00.000Z', approvedAt: '2026-11-21T09:05:00.000Z', enrichedAt: '2026-11-21T09:05:01.000Z',
            decidedAt: '2026-11-21T09:05:02.000Z', postedAt: '2026-11-21T09:06:00.000Z', invoicedAt: '2026-11-28T12:00:00.000Z',
          },
          billable: true, role: 'Senior', rate: '150.00', amount: '1200.00', currency: 'EUR', hours: '8.00',
          exceptions: [],
          erpDocuments: [{ externalId: 'e-1:2:charge', kind: 'charge', documentId: 'DOC-3', status: 'posted', amount: '1200.00', hours: '8.00', invoiceId: 'INV-1' }],
          documentIds: ['DOC-3'],
          invoiceId: 'INV-1', invoiceStatus: 'issued', traceId: 'trace-2', waitingFor: null,
        },
      ],
    });
  });

  it('shows a waiting revision and one known only from its quarantine', async () => {
    await using ops = await setup();
    await ops.sql(
      `insert into entry_revision (entry_id, revision, project_id, region, status, stage, waiting_for, hours_hundredths, work_date, record, first_seen_at)
       values ('e-5', 1, 'p-1', 'emea', 'approved', 'waiting', 'assignment', 400, '2026-11-20', '{}'::jsonb, '2026-11-20T08:00:00Z')`,
    );
    await insertException(ops, { id: 'exc_bad', code: 'invalid_record', status: 'open', projectId: 'p-1', at: '2026-11-20T09:00:00Z', entryId: 'e-5', revision: 2 });

    const { body } = await ops.fetchJson('/v1/entries/e-5');
    const revisions = (body as { revisions: { revision: number; stage: string; waitingFor: string | null; hours: string | null; exceptions: { id: string }[] }[] }).revisions;
    expect(revisions.map((r) => [r.revision, r.stage, r.waitingFor, r.hours])).toEqual([
      [1, 'waiting', 'assignment', '4.00'],
      [2, 'quarantined', null, null],
    ]);
    expect(revisions[1]?.exceptions.map((e) => e.id)).toEqual(['exc_bad']);
  });

  it('answers 404 for an unknown entry and 400 for an id that cannot exist', async () => {
    await using ops = await setup();
    const unknown = await ops.fetchJson('/v1/entries/e-404');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ error: { code: 'not_found', message: expect.stringContaining('entry e-404 is unknown'), details: { entryId: 'e-404' } } });

    const badId = await ops.fetchJson('/v1/entries/e%201');
    expect(badId.status).toBe(400);
    expect(badId.body).toEqual({ error: { code: 'invalid_request', message: `invalid path: entryId ${REASONS.id}`, details: [{ field: 'entryId', reason: REASONS.id }] } });
  });
});

describe('exception workbench actions', () => {
  it('puts a rejected ERP document back to pending on replay, audited, and a second replay says it was already replayed', async () => {
    let requeued = 0;
    await using ops = await setup({ onRequeued: () => { requeued++; } });
    await ops.sql(
      `insert into erp_outbox (external_id, kind, project_id, region, entry_id, revision, work_date, hours_hundredths, amount_minor, currency, transaction, status, last_error)
       values ('e-9:1:charge', 'charge', 'p-1', 'emea', 'e-9', 1, '2026-11-20', 750, 112500, 'EUR', '{"externalId": "e-9:1:charge"}'::jsonb, 'rejected', 'amount_mismatch')`,
    );
    await ops.sql(
      `insert into billing_exception (id, code, status, record_kind, project_id, region, message, record)
       values ('exc_erp', 'erp_rejected', 'open', 'erp_transaction', 'p-1', 'emea', 'the ERP rejected e-9:1:charge', '{"externalId": "e-9:1:charge"}'::jsonb)`,
    );

    const first = await ops.fetchJson('/v1/exceptions/exc_erp/replay', postJson({ by: 'dana' }));
    expect(first).toMatchObject({ status: 200, body: { exceptionId: 'exc_erp', replayed: true, status: 'replayed', action: 'requeued' } });
    expect(requeued).toBe(1);
    const [outbox] = await ops.orm.em.fork().execute<{ status: string; last_error: string | null }[]>(`select status, last_error from erp_outbox where external_id = 'e-9:1:charge'`);
    expect(outbox).toEqual({ status: 'pending', last_error: null });
    // Back in the poster's queue, due at once.
    const queued = await ops.orm.em.fork().execute<{ due: boolean }[]>(
      `select p.next_attempt_at <= now() as due from erp_pending p join erp_outbox o on o.id = p.id where o.external_id = 'e-9:1:charge'`);
    expect(queued).toEqual([{ due: true }]);

    const second = await ops.fetchJson('/v1/exceptions/exc_erp/replay', { method: 'POST' });
    expect(second).toMatchObject({ status: 200, body: { replayed: false, status: 'replayed', action: 'none', message: expect.stringContaining('already replayed by dana') } });
    expect(requeued).toBe(1);

    const detail = await ops.fetchJson('/v1/exceptions/exc_erp');
    expect((detail.body as { audit: unknown[] }).audit).toEqual([
      expect.objectContaining({ action: 'replay', actor: 'dana', before: expect.objectContaining({ status: 'open', outboxStatus: 'rejected' }), after: expect.objectContaining({ status: 'replayed', outboxStatus: 'pending' }) }),
    ]);
  });

  it('requires OPS_TOKEN for the actions when one is set, and answers the documented errors', async () => {
    await using ops = await setup({ opsToken: 'sekret' });
    await insertException(ops, { id: 'exc_a', code: 'no_assignment', status: 'open', projectId: 'p-1', at: '2026-11-20T09:00:00Z', entryId: 'e-a', revision: 1 });
    const unauthorized = await ops.fetchJson('/v1/exceptions/exc_a/dismiss', postJson({ by: 'x', reason: 'y' }));
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await ops.fetchJson('/v1/billing/close', postJson({ periodEnd: '2026-11-30' }))).status).toBe(401);
    // Reading stays open: the token guards what changes money or the queue.
    expect((await ops.fetchJson('/v1/exceptions/exc_a')).status).toBe(200);

    const auth = { authorization: 'Bearer sekret' };
    // No stored revision e-a/1: the replay cannot re-evaluate it and says so.
    expect(await ops.fetchJson('/v1/exceptions/exc_a/replay', postJson({}, auth))).toMatchObject({ status: 409, body: { error: { code: 'not_replayable', message: expect.stringContaining('ingest the entry again') } } });
    expect(await ops.fetchJson('/v1/exceptions/exc_a/dismiss', postJson({ by: ' ', reason: 'y' }, auth))).toMatchObject({ status: 400, body: { error: { details: [{ field: 'by' }] } } });
    expect(await ops.fetchJson('/v1/exceptions/replay', postJson({ code: 'nope' }, auth))).toMatchObject({ status: 400, body: { error: { details: [{ field: 'code' }] } } });
    expect(await ops.fetchJson('/v1/billing/close', postJson({ periodEnd: '2026-02-30' }, auth))).toMatchObject({ status: 400, body: { error: { details: [{ field: 'periodEnd' }] } } });
  });

  it('answers a close with failed projects as 502 close_incomplete carrying the report', async () => {
    await using ops = await setup({
      opsToken: 'sekret',
      closeBillingPeriod: async (periodEnd) => ({ periodEnd, invoices: [], failed: [{ projectId: 'p-1', error: 'ErpUnavailableError: gave up after 8 attempts' }] }),
    });
    const { status, body } = await ops.fetchJson('/v1/billing/close', postJson({ periodEnd: '2026-11-30' }, { authorization: 'Bearer sekret' }));
    expect(status).toBe(502);
    expect(body).toMatchObject({ error: { code: 'close_incomplete', message: expect.stringContaining('Closing again is safe'), details: { periodEnd: '2026-11-30', failed: [{ projectId: 'p-1' }] } } });
  });
});

describe('health, metrics and unknown routes', () => {
  it('answers liveness, readiness and Prometheus text', async () => {
    await using ops = await setup();
    expect(await ops.fetchJson('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await ops.fetchJson('/readyz')).toMatchObject({ status: 200, body: { status: 'ready', checks: { database: true, nats: true } } });

    const metrics = await fetch(`${ops.baseUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await metrics.text()).toContain('billstream_process_cpu_user_seconds_total');
  });

  it('answers 503 while not ready, and serves the metrics it is given', async () => {
    await using ops = await setup({
      readiness: async () => ({ ready: false, checks: { database: true, nats: false } }),
      metricsText: async () => '# TYPE billstream_records_total counter\nbillstream_records_total 3\n',
    });
    expect(await ops.fetchJson('/readyz')).toMatchObject({ status: 503, body: { status: 'not_ready', checks: { database: true, nats: false } } });
    expect(await (await fetch(`${ops.baseUrl}/metrics`)).text()).toContain('billstream_records_total 3');
  });

  it('answers unknown routes with the error shape', async () => {
    await using ops = await setup();
    const { status, body } = await ops.fetchJson('/v1/nope?x=1');
    expect(status).toBe(404);
    expect(body).toEqual({ error: { code: 'not_found', message: 'no route GET /v1/nope', details: { method: 'GET', path: '/v1/nope' } } });
  });
});

describe('paging helpers', () => {
  it('round-trips a cursor and pages limit + 1 rows', () => {
    const rows = [1, 2, 3].map((n) => ({ at: `t${n}`, id: `r${n}` }));
    const page = pageOf(rows, 2, (r) => r.id, (r) => [r.at, r.id]);
    expect(page.items).toEqual(['r1', 'r2']);
    expect(decodeCursor(page.nextCursor ?? '', z.tuple([z.string(), z.string()]))).toEqual(['t2', 'r2']);
    expect(pageOf(rows, 3, (r) => r.id, (r) => [r.at, r.id]).nextCursor).toBeNull();
  });

  it('bounds concurrency and stops starting work after a failure', async () => {
    let inFlight = 0;
    let max = 0;
    const started: number[] = [];
    const run = forEachBounded(Array.from({ length: 50 }, (_, i) => i), 4, async (i) => {
      started.push(i);
      inFlight++;
      max = Math.max(max, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      if (i === 10) throw new Error('boom');
    });
    await expect(run).rejects.toThrow('boom');
    expect(max).toBe(4);
    expect(started.length).toBeLessThan(50);
  });
});
