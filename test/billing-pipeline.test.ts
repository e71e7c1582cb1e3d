// The pipeline core end to end on real NATS JetStream, PostgreSQL and the ERP
// sandbox: each test publishes records to ingest subjects and reads what the
// ERP books and the ledger say.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './support/billstream.ts';
import { laneOfProject } from '../pipeline/partitioning.ts';
import { assignment, consultant, entry, project, publishProjects, ratecards, subjects } from './support/fixtures.ts';

let h: Harness;

async function publishReference(target: Harness, options: { withAssignment?: boolean } = {}): Promise<void> {
  await target.publish(subjects.project(), project);
  await target.publish(subjects.consultant(), consultant);
  for (const card of ratecards) await target.publish(subjects.ratecard(), card);
  if (options.withAssignment !== false) await target.publish(subjects.assignment(), assignment);
}

async function stageOf(entryId: string, revision: number): Promise<string | undefined> {
  const { rows } = await h.sql.query<{ stage: string }>('select stage from entry_revision where entry_id = $1 and revision = $2', [entryId, revision]);
  return rows[0]?.stage;
}

async function documentsOf(entryId: string) {
  return (await h.erpDocuments()).filter((d) => d.entry_id === entryId);
}

describe('billing pipeline', () => {
  beforeAll(async () => {
    h = await startHarness({ REFERENCE_GRACE_SECONDS: '4' });
    await h.startRuntime();
    await publishReference(h);
  });
  afterAll(async () => {
    await h?.[Symbol.asyncDispose]();
  });

  it('charges an approved billable entry at the rate effective on its work date, rounded half away from zero', async () => {
    await h.publish(subjects.time(), entry({ entryId: 'e-rate-a', workDate: '2026-11-15', hours: '0.33' }));
    await h.publish(subjects.time(), entry({ entryId: 'e-rate-b', workDate: '2026-11-16', hours: 7.5 }));
    const docs = await h.waitFor(async () => {
      const all = (await h.erpDocuments()).filter((d) => d.entry_id?.startsWith('e-rate-'));
      return all.length === 2 ? all : null;
    }, 30_000, 'two charges');
    // 0.33 h × 150.00 = 49.50; 7.5 h × 160.00 (new card from 2026-11-16) = 1200.00
    expect(docs.map((d) => [d.external_id, d.kind, d.amount])).toEqual([
      ['e-rate-a:1:charge', 'charge', '49.50'],
      ['e-rate-b:1:charge', 'charge', '1200.00'],
    ]);
  });

  it('charges the same approved entry once however often it is delivered', async () => {
    const record = entry({ entryId: 'e-dup' });
    await h.publish(subjects.time(), record, 'time:p-1:e-dup:1');
    await h.publish(subjects.time(), record, 'time:p-1:e-dup:1');
    await h.publish(subjects.time(), record, 'other-id-1');
    await h.publish(subjects.time(), record, 'other-id-2');
    await h.waitFor(async () => (await stageOf('e-dup', 1)) === 'charged', 30_000, 'e-dup charged');
    // After a restart, the in-memory dedupe is gone: the ledger's key must hold.
    await h.stopRuntime();
    await h.startRuntime();
    await h.publish(subjects.time(), record, 'after-restart');
    await h.publish(subjects.time(), entry({ entryId: 'e-dup-marker' }));
    await h.waitFor(async () => (await stageOf('e-dup-marker', 1)) === 'charged', 30_000, 'marker charged');
    await h.waitFor(async () => (await documentsOf('e-dup-marker')).length === 1, 30_000, 'marker posted');
    const docs = await documentsOf('e-dup');
    expect(docs.map((d) => d.external_id)).toEqual(['e-dup:1:charge']);
    const { rows } = await h.sql.query<{ value: string }>(`select value from pipeline_counter where name = 'duplicates'`);
    expect(Number(rows[0]?.value ?? 0) + (h.runtime?.pipeline.duplicatesInMemory ?? 0)).toBeGreaterThanOrEqual(1);
  });

  it('reverses and recharges a higher revision, ignores a stale one, and reverses a rejection after approval', async () => {
    await h.publish(subjects.time(), entry({ entryId: 'e-rev', hours: 8 }));
    await h.waitFor(async () => (await documentsOf('e-rev')).length === 1, 30_000, 'first charge');
    await h.publish(subjects.time(), entry({ entryId: 'e-rev', revision: 2, hours: 6 }));
    await h.waitFor(async () => (await documentsOf('e-rev')).length === 3, 30_000, 'reversal and recharge');
    await h.publish(subjects.time(), entry({ entryId: 'e-rev', revision: 1, hours: 9 }), 'stale-copy');
    await h.publish(subjects.time(), entry({ entryId: 'e-rev', revision: 3, hours: 6, status: 'rejected' }));
    await h.waitFor(async () => (await documentsOf('e-rev')).length === 4, 30_000, 'rejection reversal');
    const docs = await documentsOf('e-rev');
    expect(docs.map((d) => [d.external_id, d.amount, d.hours])).toEqual([
      ['e-rev:1:charge', '1200.00', '8.00'],
      ['e-rev:1:reversal', '-1200.00', '-8.00'],
      ['e-rev:2:charge', '900.00', '6.00'],
      ['e-rev:2:reversal', '-900.00', '-6.00'],
    ]);
    const total = docs.reduce((sum, d) => sum + Math.round(Number(d.amount) * 100), 0);
    expect(total).toBe(0);
    expect(await stageOf('e-rev', 3)).toBe('not_chargeable');
  });

  it('holds an entry that arrives before its assignment and charges it once the assignment arrives', async () => {
    const late = { ...assignment, assignmentId: 'a-late', taskId: 't-1', consultantId: 'c-late', revision: 1 };
    await h.publish(subjects.time(), entry({ entryId: 'e-early', consultantId: 'c-late' }));
    await h.waitFor(async () => (await stageOf('e-early', 1)) === 'waiting', 30_000, 'e-early waiting');
    await h.publish(subjects.assignment(late), late);
    await h.waitFor(async () => (await documentsOf('e-early')).length === 1, 30_000, 'e-early charged after its assignment');
    expect((await documentsOf('e-early'))[0]?.external_id).toBe('e-early:1:charge');
  });

  it('turns an entry whose assignment never arrives into no_assignment after the grace', async () => {
    await h.publish(subjects.time(), entry({ entryId: 'e-orphan', consultantId: 'c-nobody' }));
    const exception = await h.waitFor(async () => {
      const { rows } = await h.sql.query<{ code: string; message: string; status: string }>(`select code, message, status from billing_exception where entry_id = 'e-orphan'`);
      return rows[0];
    }, 30_000, 'no_assignment exception');
    expect(exception.code).toBe('no_assignment');
    expect(exception.message).toContain('c-nobody');
    expect(await stageOf('e-orphan', 1)).toBe('exception');
    expect(await documentsOf('e-orphan')).toEqual([]);
  });

  it('quarantines malformed JSON and invalid records as invalid_record naming the field, and keeps flowing', async () => {
    await h.publish(subjects.time(), '{"entryId": "e-bad-json", ');
    await h.publish(subjects.time(), entry({ entryId: 'e-bad-hours', hours: 30 }));
    await h.publish(subjects.time(), entry({ entryId: 'e-after-bad' }));
    await h.waitFor(async () => (await documentsOf('e-after-bad')).length === 1, 30_000, 'entry after bad ones charged');
    const { rows } = await h.sql.query<{ code: string; message: string; errors: { field: string; reason: string }[] | null; raw: string | null }>(
      `select code, message, errors, raw from billing_exception where code = 'invalid_record' order by first_seen_at`);
    const hours = rows.find((r) => r.errors?.some((e) => e.field === 'hours'));
    expect(hours?.message).toMatch(/hours/);
    const json = rows.find((r) => r.raw?.includes('e-bad-json'));
    expect(json?.errors?.[0]?.reason).toMatch(/not valid JSON/);
    const msgs = await h.waitFor(async () => {
      const info = await (await h.js.streams.get('BILLSTREAM_EXCEPTIONS')).info();
      return info.state.messages >= 2 ? info.state.messages : null;
    }, 15_000, 'exceptions published');
    expect(msgs).toBeGreaterThanOrEqual(2);
  });

  it('takes entries over HTTP ingest, rejects bad ones by index and field, and charges the good ones', async () => {
    const response = await fetch(`${h.runtime?.httpUrl}/v1/ingest/time`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify([entry({ entryId: 'e-http' }), entry({ entryId: 'bad id', hours: 0 })]),
    });
    expect(response.status).toBe(202);
    const body = await response.json() as { accepted: number; rejected: { index: number; errors: { field: string }[] }[] };
    expect(body.accepted).toBe(1);
    expect(body.rejected.map((r) => [r.index, r.errors.map((e) => e.field).sort()])).toEqual([[1, ['entryId', 'hours']]]);
    await h.waitFor(async () => (await documentsOf('e-http')).length === 1, 30_000, 'HTTP-ingested entry posted');
    const lifecycle = await (await fetch(`${h.runtime?.httpUrl}/v1/entries/e-http`)).json() as { revisions: { stage: string; amount: string }[] };
    expect(lifecycle.revisions[0]).toMatchObject({ amount: '1125.00' });
  });

  it('publishes each enriched entry with its enrichment and Schema-Version 1', async () => {
    await h.publish(subjects.time(), entry({ entryId: 'e-nb', taskId: 't-2' }));
    await h.publish(subjects.assignment({ projectId: 'p-1' }), { ...assignment, assignmentId: 'a-nb', taskId: 't-2' });
    await h.waitFor(async () => (await stageOf('e-nb', 1)) === 'non_billable', 30_000, 'non-billable decided');
    const stream = await h.js.streams.get('BILLSTREAM_ENRICHED');
    const msg = await h.waitFor(async () => stream.getMessage({ last_by_subj: 'enriched.time.amer.p-1' }).catch(() => null), 15_000, 'enriched message');
    expect(msg.header.get('Schema-Version')).toBe('1');
    const all = await h.waitFor(async () => {
      const found = [];
      const info = await stream.info();
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await stream.getMessage({ seq }).catch(() => null);
        if (m) found.push(m.json<Record<string, unknown>>());
      }
      return found.find((p) => p.entryId === 'e-nb') ?? null;
    }, 15_000, 'enriched e-nb');
    expect(all).toMatchObject({ entryId: 'e-nb', billable: false, role: 'senior', customerId: 'cust-1', contractId: 'k-1', legalEntity: 'le-us', currency: 'USD', costAmount: '600.00' });
    expect(await documentsOf('e-nb')).toEqual([]);
  });
});

