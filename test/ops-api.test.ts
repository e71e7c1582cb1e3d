// The ops API (CONTRACT §5) through real HTTP on a running billstream: real
// nats-server, PostgreSQL and the ERP sandbox. Ingest, the exception workbench,
// the period close and invoice status, project billing, KPIs, /metrics, the
// OpenAPI document and the posting-SLA alert, each proven by what a finance user
// or an SRE would see.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './support/billstream.ts';
import { assignment, consultant, entry, project, ratecards, subjects } from './support/fixtures.ts';
import { parseExposition } from './support/prometheus.ts';

const INGEST_TOKEN = 'ingest-secret';
const OPS_TOKEN = 'ops-secret';

interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
}

async function call<T = Record<string, unknown>>(h: Harness, method: string, path: string, body?: unknown, token?: string): Promise<Answer<T>> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${h.runtime?.httpUrl ?? ''}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as T };
}

const ingest = (h: Harness, kind: string, records: unknown[]) => call<{ accepted: number; rejected: { index: number; errors: { field: string; reason: string }[] }[] }>(h, 'POST', `/v1/ingest/${kind}`, records, INGEST_TOKEN);
const ops = <T = Record<string, unknown>>(h: Harness, path: string, body?: unknown) => call<T>(h, 'POST', path, body, OPS_TOKEN);

async function metricsOf(h: Harness) {
  const response = await fetch(`${h.runtime?.httpUrl ?? ''}/metrics`);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

/** Every message of a stream, as JSON, with its subject. */
async function streamMessages(h: Harness, stream: string): Promise<{ subject: string; data: Record<string, unknown> }[]> {
  const s = await h.js.streams.get(stream);
  const info = await s.info();
  const found: { subject: string; data: Record<string, unknown> }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await s.getMessage({ seq }).catch(() => null);
    if (m) found.push({ subject: m.subject, data: m.json<Record<string, unknown>>() });
  }
  return found;
}

interface ExceptionListItem { id: string; code: string; status: string; entryId: string | null; attempts: number; projectId: string | null }

async function exceptionOf(h: Harness, query: string, entryId: string): Promise<ExceptionListItem | undefined> {
  const { body } = await call<{ items: ExceptionListItem[] }>(h, 'GET', `/v1/exceptions?${query}`);
  return body.items.find((e) => e.entryId === entryId);
}

async function settled(h: Harness): Promise<void> {
  await h.waitFor(async () => {
    const { rows } = await h.sql.query<{ n: string }>(`select count(*) as n from erp_outbox where status = 'pending'`);
    return Number(rows[0]?.n) === 0;
  }, 30_000, 'ERP outbox drained');
}

