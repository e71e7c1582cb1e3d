// Traces end to end (CONTRACT §7): billstream runs on real NATS JetStream,
// PostgreSQL and the ERP sandbox and exports OTLP/HTTP protobuf to a receiver
// inside this test, which decodes every span it is sent.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver, type OtlpSpan } from '../ops/otlp-receiver.ts';
import { startHarness, type Harness } from './support/billstream.ts';
import { assignment, consultant, entry, project, ratecards, subjects } from './support/fixtures.ts';

let receiver: OtlpReceiver;
let h: Harness;

/** Personal data the fixtures carry: none of it may appear in any exported attribute. */
const PERSONAL = { notes: 'Dinner with Jane Doe at Chez Marie', approvedBy: 'Jane Approver-Smith' };

async function lifecycleTraceId(entryId: string, revision = 1): Promise<string | null> {
  const res = await fetch(`${h.runtime?.httpUrl}/v1/entries/${entryId}`);
  const body = (await res.json()) as { revisions: { revision: number; traceId: string | null }[] };
  return body.revisions.find((r) => r.revision === revision)?.traceId ?? null;
}

async function posted(entryId: string): Promise<boolean> {
  const { rows } = await h.sql.query(`select 1 from erp_outbox where entry_id = $1 and status = 'posted'`, [entryId]);
  return rows.length > 0;
}

/** Flushes the SDK and waits until the receiver has spans matching `check`. */
async function spansWhere(check: (spans: readonly OtlpSpan[]) => boolean, what: string): Promise<readonly OtlpSpan[]> {
  return h.waitFor(async () => {
    await h.runtime?.telemetry.forceFlush();
    return check(receiver.spans) ? receiver.spans : null;
  }, 20_000, what);
}

const ofEntry = (spans: readonly OtlpSpan[], entryId: string) => spans.filter((s) => s.attributes['billstream.entry_id'] === entryId);
const byStart = (a: OtlpSpan, b: OtlpSpan) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : 0);

