// Three instances share one week close through partition leases; one is killed
// with SIGKILL mid-stream. Every entry is charged exactly once, each project's
// order is kept (revision 1 charged, then reversed by revision 2), and the dead
// instance's partitions are taken over within the lease TTL.
import { spawn, type ChildProcess } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { formatMoney, lineAmount, parseHours, parseMoney } from '../pipeline/model/money.ts';
import { startHarness, type Harness } from './support/billstream.ts';
import { entry, publishProjects } from './support/fixtures.ts';
import { startNodeFlags } from '../ops/commands/start.ts';
import { STREAMS } from '../connectors/nats/topology.ts';

const PROJECTS = 24;
const PARTITIONS = 8;
const LEASE_TTL_SECONDS = 3;

/** The last lines each instance wrote to stderr, printed when the test fails. */
const stderrTails = new Map<string, string[]>();

function startInstance(h: Harness, instanceId: string): ChildProcess {
  const child = spawn(process.execPath, [...startNodeFlags(), 'ops/cli.ts', 'start'], {
    env: {
      ...process.env, NATS_URL: h.config.NATS_URL, DATABASE_URL: h.config.DATABASE_URL, ERP_BASE_URL: h.config.ERP_BASE_URL,
      HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', BILLSTREAM_PARTITIONS: String(PARTITIONS), BILLSTREAM_INSTANCE_ID: instanceId,
      BILLSTREAM_LEASE_TTL_SECONDS: String(LEASE_TTL_SECONDS), BILLSTREAM_ACK_WAIT_SECONDS: '5', ERP_POST_LEASE_SECONDS: '3',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const tail: string[] = [];
  stderrTails.set(instanceId, tail);
  child.stderr?.on('data', (chunk: Buffer) => {
    if (process.env.BILLSTREAM_TEST_VERBOSE) process.stderr.write(`[${instanceId}] ${chunk.toString()}`);
    tail.push(...chunk.toString().split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 40));
  });
  return child;
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

async function partitionOwners(h: Harness): Promise<Map<number, string>> {
  const kv = await new Kvm(h.client).open('billstream_leases');
  const owners = new Map<number, string>();
  const keys: string[] = [];
  for await (const key of await kv.keys('partition.>')) keys.push(key);
  for (const key of keys) {
    const e = await kv.get(key);
    if (e && e.operation === 'PUT') owners.set(Number(key.split('.')[1]), e.string());
  }
  return owners;
}

/** What is stuck where, when the test times out: the ledger by status, the consumers' backlogs, the instances' last words. */
async function diagnosis(h: Harness): Promise<string> {
  const lines: string[] = [];
  const outbox = await h.sql.query(`select o.status, count(*)::int as n, max(o.attempts) as max_attempts, min(p.next_attempt_at) as next_at, max(o.last_error) as last_error
    from erp_outbox o left join erp_pending p on p.id = o.id where o.entry_id like 'k-%' group by o.status`);
  lines.push(`erp_outbox: ${JSON.stringify(outbox.rows)}`);
  const stages = await h.sql.query(`select stage, count(*)::int as n from entry_revision where entry_id like 'k-%' group by stage`);
  lines.push(`entry_revision: ${JSON.stringify(stages.rows)}`);
  const exceptions = await h.sql.query(`select code, count(*)::int as n, max(message) as message from billing_exception group by code`);
  lines.push(`billing_exception: ${JSON.stringify(exceptions.rows)}`);
  const jsm = await jetstreamManager(h.client);
  for (const stream of [STREAMS.ingest, STREAMS.partitioned]) {
    for await (const c of jsm.consumers.list(stream)) {
      lines.push(`${stream}/${c.name}: pending ${c.num_pending}, ack pending ${c.num_ack_pending}, redelivered ${c.num_redelivered}, waiting ${c.num_waiting}`);
    }
  }
  for (const [id, tail] of stderrTails) lines.push(`[${id}] ${tail.join(`\n[${id}] `)}`);
  return lines.join('\n');
}

describe('several instances', () => {
  it('share the work through partition leases; one killed mid-stream, every entry is charged once, in order, and its partitions are taken over within the lease TTL', async () => {
    await using h = await startHarness();
    await publishProjects(h, PROJECTS);
    const instances = new Map([['a', startInstance(h, 'a')], ['b', startInstance(h, 'b')], ['c', startInstance(h, 'c')]]);
    try {
      await h.waitFor(async () => {
        const owners = await partitionOwners(h);
        return owners.size === PARTITIONS && new Set(owners.values()).size === 3 ? owners : null;
      }, 60_000, 'all partitions owned, spread over three instances');

      let expectedMinor = 0n;
      const revised: string[] = [];
      const publishing: Promise<void>[] = [];
      for (let i = 0; i < 3000; i++) {
        const projectId = `p-${i % PROJECTS}`;
        const hours = ((i % 29) + 1) / 4;
        publishing.push(h.publish(`ingest.time.amer.${projectId}`, entry({ entryId: `k-${i}`, projectId, hours })));
        if (i % 10 === 0) {
          // Revision 2 right behind revision 1: order inside the project decides the documents.
          publishing.push(h.publish(`ingest.time.amer.${projectId}`, entry({ entryId: `k-${i}`, revision: 2, projectId, hours: 1 })));
          revised.push(`k-${i}`);
          expectedMinor += lineAmount(parseHours(1), parseMoney('150.00'));
        } else {
          expectedMinor += lineAmount(parseHours(hours), parseMoney('150.00'));
        }
        if (publishing.length >= 256) await Promise.all(publishing.splice(0));
        if (i === 1500) {
          await Promise.all(publishing.splice(0));
          const victim = instances.get('b') as ChildProcess;
          const ownedByVictim = [...(await partitionOwners(h))].filter(([, o]) => o === 'b').map(([p]) => p);
          expect(ownedByVictim.length).toBeGreaterThan(0);
          victim.kill('SIGKILL');
          await exited(victim);
          const killedAt = Date.now();
          await h.waitFor(async () => {
            const owners = await partitionOwners(h);
            return ownedByVictim.every((p) => owners.has(p) && owners.get(p) !== 'b') || null;
          }, 30_000, 'the dead instance\'s partitions taken over');
          // Taken over within the lease TTL plus one renewal round of the survivors.
          expect(Date.now() - killedAt).toBeLessThan((LEASE_TTL_SECONDS + LEASE_TTL_SECONDS / 3 + 1) * 1000);
        }
      }
      await Promise.all(publishing);

      await h.waitFor(async () => {
        const { rows } = await h.sql.query<{ n: string }>(`select count(*) as n from erp_outbox where entry_id like 'k-%' and status = 'posted'`);
        return Number(rows[0]?.n) === 3000 + 2 * revised.length || null;
      }, 180_000, 'every document posted').catch(async (err: unknown) => {
        throw new Error(`${String(err)}\n${await diagnosis(h).catch((e: unknown) => `(no diagnosis: ${String(e)})`)}`);
      });

      const docs = (await h.erpDocuments()).filter((d) => d.entry_id?.startsWith('k-'));
      expect(new Set(docs.map((d) => d.external_id)).size).toBe(docs.length);
      expect(docs.length).toBe(3000 + 2 * revised.length);
      expect(formatMoney(docs.reduce((sum, d) => sum + parseMoney(d.amount), 0n))).toBe(formatMoney(expectedMinor));
      const byEntry = new Map<string, string[]>();
      for (const d of docs) byEntry.set(d.entry_id as string, [...(byEntry.get(d.entry_id as string) ?? []), d.external_id]);
      for (const id of revised) expect(byEntry.get(id)?.sort()).toEqual([`${id}:1:charge`, `${id}:1:reversal`, `${id}:2:charge`]);
      const { rows: stale } = await h.sql.query(`select 1 from entry_revision where entry_id like 'k-%' and stage = 'stale'`);
      expect(stale).toEqual([]);
    } finally {
      for (const child of instances.values()) child.kill('SIGTERM');
      await Promise.all([...instances.values()].map(exited));
    }
  }, 300_000);
});