describe('ops API on the running pipeline', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ REFERENCE_GRACE_SECONDS: '2', INGEST_TOKEN, OPS_TOKEN, INVOICE_POLL_SECONDS: '0.3' });
    await h.startRuntime();
  });
  afterAll(async () => {
    await h?.[Symbol.asyncDispose]();
  });

  it('ingest accepts valid records and rejects the rest by index with every field and reason', async () => {
    expect((await call(h, 'POST', '/v1/ingest/project', [project])).status).toBe(401);
    expect((await call(h, 'POST', '/v1/ingest/project', [project], 'wrong')).status).toBe(401);

    const rmProject = { ...project, projectId: 'p-rm', contractId: 'k-rm' };
    expect((await ingest(h, 'project', [project, rmProject])).body).toEqual({ accepted: 2, rejected: [] });
    expect((await ingest(h, 'consultant', [consultant])).body).toEqual({ accepted: 1, rejected: [] });
    expect((await ingest(h, 'ratecard', ratecards)).body).toEqual({ accepted: 2, rejected: [] });
    expect((await ingest(h, 'assignment', [assignment, { ...assignment, assignmentId: 'a-rm', projectId: 'p-rm' }])).body).toEqual({ accepted: 2, rejected: [] });
    await h.waitFor(async () => h.runtime?.pipeline.view.project('p-rm') !== undefined && h.runtime.pipeline.view.project('p-1') !== undefined, 15_000, 'projects in the view');

    const { status, body } = await ingest(h, 'time', [
      entry({ entryId: 'e-ok', hours: 8 }),
      entry({ entryId: 'e-too-long', hours: 30 }),
      { ...entry({ entryId: 'e-no-project' }), projectId: undefined },
    ]);
    expect(status).toBe(202);
    expect(body.accepted).toBe(1);
    expect(body.rejected.map((r) => r.index)).toEqual([1, 2]);
    expect(body.rejected[0]?.errors).toEqual([{ field: 'hours', reason: expect.stringMatching(/24/) }]);
    expect(body.rejected[1]?.errors.map((e) => e.field)).toContain('projectId');

    const lifecycle = await h.waitFor(async () => {
      const { body: entryBody } = await call<{ revisions: Record<string, unknown>[] }>(h, 'GET', '/v1/entries/e-ok');
      return entryBody.revisions?.[0]?.stage === 'posted' ? entryBody : null;
    }, 30_000, 'e-ok posted');
    const revision = lifecycle.revisions[0] as Record<string, unknown> & { stages: Record<string, string | null>; documentIds: string[] };
    expect(revision).toMatchObject({ revision: 1, status: 'approved', billable: true, role: 'senior', rate: '150.00', amount: '1200.00', currency: 'USD', hours: '8.00', exceptions: [] });
    expect(revision.documentIds).toHaveLength(1);
    expect(revision.stages.approvedAt).toBe('2026-11-20T10:00:00.000Z');
    for (const stage of ['firstSeenAt', 'enrichedAt', 'decidedAt', 'postedAt']) expect(revision.stages[stage]).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(revision).toHaveProperty('traceId');
    expect((await call(h, 'GET', '/v1/entries/e-too-long')).status).toBe(404);
  });

  it('charges a rate_missing entry exactly once when it is replayed after its rate card arrives', async () => {
    await ingest(h, 'time', [entry({ entryId: 'e-rm', projectId: 'p-rm' })]);
    const exception = await h.waitFor(() => exceptionOf(h, 'code=rate_missing&projectId=p-rm', 'e-rm'), 30_000, 'rate_missing exception');
    expect(exception.status).toBe('open');

    // Without the rate card a replay fails again: the exception is open once more, one attempt later.
    expect((await call(h, 'POST', `/v1/exceptions/${exception.id}/replay`)).status).toBe(401);
    const early = await ops(h, `/v1/exceptions/${exception.id}/replay`, { by: 'bob' });
    expect(early).toMatchObject({ status: 200, body: { replayed: true, status: 'replayed', action: 'reevaluated' } });
    await h.waitFor(async () => { const e = await exceptionOf(h, 'code=rate_missing&projectId=p-rm', 'e-rm'); return e?.status === 'open' && e.attempts === 2; }, 30_000, 'replay failed again');

    await ingest(h, 'ratecard', [{ contractId: 'k-rm', role: 'senior', rate: '200.00', currency: 'USD', effectiveFrom: '2026-01-01' }]);
    await h.waitFor(async () => {
      const { rows } = await h.sql.query(`select 1 from ratecard where contract_id = 'k-rm'`);
      return rows.length > 0;
    }, 15_000, 'rate card stored');

    const replay = await ops(h, `/v1/exceptions/${exception.id}/replay`, { by: 'bob' });
    expect(replay).toMatchObject({ status: 200, body: { exceptionId: exception.id, replayed: true, action: 'reevaluated' } });
    const again = await ops<{ replayed: boolean; message: string }>(h, `/v1/exceptions/${exception.id}/replay`, { by: 'bob' });
    expect(again.status).toBe(200);
    expect(again.body.replayed).toBe(false);
    expect(again.body.message).toMatch(/already (replayed|resolved)/);

    await h.waitFor(async () => (await exceptionOf(h, 'projectId=p-rm', 'e-rm'))?.status === 'resolved', 30_000, 'exception resolved');
    await h.waitFor(async () => (await h.erpDocuments('p-rm')).length === 1, 30_000, 'charge posted');
    // A bulk replay of the code finds nothing open; a forced replay of a resolved one does nothing.
    expect((await ops(h, '/v1/exceptions/replay', { code: 'rate_missing', projectId: 'p-rm' })).body).toMatchObject({ matched: 0, replayed: [] });
    expect((await ops(h, `/v1/exceptions/${exception.id}/replay`, { force: true })).body).toMatchObject({ replayed: false, status: 'resolved' });
    await settled(h);
    expect((await h.erpDocuments('p-rm')).map((d) => [d.external_id, d.amount])).toEqual([['e-rm:1:charge', '1500.00']]);

    const detail = await call<{ status: string; audit: { action: string; actor: string; before: { status: string }; after: { status: string } }[] }>(h, 'GET', `/v1/exceptions/${exception.id}`);
    expect(detail.body.status).toBe('resolved');
    expect(detail.body.audit.map((a) => [a.action, a.actor, a.before.status, a.after.status])).toEqual([
      ['replay', 'bob', 'open', 'replayed'],
      ['replay', 'bob', 'open', 'replayed'],
    ]);
  });

  it('records who dismissed an exception and why, once, and refuses to replay what must be re-ingested', async () => {
    await ingest(h, 'time', [entry({ entryId: 'e-orphan', consultantId: 'c-nobody' })]);
    const exception = await h.waitFor(() => exceptionOf(h, 'code=no_assignment', 'e-orphan'), 30_000, 'no_assignment exception');

    const missing = await ops<{ error: { code: string; details: { field: string }[] } }>(h, `/v1/exceptions/${exception.id}/dismiss`, {});
    expect(missing.status).toBe(400);
    expect(missing.body.error.details.map((d) => d.field).sort()).toEqual(['by', 'reason']);

    const first = await ops(h, `/v1/exceptions/${exception.id}/dismiss`, { by: 'alice', reason: 'consultant left; time billed by hand' });
    expect(first).toMatchObject({ status: 200, body: { dismissed: true, status: 'dismissed', dismissedBy: 'alice', reason: 'consultant left; time billed by hand' } });
    const second = await ops(h, `/v1/exceptions/${exception.id}/dismiss`, { by: 'carol', reason: 'another reason' });
    expect(second).toMatchObject({ status: 200, body: { dismissed: false, dismissedBy: 'alice', reason: 'consultant left; time billed by hand', dismissedAt: (first.body as { dismissedAt: string }).dismissedAt } });

    const detail = await call<{ status: string; audit: { action: string; actor: string; reason: string; at: string; before: { status: string }; after: { status: string; resolvedBy: string } }[] }>(h, 'GET', `/v1/exceptions/${exception.id}`);
    expect(detail.body.status).toBe('dismissed');
    expect(detail.body.audit).toEqual([expect.objectContaining({
      action: 'dismiss', actor: 'alice', reason: 'consultant left; time billed by hand', before: expect.objectContaining({ status: 'open' }), after: expect.objectContaining({ status: 'dismissed', resolvedBy: 'alice' }),
    })]);
    const { rows } = await h.sql.query(`select actor, action from exception_audit where exception_id = $1`, [exception.id]);
    expect(rows).toEqual([{ actor: 'alice', action: 'dismiss' }]);

    expect(await ops(h, `/v1/exceptions/${exception.id}/replay`)).toMatchObject({ status: 409, body: { error: { code: 'exception_dismissed' } } });

    await h.publish(subjects.time(), entry({ entryId: 'e-invalid', hours: 99 }));
    const invalid = await h.waitFor(() => exceptionOf(h, 'code=invalid_record', 'e-invalid'), 30_000, 'invalid_record exception');
    const refused = await ops<{ error: { code: string; message: string } }>(h, `/v1/exceptions/${invalid.id}/replay`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('not_replayable');
    expect(refused.body.error.message).toMatch(/ingest it again/);
    expect((await ops(h, '/v1/exceptions/nope/dismiss', { by: 'a', reason: 'b' })).status).toBe(404);
  });

  it('closes a period into one invoice per project whose total is its posted charges, and closing again creates nothing', async () => {
    await ingest(h, 'time', [entry({ entryId: 'e-inv', hours: 8 })]);
    await h.waitFor(async () => (await h.erpDocuments('p-1')).some((d) => d.external_id === 'e-inv:1:charge'), 30_000, 'e-inv charged');
    await ingest(h, 'time', [entry({ entryId: 'e-inv', revision: 2, hours: 6 })]);
    await h.waitFor(async () => (await h.erpDocuments('p-1')).some((d) => d.external_id === 'e-inv:2:charge'), 30_000, 'e-inv recharged');
    await settled(h);

    const posted = async (projectId: string) => {
      const { rows } = await h.sql.query<{ total: string; n: string }>(`select coalesce(sum(amount_minor), 0)::text as total, count(*)::text as n from erp_outbox where project_id = $1 and status = 'posted'`, [projectId]);
      return { total: (Number(rows[0]?.total) / 100).toFixed(2), documents: Number(rows[0]?.n) };
    };
    const expected = { 'p-1': await posted('p-1'), 'p-rm': await posted('p-rm') };
    expect(expected['p-1']).toEqual({ total: '2100.00', documents: 4 }); // e-ok 1200 + e-inv 1200 − 1200 + 900

    expect((await call(h, 'POST', '/v1/billing/close', { periodEnd: '2026-11-30' })).status).toBe(401);
    expect((await ops(h, '/v1/billing/close', { periodEnd: '2026-11-31' })).status).toBe(400);
    const first = await ops<{ invoices: { projectId: string; invoiceId: string; total: string; documentCount: number; outcome: string; status: string }[]; failed: unknown[] }>(h, '/v1/billing/close', { periodEnd: '2026-11-30' });
    expect(first.status).toBe(200);
    expect(first.body.failed).toEqual([]);
    expect(first.body.invoices.map((i) => [i.projectId, i.total, i.documentCount, i.outcome, i.status])).toEqual([
      ['p-1', expected['p-1'].total, expected['p-1'].documents, 'created', 'draft'],
      ['p-rm', expected['p-rm'].total, expected['p-rm'].documents, 'created', 'draft'],
    ]);

    const second = await ops<typeof first.body>(h, '/v1/billing/close', { periodEnd: '2026-11-30' });
    expect(second.body.invoices.map((i) => [i.projectId, i.invoiceId, i.outcome])).toEqual(first.body.invoices.map((i) => [i.projectId, i.invoiceId, 'existing']));
    const erpInvoices = await h.sql.query<{ project_id: string; total: string }>(`select project_id, total::text as total from erp_invoice order by project_id`);
    expect(erpInvoices.rows).toEqual([{ project_id: 'p-1', total: expected['p-1'].total }, { project_id: 'p-rm', total: expected['p-rm'].total }]);
    const uninvoiced = await h.sql.query(`select external_id from erp_document where invoice_id is null`);
    expect(uninvoiced.rows).toEqual([]);

    const billing = await call(h, 'GET', '/v1/projects/p-1/billing');
    expect(billing.body).toMatchObject({ projectId: 'p-1', charged: '3300.00', reversed: '1200.00', net: '2100.00', invoiced: '2100.00', uninvoiced: '0.00', notToExceed: null, invoices: { count: 1, lastPeriodEnd: '2026-11-30' } });
    expect((await call(h, 'GET', '/v1/projects/p-none/billing')).status).toBe(404);

    const invoiceId = first.body.invoices[0]?.invoiceId as string;
    const entryBody = (await call<{ revisions: { stage: string; invoiceId: string; invoiceStatus: string; stages: { invoicedAt: string | null } }[] }>(h, 'GET', '/v1/entries/e-inv')).body;
    expect(entryBody.revisions[1]).toMatchObject({ stage: 'invoiced', invoiceId, invoiceStatus: 'draft' });
    expect(entryBody.revisions[1]?.stages.invoicedAt).toMatch(/^\d{4}-/);

    // The ERP moves the invoice on; the poller brings the status to the lifecycle and to NATS.
    await h.sql.query(`update erp_invoice set status = 'issued' where invoice_id = $1`, [invoiceId]);
    await h.waitFor(async () => {
      const { body } = await call<{ revisions: { invoiceStatus: string }[] }>(h, 'GET', '/v1/entries/e-inv');
      return body.revisions[1]?.invoiceStatus === 'issued';
    }, 15_000, 'issued status in the lifecycle');
    const announced = await h.waitFor(async () => {
      const messages = (await streamMessages(h, 'BILLSTREAM_INVOICES')).filter((m) => m.subject === 'invoice.status.amer.p-1');
      return messages.length >= 2 ? messages : null;
    }, 15_000, 'invoice status messages');
    expect(announced.map((m) => m.data.status)).toEqual(['draft', 'issued']);
    expect(announced[0]?.data).toMatchObject({ invoiceId, amounts: { total: expected['p-1'].total, charged: '3300.00', reversed: '1200.00', currency: 'USD' } });
  });

  it('serves Prometheus text whose stage counters and ERP latency move when entries flow', async () => {
    const before = await metricsOf(h);
    const actorIn = before.value('billstream_stage_messages_total', { stage: 'actor', direction: 'in' }) ?? 0;
    const erpOut = before.value('billstream_stage_messages_total', { stage: 'erp', direction: 'out' }) ?? 0;
    const erpCalls = before.sum('billstream_erp_request_duration_seconds_count');

    await ingest(h, 'time', [entry({ entryId: 'e-metrics-1' }), entry({ entryId: 'e-metrics-2' })]);
    await h.waitFor(async () => (await h.erpDocuments('p-1')).filter((d) => d.entry_id?.startsWith('e-metrics-')).length === 2, 30_000, 'metrics entries posted');

    const after = await metricsOf(h);
    expect(after.value('billstream_stage_messages_total', { stage: 'actor', direction: 'in' })).toBeGreaterThanOrEqual(actorIn + 2);
    expect(after.value('billstream_stage_messages_total', { stage: 'erp', direction: 'out' })).toBeGreaterThanOrEqual(erpOut + 2);
    expect(after.sum('billstream_erp_request_duration_seconds_count')).toBeGreaterThan(erpCalls);
    expect(after.sum('billstream_erp_requests_total', { outcome: 'ok' })).toBeGreaterThan(0);
    expect(after.sum('billstream_ingest_http_records_total', { kind: 'time', result: 'rejected' })).toBeGreaterThanOrEqual(2);
    expect(after.value('billstream_consumer_pending', { stream: 'BILLSTREAM_INGEST', consumer: 'billstream-time' })).toBe(0);
    expect(after.value('billstream_consumer_ack_pending', { stream: 'BILLSTREAM_INGEST', consumer: 'billstream-time' })).toBeDefined();
    expect(after.value('billstream_actors_active')).toBeGreaterThanOrEqual(1);
    expect(after.value('billstream_outbox_depth', { outbox: 'erp' })).toBeDefined();
    expect(after.value('billstream_exceptions', { code: 'no_assignment', status: 'dismissed' })).toBe(1);
    expect(after.value('billstream_exceptions_open', { code: 'rate_missing' })).toBe(0);
    expect(after.value('billstream_invoices', { status: 'draft' })).toBeGreaterThanOrEqual(1);
    expect(after.types.get('billstream_erp_request_duration_seconds')).toBe('histogram');
  });

  it('charges a cap_exceeded entry once its project\'s notToExceed is raised and the exception replayed, and holds it only once meanwhile', async () => {
    const capped = { ...project, projectId: 'p-cap', notToExceed: '1000.00' };
    await ingest(h, 'project', [capped]);
    await ingest(h, 'assignment', [{ ...assignment, assignmentId: 'a-cap', projectId: 'p-cap' }]);
    await h.waitFor(async () => h.runtime?.pipeline.view.project('p-cap') !== undefined, 15_000, 'p-cap in the view');
    await ingest(h, 'time', [entry({ entryId: 'e-cap', projectId: 'p-cap' })]); // 7.50 h × 150.00 = 1125.00 > 1000.00
    const exception = await h.waitFor(() => exceptionOf(h, 'code=cap_exceeded&projectId=p-cap', 'e-cap'), 30_000, 'cap_exceeded exception');
    expect((await call(h, 'GET', '/v1/projects/p-cap/billing')).body).toMatchObject({ held: '1125.00', net: '0.00', notToExceed: '1000.00', notToExceedRemaining: '1000.00' });

    // Replayed under the same cap it is held again, and counted as held once.
    await ops(h, `/v1/exceptions/${exception.id}/replay`, { by: 'erin' });
    await h.waitFor(async () => (await exceptionOf(h, 'projectId=p-cap', 'e-cap'))?.attempts === 2, 30_000, 'held again');
    expect((await call(h, 'GET', '/v1/projects/p-cap/billing')).body).toMatchObject({ held: '1125.00', net: '0.00' });

    await ingest(h, 'project', [{ ...capped, notToExceed: '2000.00', revision: 2 }]);
    await h.waitFor(async () => h.runtime?.pipeline.view.project('p-cap')?.notToExceed === '2000.00', 15_000, 'raised cap in the view');
    expect((await ops(h, `/v1/exceptions/${exception.id}/replay`, { by: 'erin' })).body).toMatchObject({ replayed: true });
    await h.waitFor(async () => (await exceptionOf(h, 'projectId=p-cap', 'e-cap'))?.status === 'resolved', 30_000, 'cap exception resolved');
    await settled(h);
    expect((await h.erpDocuments('p-cap')).map((d) => [d.external_id, d.amount])).toEqual([['e-cap:1:charge', '1125.00']]);
    expect((await call(h, 'GET', '/v1/projects/p-cap/billing')).body).toMatchObject({ held: '0.00', charged: '1125.00', net: '1125.00', posted: '1125.00', notToExceedRemaining: '875.00' });
  });

  it('documents every route of CONTRACT §5 in an OpenAPI 3 document generated from the route schemas', async () => {
    const { status, body } = await call<{ openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown; parameters?: { name: string; in: string }[]; security?: unknown[] }>>; components: { schemas: Record<string, unknown> } }>(h, 'GET', '/openapi.json');
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\./);
    const operations = Object.entries(body.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    expect(operations).toEqual(expect.arrayContaining([
      'POST /v1/ingest/{kind}', 'GET /v1/entries/{entryId}', 'GET /v1/projects/{projectId}/billing', 'GET /v1/exceptions',
      'GET /v1/exceptions/{id}', 'POST /v1/exceptions/{id}/replay', 'POST /v1/exceptions/{id}/dismiss', 'POST /v1/exceptions/replay',
      'POST /v1/billing/close', 'GET /v1/kpis', 'GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /openapi.json',
    ]));
    const list = body.paths['/v1/exceptions']?.get;
    expect(list?.parameters?.map((p) => `${p.in}:${p.name}`)).toEqual(['query:status', 'query:code', 'query:projectId', 'query:limit', 'query:cursor']);
    expect(body.paths['/v1/billing/close']?.post?.requestBody).toMatchObject({ content: { 'application/json': { schema: { type: 'object', required: ['periodEnd'] } } } });
    expect(body.paths['/v1/entries/{entryId}']?.get?.responses['200']).toMatchObject({ content: { 'application/json': { schema: { properties: { revisions: { type: 'array' } } } } } });
    expect(body.paths['/v1/ingest/{kind}']?.post?.security).toEqual([{ ingestToken: [] }]);
    expect(Object.keys(body.components.schemas)).toContain('TimeRecord');
  });
});

