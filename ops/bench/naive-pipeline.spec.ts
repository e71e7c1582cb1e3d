import { describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { from } from 'rxjs';
import { ErpClient } from '../../connectors/erp/erp-client.ts';
import { startErpSandbox } from '../../connectors/erp/sandbox.ts';
import { STREAMS, ensureTopology, ingestConsumerName } from '../../connectors/nats/topology.ts';
import { RECORD_KINDS } from '../../pipeline/model/types.ts';
import { applyToView, type ReferenceItem } from '../../pipeline/reference-store.ts';
import { ReferenceView } from '../../pipeline/reference-view.ts';
import { createTestLedger } from '../../test/support/database.ts';
import { assignment, consultant, entry, project, ratecards, subjects } from '../../test/support/fixtures.ts';
import { connectedNatsServer } from '../../test/support/nats-server.ts';
import { runNaivePipeline, runNaivePipelineInWorker, type NaiveMessage } from './naive-pipeline.ts';

/** The messages a stream holds, in order: subject, parsed payload and headers. */
async function streamMessages(nc: Parameters<typeof jetstreamManager>[0], stream: string) {
  const jsm = await jetstreamManager(nc);
  const { messages } = (await jsm.streams.info(stream)).state;
  const read = [];
  for (let seq = 1; seq <= messages; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (!m) throw new Error(`${stream} has no message ${seq}`);
    read.push({ subject: m.subject, payload: m.json<Record<string, unknown>>(), schemaVersion: m.header.get('Schema-Version') });
  }
  return read;
}

/** Project p-1 (as given) with its consultant, assignment and rate cards: what the entries bill against. */
function referenceOf(projectRecord: Record<string, unknown>): ReferenceItem[] {
  return [
    { kind: 'project', record: projectRecord }, { kind: 'consultant', record: consultant },
    { kind: 'assignment', record: assignment }, ...ratecards.map((record) => ({ kind: 'ratecard', record })),
  ] as ReferenceItem[];
}

/** A private ledger, nats-server with billstream's topology, and an ERP sandbox with a started client; all gone after `test`. */
async function withServices(test: (s: { ledger: Awaited<ReturnType<typeof createTestLedger>>; nats: Awaited<ReturnType<typeof connectedNatsServer>>; sandboxUrl: string; erp: ErpClient }) => Promise<void>): Promise<void> {
  await using ledger = await createTestLedger();
  await using nats = await connectedNatsServer(async (nc) => ensureTopology(await jetstreamManager(nc), RECORD_KINDS));
  const sandbox = await startErpSandbox({ databaseUrl: ledger.url, port: 0 });
  const erp = new ErpClient({ baseUrl: sandbox.url });
  try {
    await erp.start();
    await test({ ledger, nats, sandboxUrl: sandbox.url, erp });
  } finally {
    await erp.stop();
    await sandbox.close();
  }
}

describe('the bench naive pipeline', () => {
  it('does billstream stages, each project\'s entries in arrival order: dedupe, charge, reverse a revised charge, hold at the cap, and announce each', async () => {
    await withServices(async ({ ledger, nats, erp }) => {
      const view = new ReferenceView();
      applyToView(view, referenceOf({ ...project, notToExceed: '2000.00' }));

      const acked: string[] = [];
      const message = (record: Record<string, unknown>): NaiveMessage => ({
        subject: subjects.time(), data: new TextEncoder().encode(JSON.stringify(record)),
        ack: () => { acked.push(`${String(record.entryId)}:${String(record.revision)}`); },
      });
      // Project p-1 bills 150.00 an hour up to a notToExceed of 2000.00.
      const messages = [
        message(entry({ entryId: 'e-1', hours: 7.5 })), // posted 1125.00
        message(entry({ entryId: 'e-1', hours: 7.5 })), // the same revision again: deduped by the ledger's key
        message(entry({ entryId: 'e-2', taskId: 't-2' })), // no assignment for t-2: no charge, no announcement
        message(entry({ entryId: 'e-1', revision: 2, hours: 5 })), // reverses revision 1's charge, then charges 5 h: posted 750.00
        message(entry({ entryId: 'e-3', hours: 7.5 })), // posted 1875.00
        message(entry({ entryId: 'e-4', hours: 1 })), // 2025.00 would pass the cap: held
      ];
      // As many entries at once as the bench runs: the project's order holds all the same.
      await runNaivePipeline({ js: jetstream(nats.nc), orm: ledger.orm, erp, view }, from(messages), messages.length);

      expect(acked).toEqual(['e-1:1', 'e-1:1', 'e-2:1', 'e-1:2', 'e-3:1', 'e-4:1']);
      const documents = await erp.listTransactions('p-1');
      expect(documents.map((d) => [d.externalId, d.hours, d.amount])).toEqual([
        ['e-1:1:charge', '7.50', '1125.00'], ['e-1:1:reversal', '-7.50', '-1125.00'], ['e-1:2:charge', '5.00', '750.00'], ['e-3:1:charge', '7.50', '1125.00'],
      ]);
      const { rows } = await ledger.sql.query<{ entry_id: string; revision: number; stage: string }>('select entry_id, revision, stage from entry_revision order by entry_id, revision');
      expect(rows).toEqual([
        { entry_id: 'e-1', revision: 1, stage: 'reversed' }, { entry_id: 'e-1', revision: 2, stage: 'charged' }, { entry_id: 'e-2', revision: 1, stage: 'waiting' },
        { entry_id: 'e-3', revision: 1, stage: 'charged' }, { entry_id: 'e-4', revision: 1, stage: 'held' },
      ]);
      const { rows: totals } = await ledger.sql.query('select project_id, charged_minor, reversed_minor, held_minor from project_billing');
      expect(totals).toEqual([{ project_id: 'p-1', charged_minor: '300000', reversed_minor: '112500', held_minor: '15000' }]);
      const { rows: exceptions } = await ledger.sql.query('select code, status, entry_id, revision from billing_exception');
      expect(exceptions).toEqual([{ code: 'cap_exceeded', status: 'open', entry_id: 'e-4', revision: 1 }]);

      const enriched = await streamMessages(nats.nc, STREAMS.enriched);
      expect(enriched.map((m) => [m.subject, m.payload.revision, m.payload.amount, m.schemaVersion])).toEqual([
        ['enriched.time.amer.p-1', 1, '1125.00', '1'], ['enriched.time.amer.p-1', 2, '750.00', '1'],
        ['enriched.time.amer.p-1', 1, '1125.00', '1'], ['enriched.time.amer.p-1', 1, '150.00', '1'],
      ]);
      const held = await streamMessages(nats.nc, STREAMS.exceptions);
      expect(held.map((m) => [m.subject, m.payload.code, (m.payload.record as { entryId: string }).entryId, m.payload.attempts])).toEqual([
        ['exceptions.cap_exceeded.amer.p-1', 'cap_exceeded', 'e-4', 1],
      ]);
      const posted = await streamMessages(nats.nc, STREAMS.billing);
      expect(posted.map((m) => [m.subject, m.payload.externalId])).toEqual([
        ['billing.posted.amer.p-1', 'e-1:1:charge'], ['billing.posted.amer.p-1', 'e-1:1:reversal'], ['billing.posted.amer.p-1', 'e-1:2:charge'],
        ['billing.posted.amer.p-1', 'e-3:1:charge'],
      ]);
      expect(posted.map((m) => m.payload.documentId)).toEqual(documents.map((d) => d.documentId));
    });
  });

  it('runs in a worker thread of its own, from the ingest stream\'s durable consumer, acking every entry it takes', async () => {
    await withServices(async ({ ledger, nats, sandboxUrl, erp }) => {
      const js = jetstream(nats.nc);
      for (const record of [entry({ entryId: 'e-1', hours: 7.5 }), entry({ entryId: 'e-1', revision: 2, hours: 5 })]) await js.publish(subjects.time(), JSON.stringify(record));

      const seconds = await runNaivePipelineInWorker({
        natsUrl: nats.nats.url, databaseUrl: ledger.url, erpBaseUrl: sandboxUrl, reference: referenceOf(project), stream: STREAMS.ingest, durable: ingestConsumerName('time'), count: 2,
      });

      expect(seconds).toBeGreaterThan(0);
      expect((await erp.listTransactions('p-1')).map((d) => d.externalId)).toEqual(['e-1:1:charge', 'e-1:1:reversal', 'e-1:2:charge']);
      const consumer = await (await jetstreamManager(nats.nc)).consumers.info(STREAMS.ingest, ingestConsumerName('time'));
      expect([consumer.num_pending, consumer.num_ack_pending, consumer.ack_floor.stream_seq]).toEqual([0, 0, 2]);
    });
  });
});
