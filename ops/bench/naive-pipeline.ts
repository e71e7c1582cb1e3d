// The bench's second row: billstream's stages for a time entry, done the naive
// way, one entry at a time. Decode and validate, dedupe by the ledger's key,
// enrich and decide against the project's billing totals and its notToExceed
// cap, reverse what the entry's earlier revision charged, one ORM flush, one
// ERP call, then each announcement (`enriched.time.*`, `exceptions.*` for an
// entry held at the cap, then `billing.posted.*` for every line the ERP booked)
// published with its ack awaited, and last the entry's own ack. A project's
// entries go one after another in arrival order, as billstream's per-project
// actors decide them; up to NAIVE_CONCURRENCY entries of different projects run
// side by side. What billstream does per batch, per project and per statement,
// this does per entry; the stages and what they produce are the same, so the
// ratio between the two rows is the design's.
//
// Left out, and so in the naive row's favour: exceptions other than the cap's
// (the bench's week has none past validation), and entries waiting for reference
// data (the bench loads every project, assignment and rate card before either
// row runs).
import type { MikroORM } from '@mikro-orm/postgresql';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { lastValueFrom, take, type Observable } from 'rxjs';
import { serialPerKey } from '../../operators/serialPerKey.ts';
import { ErpClient } from '../../connectors/erp/erp-client.ts';
import type { ErpTransaction } from '../../connectors/erp/types.ts';
import { NATS_CLIENT_SETTINGS } from '../../connectors/nats/connection.ts';
import { jetStreamSource } from '../../connectors/nats/jetstream-source.ts';
import { publishMessage } from '../../connectors/nats/publish.ts';
import { enrichedAnnouncement, postedAnnouncement } from '../../pipeline/announcements.ts';
import { exceptionAnnouncement, exceptionRow } from '../../pipeline/exception-records.ts';
import { evaluateEntry, wouldExceedCap } from '../../pipeline/model/billing-rules.ts';
import { chargeOf, reversalOf } from '../../pipeline/model/erp-lines.ts';
import { formatMoney, parseMoney } from '../../pipeline/model/money.ts';
import { decodeRecord } from '../../pipeline/model/records.ts';
import type { TimeRecord } from '../../pipeline/model/types.ts';
import type { NatsOutboxRow } from '../../pipeline/nats-outbox.ts';
import { applyToView, type ReferenceItem } from '../../pipeline/reference-store.ts';
import { ReferenceView } from '../../pipeline/reference-view.ts';
import { openLedger } from '../../pipeline/state/orm.ts';
import { BillingException, EntryRevision, ProjectBilling } from '../../pipeline/state/entities.ts';
import { runTimedWorker, serveTimedWork, timedWorkerData } from './timed-worker.ts';

export interface NaivePipeline {
  js: JetStreamClient;
  orm: MikroORM;
  erp: ErpClient;
  /** Every project, consultant, assignment and rate card, loaded before the entries. */
  view: ReferenceView;
}

/** An ingest message as the naive pipeline reads it: a JetStream message's subject, bytes and ack. */
export interface NaiveMessage {
  subject: string;
  data: Uint8Array;
  ack(): void;
}

/** Entries of different projects handled at once: each waits on its own round trips, so a few run side by side. */
export const NAIVE_CONCURRENCY = 16;

/**
 * Takes `count` messages from `messages` through every stage: a project's
 * entries one at a time in arrival order, in billstream's own mailbox operator
 * (the project id is the subject's last token, `ingest.time.<region>.<projectId>`),
 * entries of up to `concurrency` projects at once.
 */
export async function runNaivePipeline(pipeline: NaivePipeline, messages: Observable<NaiveMessage>, count: number, concurrency = NAIVE_CONCURRENCY): Promise<void> {
  await lastValueFrom(messages.pipe(
    take(count),
    serialPerKey((msg) => msg.subject.split('.')[3] ?? msg.subject, (_project, [msg]) => naiveEntry(pipeline, msg as NaiveMessage), { maxConcurrentKeys: concurrency, maxBatch: 1 }),
  ), { defaultValue: undefined });
}

