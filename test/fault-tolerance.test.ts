// Faults a week close must survive: the pipeline process killed mid-batch, the
// broker killed mid-stream, the ERP throttling and failing. After each, every
// entry is charged exactly once and the totals equal the expected ones.
import { spawn, type ChildProcess } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { STREAMS, ensureConsumer, ingestConsumerName } from '../connectors/nats/topology.ts';
import { lineAmount, parseHours, parseMoney, formatMoney } from '../pipeline/model/money.ts';
import { startHarness, type Harness } from './support/billstream.ts';
import { takeAndDie } from './support/nats-server.ts';
import { entry, publishProjects } from './support/fixtures.ts';
import { startNodeFlags } from '../ops/commands/start.ts';

const PROJECTS = 12;


/** Entries spread over the projects, with hours that exercise rounding; returns the expected ERP total in cents. */
function weekOfEntries(count: number, prefix: string): { records: Record<string, unknown>[]; expectedMinor: bigint } {
  const records: Record<string, unknown>[] = [];
  let expectedMinor = 0n;
  for (let i = 0; i < count; i++) {
    const hours = ((i % 37) + 1) / 4 + (i % 3 === 0 ? 0.01 : 0);
    const workDate = i % 2 === 0 ? '2026-11-10' : '2026-11-17';
    const rate = workDate < '2026-11-16' ? '150.00' : '160.00';
    records.push(entry({ entryId: `${prefix}-${i}`, projectId: `p-${i % PROJECTS}`, hours, workDate }));
    expectedMinor += lineAmount(parseHours(hours), parseMoney(rate));
  }
  return { records, expectedMinor };
}

