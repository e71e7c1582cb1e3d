// The NATS outbox's one format. Messages are queued inside the transaction
// whose state they announce: all of a transaction's messages go into one
// `nats_outbox_batch` row (a thousand-entry turn writes one row, not a
// thousand), kept as the JSON text of the list, each payload serialised once.
// The relay publishes them after the commit, from memory when the writer hands
// the batch over, else by reading the row back (`readOutboxBatch`).
//
// A message whose payload the same transaction's rows already hold (an
// enriched entry, a posted line: announcements.ts) is kept as a reference to
// them, and read back by rebuilding it from those rows.
import type { EntityManager } from '@mikro-orm/postgresql';
import { enrichedAnnouncement, postedAnnouncement, type EnrichedReference, type OutboxReference, type PostedReference } from './announcements.ts';
import { parseMoney } from './model/money.ts';
import type { TimeRecord } from './model/types.ts';
import { nativeQuery } from './state/native-sql.ts';

/** A message to queue: its payload an object (serialised here), or text already serialised. */
export interface NatsOutboxRow {
  subject: string;
  msg_id: string;
  payload: unknown;
  headers: Record<string, string> | null;
  /** Kept in the ledger instead of the message when the transaction's own rows hold its payload (announcements.ts). */
  ref?: OutboxReference;
}

/** A message to publish; a string payload is sent as it is (already serialised JSON). */
export interface OutboxMessage { subject: string; msgId: string; payload: unknown; headers: Record<string, string> | null }

/** An outbox row as written: its id and its messages, each payload already serialised. */
export interface QueuedNatsBatch { id: string; messages: OutboxMessage[] }

/** A batch's outbox row before it is written: its text, its message count, and its messages with each payload serialised. */
export interface NatsOutboxBatch { text: string; count: number; messages: OutboxMessage[] }

/** The outbox row of `rows` as `queueNatsMessages` writes it; null for none. */
export function natsOutboxBatch(rows: readonly NatsOutboxRow[]): NatsOutboxBatch | null {
  if (rows.length === 0) return null;
  const messages: OutboxMessage[] = [];
  const parts: string[] = [];
  for (const row of rows) {
    const payload = JSON.stringify(row.payload);
    messages.push({ subject: row.subject, msgId: row.msg_id, payload, headers: row.headers });
    parts.push(row.ref ? JSON.stringify(row.ref) : `${JSON.stringify({ subject: row.subject, msg_id: row.msg_id, headers: row.headers }).slice(0, -1)},"payload":${payload}}`);
  }
  return { text: `[${parts.join(',')}]`, count: rows.length, messages };
}

/**
 * The insert of an outbox row, for a statement that writes other rows too (a
 * CTE named by the caller): `$text` and `$count` are the placeholders of
 * NatsOutboxBatch's text and count. A count of 0 writes nothing.
 */
export function natsOutboxInsert(text: string, count: string): string {
  return `insert into nats_outbox_batch (messages, message_count) select ${text}::text, ${count}::int where ${count}::int > 0 returning id`;
}

/**
 * Queues messages for the NATS relay inside the caller's transaction, as one
 * outbox row. The returned batch carries each payload as the text the row was
 * built from, so a caller can hand it to the relay after its commit
 * (NatsRelay.publishCommitted) instead of the relay reading it back.
 */
export async function queueNatsMessages(em: EntityManager, rows: readonly NatsOutboxRow[]): Promise<QueuedNatsBatch | null> {
  const batch = natsOutboxBatch(rows);
  if (!batch) return null;
  const [inserted] = await nativeQuery<{ id: string }>(em, natsOutboxInsert('$1', '$2'), [batch.text, batch.count]);
  return { id: (inserted as { id: string }).id, messages: batch.messages };
}

/**
 * An outbox row read back: its messages in order, and the references it could
 * not rebuild: rows gone (never expected: the same transaction wrote them), or
 * a revision re-decided since without an enrichment (see `enrichedOf`).
 */
export interface ReadOutboxBatch { messages: OutboxMessage[]; unresolved: OutboxReference[] }