describe('KPIs from stored state', () => {
  let h: Harness;

  beforeAll(async () => {
    // A long grace: the fixture's waiting entry must stay waiting while the pipeline runs.
    h = await startHarness({ REFERENCE_GRACE_SECONDS: '3600' });
    await h.startRuntime();
  });
  afterAll(async () => {
    await h?.[Symbol.asyncDispose]();
  });

  it('match a hand-computed fixture: cycle-time percentiles per region, unbilled hours by age, open exceptions, throughput', async () => {
    // Posted and invoiced charges: amer took 60, 120 and 600 s from approval to posting, emea 30 and 90 s.
    const cycles = [['k-a1', 'amer', 60], ['k-a2', 'amer', 120], ['k-a3', 'amer', 600], ['k-e1', 'emea', 30], ['k-e2', 'emea', 90]] as const;
    for (const [entryId, region, seconds] of cycles) {
      await h.sql.query(
        `insert into entry_revision (entry_id, revision, project_id, region, status, stage, hours_hundredths, work_date, record, first_seen_at, approved_at, decided_at)
         values ($1, 1, 'p-k', $2, 'approved', 'charged', 100, '2026-11-10', '{}', '2026-11-20T10:00:00Z', '2026-11-20T10:00:00Z', '2026-11-20T10:00:01Z')`, [entryId, region]);
      await h.sql.query(
        `insert into erp_outbox (external_id, kind, project_id, region, entry_id, revision, work_date, hours_hundredths, amount_minor, currency, transaction, status, document_id, invoice_id, posted_at)
         values ($1 || ':1:charge', 'charge', 'p-k', $2, $1, 1, '2026-11-10', 100, 10000, 'USD', '{}', 'posted', 'D-' || $1, 'INV-K', '2026-11-20T10:00:00Z'::timestamptz + ($3 || ' seconds')::interval)`,
        [entryId, region, String(seconds)]);
    }
    // Unbilled approved time, by days since approval: 4.00 h under a day (waiting), 3.50 h at two days (exception),
    // 2.25 h at five days (held) and 8.00 h at ten days (charged, not invoiced). Non-billable and submitted time never counts.
    const unbilled = [
      ['u-wait', 'waiting', 'approved', 400, '2 hours'], ['u-exc', 'exception', 'approved', 350, '2 days'],
      ['u-held', 'held', 'approved', 225, '5 days'], ['u-chg', 'charged', 'approved', 800, '10 days'],
      ['u-nb', 'non_billable', 'approved', 500, '1 hour'], ['u-sub', 'waiting', 'submitted', 900, '1 hour'],
    ] as const;
    for (const [entryId, stage, status, hundredths, age] of unbilled) {
      await h.sql.query(
        `insert into entry_revision (entry_id, revision, project_id, region, status, stage, hours_hundredths, work_date, record, first_seen_at, approved_at, decided_at)
         values ($1, 1, 'p-k', 'amer', $2, $3, $4, '2026-11-10', '{}', now() - interval '1 minute', now() - $5::interval, now() - interval '2 hours')`,
        [entryId, status, stage, hundredths, age]);
    }
    await h.sql.query(
      `insert into erp_outbox (external_id, kind, project_id, region, entry_id, revision, work_date, hours_hundredths, amount_minor, currency, transaction, status)
       values ('u-chg:1:charge', 'charge', 'p-k', 'amer', 'u-chg', 1, '2026-11-10', 800, 80000, 'USD', '{}', 'pending')`);
    // Six revisions decided in the last minute: 0.1 per second.
    for (let i = 0; i < 6; i++) {
      await h.sql.query(
        `insert into entry_revision (entry_id, revision, project_id, region, status, stage, hours_hundredths, work_date, record, decided_at)
         values ($1, 1, 'p-k', 'amer', 'approved', 'non_billable', 100, '2026-11-10', '{}', now() - interval '10 seconds')`, [`t-${i}`]);
    }
    for (const [id, code, status] of [['x1', 'rate_missing', 'open'], ['x2', 'rate_missing', 'open'], ['x3', 'no_assignment', 'open'], ['x4', 'rate_missing', 'dismissed']]) {
      await h.sql.query(`insert into billing_exception (id, code, status, record_kind, region, message) values ($1, $2, $3, 'time', 'amer', 'fixture')`, [id, code, status]);
    }

    const { status, body } = await call<Record<string, unknown>>(h, 'GET', '/v1/kpis');
    expect(status).toBe(200);
    // percentile_cont interpolates: amer p95 = 120 + 0.9 × (600 − 120) = 552; emea p50 = 60, p95 = 30 + 0.95 × 60 = 87.
    expect(body.postingCycleTime).toEqual([
      { region: 'amer', p50Seconds: 120, p95Seconds: 552, charges: 3 },
      { region: 'emea', p50Seconds: 60, p95Seconds: 87, charges: 2 },
    ]);
    expect(body.unbilledApprovedHours).toEqual({
      total: '17.75',
      entries: 4,
      buckets: [
        { bucket: 'lt_1d', label: 'less than 1 day', hours: '4.00', entries: 1 },
        { bucket: '1d_3d', label: '1 to 3 days', hours: '3.50', entries: 1 },
        { bucket: '3d_7d', label: '3 to 7 days', hours: '2.25', entries: 1 },
        { bucket: 'gt_7d', label: 'more than 7 days', hours: '8.00', entries: 1 },
      ],
    });
    expect(body.exceptionsOpen).toEqual({ total: 3, byCode: expect.objectContaining({ rate_missing: 2, no_assignment: 1, cap_exceeded: 0 }) });
    expect(body.throughput).toEqual({ windowSeconds: 60, entriesDecided: 6, entriesPerSecond: 0.1 });
    expect((await call(h, 'GET', '/v1/kpis?since=yesterday')).status).toBe(400);
    expect((await call<{ postingCycleTime: unknown[] }>(h, 'GET', '/v1/kpis?since=2026-11-21T00:00:00Z')).body.postingCycleTime).toEqual([]);

    const metrics = await metricsOf(h);
    expect(metrics.value('billstream_posting_cycle_seconds', { region: 'amer', quantile: '0.95' })).toBe(552);
    expect(metrics.value('billstream_unbilled_approved_hours', { age: 'gt_7d' })).toBe(8);
    expect(metrics.value('billstream_exceptions_open', { code: 'rate_missing' })).toBe(2);
  });
});