describe('billing rules on the running pipeline', () => {
  let r: Harness;
  const exceptionOf = async (entryId: string) => {
    const { rows } = await r.sql.query<{ code: string; message: string }>(`select code, message from billing_exception where entry_id = $1`, [entryId]);
    return rows;
  };
  const docs = async (projectId: string) => r.erpDocuments(projectId);
  const variants = [
    { projectId: 'p-closed', status: 'closed' },
    { projectId: 'p-eur', currency: 'EUR' },
    { projectId: 'p-cap', notToExceed: '1000.00' },
    { projectId: 'p-ff', billingModel: 'fixed_fee' },
  ];

  beforeAll(async () => {
    r = await startHarness({ REFERENCE_GRACE_SECONDS: '30' });
    await r.startRuntime();
    await publishReference(r);
    for (const v of variants) {
      await r.publish(`ingest.project.amer.${v.projectId}`, { ...project, ...v });
      await r.publish(`ingest.assignment.amer.${v.projectId}`, { ...assignment, assignmentId: `a-${v.projectId}`, projectId: v.projectId });
    }
  });
  afterAll(async () => {
    await r?.[Symbol.asyncDispose]();
  });

  it.each([
    { entryId: 'x-closed', projectId: 'p-closed', code: 'project_closed', mentions: 'p-closed' },
    { entryId: 'x-eur', projectId: 'p-eur', code: 'rate_mismatch', mentions: 'EUR' },
  ])('an approved entry on $projectId becomes $code', async ({ entryId, projectId, code, mentions }) => {
    await r.publish(subjects.time(projectId), entry({ entryId, projectId }));
    const [exception] = await r.waitFor(async () => { const rows = await exceptionOf(entryId); return rows.length ? rows : null; }, 30_000, `${code} exception`);
    expect(exception?.code).toBe(code);
    expect(exception?.message).toContain(mentions);
  });

  it('a submitted entry on a closed project raises no exception and charges nothing', async () => {
    await r.publish(subjects.time('p-closed'), entry({ entryId: 'x-closed-submitted', projectId: 'p-closed', status: 'submitted' }));
    await r.publish(subjects.time('p-closed'), entry({ entryId: 'x-closed-marker', projectId: 'p-closed' }));
    await r.waitFor(async () => (await exceptionOf('x-closed-marker')).length > 0, 30_000, 'marker exception');
    expect(await exceptionOf('x-closed-submitted')).toEqual([]);
    expect(await docs('p-closed')).toEqual([]);
  });

  it('holds an entry that would cross notToExceed as cap_exceeded while a smaller later one still fits', async () => {
    await r.publish(subjects.time('p-cap'), entry({ entryId: 'x-cap-big', projectId: 'p-cap', hours: 7.5 }));
    await r.publish(subjects.time('p-cap'), entry({ entryId: 'x-cap-small', projectId: 'p-cap', hours: 5 }));
    await r.waitFor(async () => (await docs('p-cap')).length === 1, 30_000, 'small entry posted');
    expect((await docs('p-cap')).map((d) => [d.external_id, d.amount])).toEqual([['x-cap-small:1:charge', '750.00']]);
    const [held] = await r.waitFor(async () => { const rows = await exceptionOf('x-cap-big'); return rows.length ? rows : null; }, 30_000, 'cap exception');
    expect(held?.code).toBe('cap_exceeded');
    expect(held?.message).toContain('1000.00');
  });

  it('charges a completed milestone on an active fixed-fee project exactly once', async () => {
    const milestone = { milestoneId: 'm-1', projectId: 'p-ff', amount: '5000.00', currency: 'USD', status: 'complete' };
    await r.publish(subjects.milestone('p-ff'), milestone);
    await r.publish(subjects.milestone('p-ff'), milestone, 'milestone-again');
    await r.waitFor(async () => (await docs('p-ff')).length === 1, 30_000, 'milestone posted');
    await r.publish(subjects.milestone('p-ff'), milestone, 'milestone-third');
    await r.publish(subjects.time('p-ff'), entry({ entryId: 'x-ff', projectId: 'p-ff' }));
    await r.waitFor(async () => {
      const { rows } = await r.sql.query(`select 1 from entry_revision where entry_id = 'x-ff' and stage = 'non_billable'`);
      return rows.length > 0;
    }, 30_000, 'fixed-fee time decided');
    expect((await docs('p-ff')).map((d) => [d.external_id, d.kind, d.amount])).toEqual([['milestone:m-1', 'milestone', '5000.00']]);
  });
});