describe('tracing', () => {
  beforeAll(async () => {
    receiver = await startOtlpReceiver({ decode: true });
    h = await startHarness({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, REFERENCE_GRACE_SECONDS: '30' });
    await h.startRuntime();
    await h.publish(subjects.project(), project);
    await h.publish(subjects.consultant(), consultant);
    for (const card of ratecards) await h.publish(subjects.ratecard(), card);
    await h.publish(subjects.assignment(), assignment);
    await h.waitFor(async () => (await h.sql.query(`select 1 from assignment where assignment_id = 'a-1' and span_context is not null`)).rows.length > 0, 30_000, 'assignment stored');
  });
  afterAll(async () => {
    await h?.[Symbol.asyncDispose]();
    await receiver?.close();
  });

  it('traces a charged entry as one trace from ingestion to the ERP: each stage in order, linked to its assignment and its ERP batch', async () => {
    await h.publish(subjects.time(), entry({ entryId: 'e-trace', notes: PERSONAL.notes, approvedBy: PERSONAL.approvedBy }));
    await h.waitFor(() => posted('e-trace'), 30_000, 'e-trace posted');
    const traceId = await lifecycleTraceId('e-trace');
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);

    const spans = await spansWhere((all) => ofEntry(all, 'e-trace').some((s) => s.name === 'erp.posted'), 'e-trace spans');
    const mine = ofEntry(spans, 'e-trace').sort(byStart);
    expect(new Set(mine.map((s) => s.traceId))).toEqual(new Set([traceId]));
    expect(mine.map((s) => s.name)).toEqual(['ingest', 'validate', 'dedupe', 'enrich', 'actor.turn', 'erp.posted']);

    const [root, ...stages] = mine as [OtlpSpan, ...OtlpSpan[]];
    expect(root.parentSpanId).toBe('');
    for (const stage of stages) expect(stage.parentSpanId).toBe(root.spanId);
    expect(root.attributes).toMatchObject({
      'messaging.system': 'nats', 'messaging.destination.name': subjects.time(), 'messaging.operation.type': 'receive',
      'billstream.entry_id': 'e-trace', 'billstream.project_id': 'p-1', 'billstream.region': 'amer',
    });
    expect(mine.find((s) => s.name === 'actor.turn')?.attributes['billstream.stage']).toBe('charged');
    expect(root.resource).toMatchObject({ 'service.name': 'billstream', 'service.version': (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version });

    // The first span links to the span that recorded the entry's assignment.
    const recorded = spans.find((s) => s.name === 'assignment.record' && s.attributes['billstream.assignment_id'] === 'a-1');
    expect(recorded).toBeDefined();
    expect(root.links).toContainEqual(expect.objectContaining({ traceId: recorded?.traceId, spanId: recorded?.spanId }));
    const { rows } = await h.sql.query<{ span_context: string }>(`select span_context from assignment where assignment_id = 'a-1'`);
    expect(rows[0]?.span_context).toContain(`${recorded?.traceId}-${recorded?.spanId}`);

    // The ERP batch span is a trace of its own linking to the entry; the entry's erp.posted links back to it.
    const batch = spans.find((s) => s.name === 'erp.post' && s.links.some((l) => l.traceId === traceId));
    expect(batch).toBeDefined();
    expect(batch?.traceId).not.toBe(traceId);
    expect(batch?.links).toContainEqual(expect.objectContaining({ traceId, spanId: root.spanId }));
    const erpPosted = mine.find((s) => s.name === 'erp.posted');
    expect(erpPosted?.links).toContainEqual(expect.objectContaining({ traceId: batch?.traceId, spanId: batch?.spanId }));
    expect(erpPosted?.attributes['billstream.erp.external_id']).toBe('e-trace:1:charge');
  });

  it('links the invoice span to the entries it bills', async () => {
    await h.waitFor(() => posted('e-trace'), 30_000, 'e-trace posted');
    const { rows } = await h.sql.query<{ trace_parent: string }>(`select trace_parent from erp_outbox where entry_id = 'e-trace' and status = 'posted'`);
    const [, traceId, spanId] = (rows[0]?.trace_parent ?? '').split('-');
    const res = await fetch(`${h.runtime?.httpUrl}/v1/billing/close`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ periodEnd: '2026-11-30' }),
    });
    expect(res.status).toBeLessThan(300);
    const spans = await spansWhere((all) => all.some((s) => s.name === 'invoice' && s.links.some((l) => l.traceId === traceId)), 'invoice span');
    const invoice = spans.find((s) => s.name === 'invoice' && s.links.some((l) => l.traceId === traceId));
    expect(invoice?.traceId).not.toBe(traceId);
    expect(invoice?.links).toContainEqual(expect.objectContaining({ traceId, spanId }));
    expect(invoice?.attributes['billstream.project_id']).toBe('p-1');
  });

  it('shows an entry parked for its assignment as a wait span, in the same trace, linked to the assignment that released it', async () => {
    const late = { ...assignment, assignmentId: 'a-trace-late', consultantId: 'c-trace-late', revision: 1 };
    await h.publish(subjects.time(), entry({ entryId: 'e-parked', consultantId: 'c-trace-late' }));
    await h.waitFor(async () => (await h.sql.query(`select 1 from entry_revision where entry_id = 'e-parked' and stage = 'waiting'`)).rows.length > 0, 30_000, 'e-parked waiting');
    await h.publish(subjects.assignment(late), late);
    await h.waitFor(() => posted('e-parked'), 30_000, 'e-parked posted');
    const traceId = await lifecycleTraceId('e-parked');

    const spans = await spansWhere((all) => ofEntry(all, 'e-parked').some((s) => s.name === 'erp.posted'), 'e-parked spans');
    const mine = ofEntry(spans, 'e-parked').sort(byStart);
    expect(new Set(mine.map((s) => s.traceId))).toEqual(new Set([traceId]));
    const wait = mine.find((s) => s.name === 'wait.reference_data');
    expect(wait).toBeDefined();
    const turns = mine.filter((s) => s.name === 'actor.turn').map((s) => s.attributes['billstream.stage']);
    expect(turns).toEqual(['waiting', 'charged']);
    const recorded = spans.find((s) => s.name === 'assignment.record' && s.attributes['billstream.assignment_id'] === 'a-trace-late');
    expect(wait?.links).toContainEqual(expect.objectContaining({ traceId: recorded?.traceId, spanId: recorded?.spanId }));
    // The wait runs from when the entry was first seen until the assignment released it.
    expect(Number(wait?.endTimeUnixNano) / 1e6).toBeGreaterThanOrEqual(Number(recorded?.startTimeUnixNano) / 1e6 - 1);
  });

  it('continues the trace an HTTP ingest starts, and records an exception with status ERROR', async () => {
    await h.publish(subjects.project({ ...project, projectId: 'p-trace-closed' }), { ...project, projectId: 'p-trace-closed', status: 'closed' });
    await h.publish(subjects.assignment({ projectId: 'p-trace-closed' }), { ...assignment, assignmentId: 'a-trace-closed', projectId: 'p-trace-closed' });
    await h.waitFor(async () => (await h.sql.query(`select 1 from assignment where assignment_id = 'a-trace-closed'`)).rows.length > 0, 30_000, 'closed project stored');
    const res = await fetch(`${h.runtime?.httpUrl}/v1/ingest/time`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify([entry({ entryId: 'e-http-closed', projectId: 'p-trace-closed' })]),
    });
    expect(res.status).toBe(202);
    await h.waitFor(async () => (await h.sql.query(`select 1 from entry_revision where entry_id = 'e-http-closed' and stage = 'exception'`)).rows.length > 0, 30_000, 'project_closed');
    const traceId = await lifecycleTraceId('e-http-closed');

    const spans = await spansWhere((all) => ofEntry(all, 'e-http-closed').some((s) => s.name === 'actor.turn' && s.attributes['billstream.stage'] === 'exception'), 'e-http-closed spans');
    const mine = ofEntry(spans, 'e-http-closed').sort(byStart);
    const root = mine[0];
    expect(root?.name).toBe('ingest');
    expect(root?.kind).toBe(4); // producer: the HTTP route published it
    expect(root?.attributes['messaging.operation.type']).toBe('send');
    expect(new Set(mine.map((s) => s.traceId))).toEqual(new Set([traceId]));
    const turn = mine.findLast((s) => s.name === 'actor.turn');
    expect(turn?.status.code).toBe(2);
    expect(turn?.attributes['error.type']).toBe('project_closed');
  });

  it('exports no personal data: no name, note or approver in any attribute', async () => {
    await h.publish(subjects.time(), entry({ entryId: 'e-invalid-pii', notes: PERSONAL.notes, approvedBy: PERSONAL.approvedBy, hours: 30 }));
    await h.publish(subjects.time(), `{"entryId": "e-bad-json", "notes": "${PERSONAL.notes}"`);
    const spans = await spansWhere((all) => all.filter((s) => s.name === 'validate' && s.status.code === 2).length >= 2, 'invalid records traced');
    const texts: string[] = [];
    const collect = (value: unknown) => { texts.push(typeof value === 'string' ? value : JSON.stringify(value)); };
    for (const s of spans) {
      for (const [k, v] of Object.entries({ ...s.attributes, ...s.resource })) { collect(k); collect(v); }
      for (const e of s.events) for (const v of Object.values(e.attributes)) collect(v);
      for (const l of s.links) for (const v of Object.values(l.attributes)) collect(v);
      collect(s.status.message);
    }
    const leaks = texts.filter((t) => /Jane|Marie|Approver|Dinner/.test(t) || /\b(notes|approvedBy|approved_by)\b/i.test(t));
    expect(leaks).toEqual([]);
    expect(spans.length).toBeGreaterThan(10);
  });
});