describe('posting SLA alert', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ REFERENCE_GRACE_SECONDS: '30', POSTING_SLA_MINUTES: '0.03', POSTING_SLA_CHECK_SECONDS: '0.25' });
    await h.startRuntime();
    await h.publish(subjects.project(), project);
    await h.publish(subjects.consultant(), consultant);
    for (const card of ratecards) await h.publish(subjects.ratecard(), card);
    await h.publish(subjects.assignment(), assignment);
  });
  afterAll(async () => {
    await h?.[Symbol.asyncDispose]();
  });

  it('fires when approved time is not posted within the SLA and clears itself once it posts', async () => {
    // The ERP answers slower than the SLA (1.8 s), so the charge sits unposted past it.
    h.erp.setFaults({ latencyMs: 4_000 });
    await h.publish(subjects.time(), entry({ entryId: 'e-sla', approvedAt: new Date().toISOString() }));

    const firing = await h.waitFor(async () => {
      const { rows } = await h.sql.query<{ id: string; region: string; overdue_entries: number; sample_entry_ids: string[] }>(`select id::text, region, overdue_entries, sample_entry_ids from posting_sla_alert where status = 'firing'`);
      return rows[0];
    }, 20_000, 'alert firing');
    expect(firing).toMatchObject({ region: 'amer', overdue_entries: 1, sample_entry_ids: ['e-sla'] });
    const breached = await metricsOf(h);
    expect(breached.value('billstream_posting_sla_breached', { region: 'amer' })).toBe(1);
    expect(breached.value('billstream_posting_sla_overdue_entries', { region: 'amer' })).toBe(1);

    h.erp.setFaults({ latencyMs: 0 });
    await h.waitFor(async () => {
      const { rows } = await h.sql.query<{ status: string }>(`select status from posting_sla_alert where id = $1`, [firing.id]);
      return rows[0]?.status === 'cleared';
    }, 30_000, 'alert cleared');
    expect((await h.erpDocuments('p-1')).map((d) => d.external_id)).toEqual(['e-sla:1:charge']);
    expect((await metricsOf(h)).value('billstream_posting_sla_breached', { region: 'amer' })).toBe(0);

    const alerts = await h.waitFor(async () => {
      const messages = (await streamMessages(h, 'BILLSTREAM_ALERTS')).filter((m) => m.subject === 'alerts.posting_sla.amer');
      return messages.length >= 2 ? messages : null;
    }, 15_000, 'alert messages');
    expect(alerts.map((m) => [m.data.status, m.data.alertId])).toEqual([['firing', firing.id], ['cleared', firing.id]]);
    expect(alerts[0]?.data).toMatchObject({ alert: 'posting_sla', region: 'amer', overdueEntries: 1, sampleEntryIds: ['e-sla'], slaMinutes: 0.03 });
  });
});