/** The messages of an outbox row's text, as `queueNatsMessages` wrote them, references rebuilt from the rows they name. */
export async function readOutboxBatch(em: EntityManager, text: string): Promise<ReadOutboxBatch> {
  const elements = JSON.parse(text) as (NatsOutboxRow | OutboxReference)[];
  const enrichedKeys = elements.filter((e): e is EnrichedReference => Array.isArray(e) && e[0] === 'enriched');
  const postedIds = elements.filter((e): e is PostedReference => Array.isArray(e) && e[0] === 'posted').map((e) => e[1]);
  const revisions = new Map<string, EnrichedRevisionRow>();
  if (enrichedKeys.length > 0) {
    for (const row of await nativeQuery<EnrichedRevisionRow>(em, ENRICHED_REVISIONS, [enrichedKeys.map((k) => k[1]), enrichedKeys.map((k) => k[2])])) {
      revisions.set(`${row.entry_id}:${row.revision}`, row);
    }
  }
  const lines = new Map<string, PostedLineRow>();
  if (postedIds.length > 0) {
    for (const row of await nativeQuery<PostedLineRow>(em,
      `select id::text as id, external_id, project_id, region, transaction, document_id, trace_parent from erp_outbox where id = any($1::bigint[]) and document_id is not null`,
      [postedIds])) {
      lines.set(row.id, row);
    }
  }
  const messages: OutboxMessage[] = [];
  const unresolved: OutboxReference[] = [];
  for (const element of elements) {
    if (!Array.isArray(element)) {
      messages.push({ subject: element.subject, msgId: element.msg_id, payload: element.payload, headers: element.headers });
      continue;
    }
    const rebuilt = element[0] === 'enriched' ? enrichedOf(element, revisions.get(`${element[1]}:${element[2]}`)) : postedOf(lines.get(element[1]));
    if (rebuilt) messages.push({ subject: rebuilt.subject, msgId: rebuilt.msg_id, payload: rebuilt.payload, headers: rebuilt.headers });
    else unresolved.push(element);
  }
  return { messages, unresolved };
}

interface EnrichedRevisionRow {
  entry_id: string; revision: number; region: string; record: TimeRecord; billable: boolean | null; role: string | null;
  rate_minor: string | null; amount_minor: string | null; currency: string | null; decided_at: string | Date | null; trace_id: string | null; trace_parent: string | null;
}

interface PostedLineRow { id: string; external_id: string; project_id: string; region: string; transaction: Record<string, unknown>; document_id: string; trace_parent: string | null }

/** One primary-key probe per revision, whatever the table's statistics (see ENTRY_REVISIONS_OF_ENTRIES in project-actor.ts). */
const ENRICHED_REVISIONS = `select r.* from unnest($1::text[], $2::int[]) as k(entry_id, revision),
  lateral (select entry_id, revision, region, record, billable, role, rate_minor, amount_minor, currency, decided_at, trace_id, trace_parent
           from entry_revision e where e.entry_id = k.entry_id and e.revision = k.revision offset 0) r`;

/**
 * The enriched message as its turn announced it. A revision re-decided since
 * without an enrichment (a replayed revision whose project has closed) no longer
 * holds what was announced; its later decision speaks for it instead.
 */
function enrichedOf(ref: EnrichedReference, row: EnrichedRevisionRow | undefined): NatsOutboxRow | null {
  if (!row || row.billable === null || row.role === null || row.currency === null || row.decided_at === null) return null;
  const [, , , customerId, contractId, legalEntity, costAmount] = ref;
  return enrichedAnnouncement({
    entry: row.record, region: row.region, billable: row.billable, role: row.role,
    rateMinor: row.rate_minor === null ? null : BigInt(row.rate_minor), amountMinor: row.amount_minor === null ? null : BigInt(row.amount_minor),
    currency: row.currency, customerId, contractId, legalEntity, costAmountMinor: costAmount === null ? null : parseMoney(costAmount),
    processedAt: new Date(row.decided_at), traceId: row.trace_id, traceParent: row.trace_parent,
  });
}

function postedOf(row: PostedLineRow | undefined): NatsOutboxRow | null {
  if (!row) return null;
  return postedAnnouncement({
    id: row.id, externalId: row.external_id, documentId: row.document_id, projectId: row.project_id, region: row.region, traceParent: row.trace_parent, transaction: row.transaction,
  });
}
