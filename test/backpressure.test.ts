// Memory stays flat however deep the backlog: the consumer only pulls what the
// pipeline holds (max_ack_pending, and the in-flight bytes), and the outboxes
// wait in PostgreSQL, not in memory; an ERP slower than the actors slows the
// consumer instead of piling unposted lines into the outbox. A pipeline process whose heap is capped well below the backlog's size
// drains it without running out of memory, and its resident memory stays under
// the 512 MiB budget of a week-close instance.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { STREAMS, ingestConsumerName } from '../connectors/nats/topology.ts';
import { startHarness, type Harness } from './support/billstream.ts';
import { entry, publishProjects } from './support/fixtures.ts';

const PROJECTS = 50;

async function publishBacklog(h: Harness, count: number, prefix: string): Promise<void> {
  await publishProjects(h, PROJECTS);
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const projectId = `p-${i % PROJECTS}`;
    // Notes make each message ~1 KiB, so a backlog held in memory would show.
    inFlight.push(h.publish(`ingest.time.amer.${projectId}`, entry({ entryId: `${prefix}-${i}`, projectId, hours: 1, notes: 'x'.repeat(800) })));
    if (inFlight.length >= 512) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

/** Drains the backlog in a fresh pipeline process and returns its peak RSS in MiB. */
async function drainAndMeasure(h: Harness, prefix: string, count: number, heapMiB: number): Promise<number> {
  const child = spawn(process.execPath, [`--max-old-space-size=${heapMiB}`, 'ops/cli.ts', 'start'], {
    env: {
      ...process.env, NATS_URL: h.config.NATS_URL, DATABASE_URL: h.config.DATABASE_URL, ERP_BASE_URL: h.config.ERP_BASE_URL, HTTP_PORT: '0', HTTP_HOST: '127.0.0.1',
      BILLSTREAM_MAX_ACK_PENDING: '2000',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => { if (process.env.BILLSTREAM_TEST_VERBOSE) process.stderr.write(chunk); });
  let exitedEarly = false;
  child.once('exit', () => { exitedEarly = true; });
  let peak = 0;
  const sampler = setInterval(() => { void rssKiB(child.pid ?? 0).then((kib) => { peak = Math.max(peak, kib); }); }, 100);
  try {
    await h.waitFor(async () => {
      if (exitedEarly) throw new Error('the pipeline process died (out of memory?)');
      const { rows } = await h.sql.query<{ n: string }>(`select count(*) as n from erp_outbox where entry_id like $1 and status = 'posted'`, [`${prefix}-%`]);
      if (process.env.BILLSTREAM_TEST_VERBOSE) {
        const { rows: detail } = await h.sql.query(`select (select json_object_agg(status, n) from (select status, count(*) n from erp_outbox group by status) a) as outbox,
          (select json_object_agg(stage, n) from (select stage, count(*) n from entry_revision group by stage) b) as stages,
          (select count(*) from nats_outbox) as nats, (select max(last_error) from erp_outbox) as err`);
        console.log(new Date().toISOString(), rows[0]?.n, Math.round(peak / 1024), JSON.stringify(detail[0]));
      }
      return Number(rows[0]?.n) === count || null;
    }, 300_000, `${prefix} backlog drained`);
  } finally {
    clearInterval(sampler);
    if (!exitedEarly) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
  return peak / 1024;
}

describe('backpressure', () => {
  it('drains a 20,000-entry backlog (~20 MiB of payload) with the heap capped at 128 MiB and RSS under 512 MiB', async () => {
    await using h = await startHarness();
    await publishBacklog(h, 20_000, 'deep');
    const peak = await drainAndMeasure(h, 'deep', 20_000, 128);
    if (process.env.BILLSTREAM_TEST_VERBOSE) console.log({ peakRssMiB: peak });
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(512);
  }, 400_000);
});

describe('backpressure from the ERP', () => {
  it('a rate-limited ERP slows the consumer: unposted lines stay within ERP_MAX_PENDING plus one turn, the backlog waits in the stream, and every entry is charged once', async () => {
    await using h = await startHarness({
      ERP_MAX_PENDING: '200', BILLSTREAM_BATCH_MAX_ENTRIES: '50', BILLSTREAM_TURN_MAX_ENTRIES: '100',
      ERP_BATCH_SIZE: '50', ERP_POST_CONCURRENCY: '1', BILLSTREAM_MAX_ACK_PENDING: '300',
      // One lane, so one turn at a time: each lane's turn is admitted on its own,
      // and two lanes admitted at 200 waiting lines made 302 in one CI run.
      BILLSTREAM_LANES_PER_REGION: '1',
    });
    await publishProjects(h, 10);
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < 3000; i++) {
      inFlight.push(h.publish(`ingest.time.amer.p-${i % 10}`, entry({ entryId: `slow-${i}`, projectId: `p-${i % 10}`, hours: 1 })));
      if (inFlight.length >= 256) await Promise.all(inFlight.splice(0));
    }
    await Promise.all(inFlight);
    // Two requests a second of 50 lines: the ERP takes 100 lines a second, the actors could decide thousands.
    h.erp.setFaults({ rateLimitPerSecond: 2 });
    await h.startRuntime();
    const jsm = await jetstreamManager(h.client);
    let maxPending = 0;
    let posted = 0;
    const deadline = Date.now() + 6_000;
    while (Date.now() < deadline) {
      const { rows } = await h.sql.query<{ pending: string; posted: string }>(
        `select count(*) filter (where status = 'pending') as pending, count(*) filter (where status = 'posted') as posted from erp_outbox`);
      maxPending = Math.max(maxPending, Number(rows[0]?.pending));
      posted = Number(rows[0]?.posted);
      await new Promise((r) => setTimeout(r, 100));
    }
    const consumer = await jsm.consumers.info(STREAMS.ingest, ingestConsumerName('time'));
    // The lines were being posted all along, slowly.
    expect(posted).toBeGreaterThan(0);
    expect(posted).toBeLessThan(3000);
    // A turn is admitted while at most 200 lines wait and adds at most 100 more.
    expect(maxPending).toBeGreaterThan(0);
    expect(maxPending).toBeLessThanOrEqual(300);
    // What is not decided yet is still in the stream, not in memory or the ledger.
    expect(consumer.num_pending).toBeGreaterThan(0);

    h.erp.setFaults({ rateLimitPerSecond: 0 });
    await h.waitFor(async () => {
      const { rows } = await h.sql.query<{ n: string }>(`select count(*) as n from erp_document where entry_id like 'slow-%'`);
      return Number(rows[0]?.n) === 3000 || null;
    }, 120_000, 'all 3,000 entries posted');
    const { rows } = await h.sql.query<{ documents: string; entries: string }>(
      `select count(*) as documents, count(distinct external_id) as entries from erp_document where entry_id like 'slow-%'`);
    expect(rows[0]).toEqual({ documents: '3000', entries: '3000' });
  }, 180_000);
});
