// The two messages billstream announces for nearly every entry, built from
// facts alone: `enriched.time.*` when a turn decides an enriched revision and
// `billing.posted.*` when the ERP has booked a line. Each is built in two
// places from one function here: by the writer, from what it holds in memory,
// and, after a crash between a commit and its publish, by the relay reading the
// outbox back (nats-outbox.ts), from the rows the same transaction wrote.
//
// So the outbox keeps a reference to those rows instead of the payload: at a
// week close the two payloads were 1.2 KB of every entry's 3 KB sent to
// PostgreSQL, written to its WAL and deleted again a moment later.
import { formatMoney } from './model/money.ts';
import type { TimeRecord } from './model/types.ts';
import type { NatsOutboxRow } from './nats-outbox.ts';

/**
 * What stands in the outbox for a payload that can be rebuilt from the ledger:
 * - `['enriched', entryId, revision, customerId, contractId, legalEntity, costAmount]`:
 *   the revision's entry_revision row holds the entry, its enrichment and its
 *   decision time; the project's fields and the cost are kept here, as they
 *   were when the turn decided.
 * - `['posted', erpOutboxId]`: the erp_outbox row holds the line, its document and its trace.
 */
export type OutboxReference = EnrichedReference | PostedReference;
export type EnrichedReference = ['enriched', entryId: string, revision: number, customerId: string, contractId: string, legalEntity: string, costAmount: string | null];
export type PostedReference = ['posted', erpOutboxId: string];

/** Everything an enriched message says. */
export interface EnrichedFacts {
  entry: TimeRecord;
  /** The project's region: the subject's. */
  region: string;
  billable: boolean;
  role: string;
  rateMinor: bigint | null;
  amountMinor: bigint | null;
  currency: string;
  customerId: string;
  contractId: string;
  legalEntity: string;
  costAmountMinor: bigint | null;
  /** The turn's decision time, as the revision's `decided_at` keeps it. */
  processedAt: Date;
  traceId: string | null;
  traceParent: string | null;
}

export function enrichedAnnouncement(facts: EnrichedFacts): NatsOutboxRow {
  const { entry } = facts;
  const costAmount = facts.costAmountMinor === null ? null : formatMoney(facts.costAmountMinor);
  return {
    subject: `enriched.time.${facts.region}.${entry.projectId}`,
    msg_id: `enriched:${entry.entryId}:${entry.revision}`,
    payload: {
      ...entry,
      billable: facts.billable,
      role: facts.role,
      rate: facts.rateMinor === null ? null : formatMoney(facts.rateMinor),
      amount: facts.amountMinor === null ? null : formatMoney(facts.amountMinor),
      currency: facts.currency,
      customerId: facts.customerId,
      contractId: facts.contractId,
      legalEntity: facts.legalEntity,
      costAmount,
      processedAt: facts.processedAt.toISOString(),
      traceId: facts.traceId,
    },
    headers: { 'Schema-Version': '1', ...(facts.traceParent ? { traceparent: facts.traceParent } : {}) },
    ref: ['enriched', entry.entryId, entry.revision, facts.customerId, facts.contractId, facts.legalEntity, costAmount],
  };
}

/** Everything a posted announcement says: the line as posted and its ERP document. */
export interface PostedFacts {
  /** The line's erp_outbox row. */
  id: string;
  externalId: string;
  documentId: string;
  projectId: string;
  region: string;
  traceParent: string | null;
  transaction: Record<string, unknown>;
}

export function postedAnnouncement(line: PostedFacts): NatsOutboxRow {
  return {
    subject: `billing.posted.${line.region}.${line.projectId}`,
    msg_id: `posted:${line.externalId}`,
    payload: { ...line.transaction, documentId: line.documentId },
    headers: line.traceParent ? { traceparent: line.traceParent } : null,
    ref: ['posted', line.id],
  };
}