/** One time entry through every stage, start to end. */
export async function naiveEntry(pipeline: NaivePipeline, msg: NaiveMessage): Promise<void> {
  const decoded = decodeRecord('time', msg.data);
  if (!decoded.ok) { msg.ack(); return; }
  const entry = decoded.record as TimeRecord;
  const region = msg.subject.split('.')[2] ?? 'unknown';
  const outcome = evaluateEntry(entry, pipeline.view.snapshotFor(entry.projectId, entry.consultantId));
  const project = pipeline.view.project(entry.projectId);
  const enrichment = outcome.kind === 'enriched' ? outcome : null;
  const em = pipeline.orm.em.fork();

  const lines: Record<string, string | number>[] = [];
  const now = new Date();
  let held: ReturnType<typeof exceptionRow> | null = null;
  try {
    await em.transactional(async (tx) => {
      // The project's totals, locked for the entry's decision as billstream's turn locks them.
      const billing = await tx.findOne(ProjectBilling, entry.projectId, { lockMode: LockMode.PESSIMISTIC_WRITE })
        ?? tx.create(ProjectBilling, { projectId: entry.projectId, chargedMinor: 0n, reversedMinor: 0n, heldMinor: 0n, turns: 0n });
      billing.turns += 1n;

      // A later revision reverses what the one before it charged (CONTRACT §3.8): a
      // revision 1 has none before it, so only later revisions look.
      const earlier = entry.revision > 1
        ? await tx.findOne(EntryRevision, { entryId: entry.entryId, revision: { $lt: entry.revision } }, { orderBy: { revision: 'desc' } })
        : null;
      if (earlier?.stage === 'charged' && project) {
        lines.push(reversalOf(chargeOf(earlier.record as unknown as TimeRecord, project, {
          amountMinor: earlier.amountMinor ?? null, rateMinor: earlier.rateMinor ?? null, currency: earlier.currency ?? project.currency, role: earlier.role ?? '',
        }, earlier.hoursHundredths)));
        earlier.stage = 'reversed';
        billing.reversedMinor += earlier.amountMinor ?? 0n;
      }
      const chargeable = enrichment !== null && project !== undefined && entry.status === 'approved' && enrichment.billable && enrichment.amountMinor !== null;
      let stage = enrichment ? (entry.status === 'approved' ? 'non_billable' : 'not_chargeable') : outcome.kind;
      if (chargeable) {
        const amount = enrichment.amountMinor as bigint;
        const posted = billing.chargedMinor - billing.reversedMinor;
        if (wouldExceedCap(project.notToExceed === undefined ? null : parseMoney(project.notToExceed), posted, amount)) {
          stage = 'held';
          billing.heldMinor += amount;
          held = exceptionRow({
            code: 'cap_exceeded', recordKind: 'time', recordId: entry.entryId, revision: entry.revision, projectId: entry.projectId, region, record: entry,
            message: `charging ${formatMoney(amount)} ${enrichment.currency} for entry ${entry.entryId} revision ${entry.revision} would take project ${entry.projectId} past its notToExceed of ${project.notToExceed} (posted so far ${formatMoney(posted)})`,
          });
          tx.create(BillingException, {
            id: held.id, code: held.code, status: 'open', recordKind: held.record_kind, entryId: held.entry_id, revision: held.revision, projectId: held.project_id,
            region: held.region, message: held.message, errors: null, record: entry as unknown as Record<string, unknown>, raw: null, attempts: 1, firstSeenAt: now, lastSeenAt: now,
          });
        } else {
          stage = 'charged';
          billing.chargedMinor += amount;
          lines.push(chargeOf(entry, project, enrichment, enrichment.hoursHundredths));
        }
      }
      tx.create(EntryRevision, {
        entryId: entry.entryId, revision: entry.revision, projectId: entry.projectId, region, status: entry.status, stage,
        exceptionCode: stage === 'held' ? 'cap_exceeded' : null,
        billable: enrichment?.billable ?? null, role: enrichment?.role ?? null, rateMinor: enrichment?.rateMinor ?? null, amountMinor: enrichment?.amountMinor ?? null,
        currency: enrichment?.currency ?? null, hoursHundredths: enrichment?.hoursHundredths ?? 0n, workDate: entry.workDate,
        record: entry as unknown as Record<string, unknown>, firstSeenAt: now, enrichedAt: enrichment ? now : null, decidedAt: now,
      });
    });
  } catch (err) {
    // A redelivered (entryId, revision): the ledger's primary key is the naive pipeline's dedupe.
    if (err instanceof UniqueConstraintViolationException) { msg.ack(); return; }
    throw err;
  }

  const booked = lines.length === 0 ? [] : await pipeline.erp.postTransactions(lines as unknown as ErpTransaction[], `naive:${entry.entryId}:${entry.revision}`);
  if (enrichment && project) {
    await publish(pipeline.js, enrichedAnnouncement({
      entry, region: project.region, billable: enrichment.billable, role: enrichment.role, rateMinor: enrichment.rateMinor, amountMinor: enrichment.amountMinor,
      currency: enrichment.currency, customerId: project.customerId, contractId: project.contractId, legalEntity: project.legalEntity,
      costAmountMinor: enrichment.costAmountMinor, processedAt: now, traceId: null, traceParent: null,
    }));
  }
  if (held) await publish(pipeline.js, exceptionAnnouncement(held, now, 1));
  for (const [i, result] of booked.entries()) {
    await publish(pipeline.js, postedAnnouncement({
      id: '', externalId: result.externalId, documentId: result.documentId, projectId: entry.projectId, region: project?.region ?? region,
      traceParent: null, transaction: lines[i] as Record<string, unknown>,
    }));
  }
  msg.ack();
}