describe('a pipeline that stops on a defect', () => {
  it('says so through the runtime (billstream start then exits non-zero), and what it committed is charged', async () => {
    await using f = await startHarness();
    const runtime = await f.startRuntime();
    await publishReference(f);
    await f.publish(subjects.time(), entry({ entryId: 'e-before' }));
    await f.waitFor(async () => (await f.erpDocuments()).some((d) => d.entry_id === 'e-before'), 30_000, 'e-before posted');
    // A defect after the commit: the stream of turns ends on the error.
    const defect = new Error('observer defect');
    runtime.metrics.observeTurn = () => { throw defect; };
    await f.publish(subjects.time(), entry({ entryId: 'e-defect' }));
    const failure = await Promise.race([runtime.failed, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    expect(failure).toBe(defect);
    await f.waitFor(async () => (await f.erpDocuments()).some((d) => d.entry_id === 'e-defect'), 15_000, 'e-defect posted');
  });
});

describe('a batch whose turn fails for one project', () => {
  it('is decided project by project: the other projects are charged at once, the failing one once it can be', async () => {
    // A region's window long enough that both projects' entries share one batch.
    await using f = await startHarness({ BILLSTREAM_BATCH_MAX_WAIT_MS: '500' });
    await f.startRuntime();
    await publishProjects(f, 2);
    await f.publish(subjects.time('p-0'), entry({ entryId: 'w-warm', projectId: 'p-0' }));
    await f.waitFor(async () => (await f.erpDocuments('p-0')).length === 1, 30_000, 'the warm-up entry posted');

    // p-1's revisions cannot be written for now: its share of any turn fails, so the batch's does.
    await f.sql.query(`create function refuse_p1() returns trigger language plpgsql as $$
      begin if new.project_id = 'p-1' then raise exception 'p-1 refused for the test'; end if; return new; end $$`);
    await f.sql.query('create trigger refuse_p1 before insert on entry_revision for each row execute function refuse_p1()');
    const ids = Array.from({ length: 5 }, (_, i) => i);
    await Promise.all(ids.flatMap((i) => [
      f.publish(subjects.time('p-0'), entry({ entryId: `w-good-${i}`, projectId: 'p-0' })),
      f.publish(subjects.time('p-1'), entry({ entryId: `w-bad-${i}`, projectId: 'p-1' })),
    ]));
    await f.waitFor(async () => (await f.erpDocuments('p-0')).length === 6, 30_000, 'p-0 charged while p-1 fails');
    expect(await f.erpDocuments('p-1')).toEqual([]);
    const { rows: none } = await f.sql.query(`select 1 from entry_revision where project_id = 'p-1'`);
    expect(none).toEqual([]);

    // Its messages were handed back, not dropped: once the failure is gone they are charged, once.
    await f.sql.query('drop trigger refuse_p1 on entry_revision');
    const docs = await f.waitFor(async () => { const d = await f.erpDocuments('p-1'); return d.length === 5 ? d : null; }, 30_000, 'p-1 charged after the failure');
    expect(docs.map((d) => d.entry_id).sort()).toEqual(ids.map((i) => `w-bad-${i}`));
    expect((await f.erpDocuments('p-0')).length).toBe(6);
  });
});

describe("a region's lanes", () => {
  it("decide one lane's projects while another lane's turn is still running", async () => {
    // p-0 and p-5 are both in amer and in different lanes of two (laneOfProject);
    // the window is long enough that their entries share one region batch.
    expect(laneOfProject('p-0', 2)).not.toBe(laneOfProject('p-5', 2));
    await using f = await startHarness({ BILLSTREAM_BATCH_MAX_WAIT_MS: '500', BILLSTREAM_LANES_PER_REGION: '2' });
    await f.startRuntime();
    await publishProjects(f, 6);
    await f.publish(subjects.time('p-0'), entry({ entryId: 'l-warm', projectId: 'p-0' }));
    await f.waitFor(async () => (await f.erpDocuments('p-0')).length === 1, 30_000, 'the warm-up entry posted');

    // p-0's turn now takes 5 s in the database: with one lane per region, p-5's
    // entry would be in the same transaction and posted only after it.
    await f.sql.query(`create function slow_p0() returns trigger language plpgsql as $$
      begin if new.project_id = 'p-0' then perform pg_sleep(5); end if; return new; end $$`);
    await f.sql.query('create trigger slow_p0 before insert on entry_revision for each row execute function slow_p0()');
    await Promise.all([
      f.publish(subjects.time('p-0'), entry({ entryId: 'l-slow', projectId: 'p-0' })),
      f.publish(subjects.time('p-5'), entry({ entryId: 'l-fast', projectId: 'p-5' })),
    ]);
    await f.waitFor(async () => (await f.erpDocuments('p-5')).length === 1, 30_000, "p-5's entry posted");
    expect((await f.erpDocuments('p-0')).map((d) => d.entry_id)).toEqual(['l-warm']);
    await f.waitFor(async () => (await f.erpDocuments('p-0')).length === 2, 30_000, "p-0's slow entry posted after its turn");
  });
});
