// Memory stays flat however deep the backlog: the consumer only pulls what the
// pipeline holds (max_ack_pending), and the outboxes wait in PostgreSQL, not in
// memory. A pipeline process whose heap is capped well below the backlog's size
// drains it without running out of memory, and its resident memory stays under
// the 512 MiB budget of a week-close instance.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
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