/** One announcement published as billstream's relay would, its ack awaited. */
async function publish(js: JetStreamClient, row: NatsOutboxRow): Promise<void> {
  await publishMessage(js, { subject: row.subject, msgId: row.msg_id, payload: row.payload, headers: row.headers });
}

export interface NaiveInWorker {
  natsUrl: string;
  /** The naive pipeline's own ledger: migrated by the worker before it is ready. */
  databaseUrl: string;
  erpBaseUrl: string;
  /** Every project, consultant, assignment and rate card, for the worker's own view. */
  reference: ReferenceItem[];
  /** The entries: a stream and a durable pull consumer on it. */
  stream: string;
  durable: string;
  count: number;
}

/**
 * `runNaivePipeline` in a worker thread of its own (timed-worker.ts), with its
 * own ledger pool, ERP client, view and NATS connection (billstream's client
 * settings), all made before `ready`; resolves with the seconds the entries took.
 */
export function runNaivePipelineInWorker(options: NaiveInWorker, ready?: () => Promise<void> | void): Promise<number> {
  return runTimedWorker(new URL(import.meta.url), NAIVE_PIPELINE, options, ready);
}

const NAIVE_PIPELINE = 'naive-pipeline';
const naive = timedWorkerData<NaiveInWorker>(NAIVE_PIPELINE);
if (naive) {
  await serveTimedWork(async () => {
    const view = new ReferenceView();
    applyToView(view, naive.reference);
    const orm = await openLedger({ databaseUrl: naive.databaseUrl, poolSize: 16 });
    const erp = new ErpClient({ baseUrl: naive.erpBaseUrl });
    await erp.start();
    const nc = await connect({ servers: naive.natsUrl, ...NATS_CLIENT_SETTINGS });
    const js = jetstream(nc);
    return {
      run: () => runNaivePipeline({ js, orm, erp, view }, jetStreamSource(js, { stream: naive.stream, durable: naive.durable }), naive.count),
      async close() {
        await nc.close();
        await erp.stop();
        await orm.close();
      },
    };
  });
}