async function publishAll(h: Harness, records: Record<string, unknown>[]): Promise<void> {
  const inFlight: Promise<void>[] = [];
  for (const record of records) {
    inFlight.push(h.publish(`ingest.time.amer.${String(record.projectId)}`, record));
    if (inFlight.length >= 256) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
}

async function ledgerCounts(h: Harness, prefix: string): Promise<{ decided: number; outbox: number; posted: number }> {
  const { rows } = await h.sql.query<{ decided: string; outbox: string; posted: string }>(
    `select (select count(*) from entry_revision where entry_id like $1 and stage <> 'waiting') as decided,
            (select count(*) from erp_outbox where entry_id like $1) as outbox,
            (select count(*) from erp_outbox where entry_id like $1 and status = 'posted') as posted`, [`${prefix}-%`]);
  const r = rows[0] ?? { decided: '0', outbox: '0', posted: '0' };
  return { decided: Number(r.decided), outbox: Number(r.outbox), posted: Number(r.posted) };
}

async function expectChargedOnce(h: Harness, prefix: string, count: number, expectedMinor: bigint): Promise<void> {
  const docs = (await h.erpDocuments()).filter((d) => d.entry_id?.startsWith(`${prefix}-`));
  expect(docs.length).toBe(count);
  expect(new Set(docs.map((d) => d.entry_id)).size).toBe(count);
  expect(docs.every((d) => d.kind === 'charge')).toBe(true);
  const erpTotal = docs.reduce((sum, d) => sum + parseMoney(d.amount), 0n);
  expect(formatMoney(erpTotal)).toBe(formatMoney(expectedMinor));
  const { rows } = await h.sql.query<{ n: string; total: string }>(
    `select count(*) as n, coalesce(sum(amount_minor), 0) as total from erp_outbox where entry_id like $1`, [`${prefix}-%`]);
  expect(Number(rows[0]?.n)).toBe(count);
  expect(formatMoney(BigInt(rows[0]?.total ?? '0'))).toBe(formatMoney(expectedMinor));
}

function startPipelineProcess(h: Harness): ChildProcess {
  const child = spawn(process.execPath, [...startNodeFlags(), 'ops/cli.ts', 'start'], {
    env: {
      ...process.env, NATS_URL: h.config.NATS_URL, DATABASE_URL: h.config.DATABASE_URL, ERP_BASE_URL: h.config.ERP_BASE_URL,
      HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', REFERENCE_GRACE_SECONDS: '300',
      // A killed instance's unacked messages come back after the ack wait; keep the test short.
      BILLSTREAM_ACK_WAIT_SECONDS: '5',
      ERP_POST_LEASE_SECONDS: '3',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => { if (process.env.BILLSTREAM_TEST_VERBOSE) process.stderr.write(chunk); });
  return child;
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

describe('fault tolerance', () => {
  it('a pipeline process killed with SIGKILL mid-batch and started again loses nothing and charges nothing twice', async () => {
    await using h = await startHarness();
    await publishProjects(h, PROJECTS);
    const { records, expectedMinor } = weekOfEntries(6000, 'kill');
    await publishAll(h, records);
    // The ERP answers slowly, so batches are mid-flight in both the actors and the poster when the kill lands.
    h.erp.setFaults({ latencyMs: 150 });
    const first = startPipelineProcess(h);
    try {
      await h.waitFor(async () => (await ledgerCounts(h, 'kill')).outbox >= 500, 60_000, 'some entries decided');
      first.kill('SIGKILL');
      await exited(first);
    } finally {
      first.kill('SIGKILL');
    }
    const atKill = await ledgerCounts(h, 'kill');
    if (process.env.BILLSTREAM_TEST_VERBOSE) console.log('at kill', atKill);
    // The kill really landed mid-stream: some entries decided, not all of them.
    expect(atKill.decided).toBeLessThan(records.length);
    h.erp.setFaults({ latencyMs: 0 });
    const second = startPipelineProcess(h);
    try {
      await h.waitFor(async () => {
        const counts = await ledgerCounts(h, 'kill');
        if (process.env.BILLSTREAM_TEST_VERBOSE) console.log(new Date().toISOString(), counts);
        return counts.posted === records.length || null;
      }, 120_000, 'every entry posted after restart');
    } finally {
      second.kill('SIGTERM');
      await exited(second);
    }
    await expectChargedOnce(h, 'kill', records.length, expectedMinor);
  }, 300_000);

  it('a process killed holding entries unacked: the next one takes them before the revisions published after', async () => {
    // A long ack wait: without resuming from the ack floor, the held revisions would come back only after it.
    await using h = await startHarness({ BILLSTREAM_ACK_WAIT_SECONDS: '60' });
    await publishProjects(h, PROJECTS);
    const jsm = await jetstreamManager(h.client);
    await ensureConsumer(jsm, STREAMS.ingest, ingestConsumerName('time'), 'ingest.time.>', { ackWaitMs: 60_000 });
    const held = Array.from({ length: 5 }, (_, i) => entry({ entryId: `held-${i}`, projectId: `p-${i % PROJECTS}`, hours: 2 }));
    await publishAll(h, held);
    // The killed process: it took the first revisions and never acked them.
    expect(await takeAndDie(h.config.NATS_URL, STREAMS.ingest, ingestConsumerName('time'), held.length)).toBe(held.length);
    await publishAll(h, held.map((r) => ({ ...r, revision: 2, hours: 3 })));

    await h.startRuntime();
    await h.waitFor(async () => (await h.erpDocuments()).filter((d) => d.entry_id?.startsWith('held-')).length === 3 * held.length || null, 30_000, 'both revisions of every held entry billed');
    const docs = (await h.erpDocuments()).filter((d) => d.entry_id?.startsWith('held-'));
    for (let i = 0; i < held.length; i++) {
      expect(docs.filter((d) => d.entry_id === `held-${i}`).map((d) => d.external_id).sort()).toEqual([`held-${i}:1:charge`, `held-${i}:1:reversal`, `held-${i}:2:charge`]);
    }
    const { rows: stale } = await h.sql.query(`select 1 from entry_revision where entry_id like 'held-%' and stage = 'stale'`);
    expect(stale).toEqual([]);
  }, 120_000);

  it('nats-server killed with SIGKILL mid-stream and restarted on the same store loses nothing and charges nothing twice', async () => {
    await using h = await startHarness();
    await h.startRuntime();
    await publishProjects(h, PROJECTS);
    const { records, expectedMinor } = weekOfEntries(3000, 'broker');
    await publishAll(h, records.slice(0, 1500));
    await h.waitFor(async () => (await ledgerCounts(h, 'broker')).decided >= 200, 60_000, 'processing under way');
    await h.nats.kill();
    await new Promise((r) => setTimeout(r, 500));
    await h.nats.restart();
    await h.waitFor(async () => h.client.isClosed() ? null : (await h.js.streams.get('BILLSTREAM_INGEST').then((s) => s.info()).then(() => true).catch(() => null)), 30_000, 'broker back');
    await publishAll(h, records.slice(1500));
    await h.waitFor(async () => (await ledgerCounts(h, 'broker')).posted === records.length || null, 120_000, 'every entry posted after the broker restart');
    await expectChargedOnce(h, 'broker', records.length, expectedMinor);
  }, 240_000);

  it('an ERP answering 429 and 503 for a while gets everything once it recovers, nothing twice', async () => {
    await using h = await startHarness();
    await h.startRuntime();
    await publishProjects(h, PROJECTS);
    h.erp.setFaults({ errorRate: 1 });
    const { records, expectedMinor } = weekOfEntries(800, 'flaky');
    await publishAll(h, records);
    await h.waitFor(async () => (await ledgerCounts(h, 'flaky')).outbox === records.length || null, 60_000, 'all decided while the ERP fails');
    expect((await ledgerCounts(h, 'flaky')).posted).toBe(0);
    h.erp.setFaults({ errorRate: 0, rateLimitPerSecond: 5 });
    await new Promise((r) => setTimeout(r, 2_000));
    h.erp.setFaults({ rateLimitPerSecond: 0 });
    await h.waitFor(async () => (await ledgerCounts(h, 'flaky')).posted === records.length || null, 120_000, 'every entry posted after recovery');
    await expectChargedOnce(h, 'flaky', records.length, expectedMinor);
  }, 240_000);
});
