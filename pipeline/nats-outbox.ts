// The NATS outbox's one format. Messages are queued inside the transaction
// whose state they announce: all of a transaction's messages go into one
// `nats_outbox_batch` row (a thousand-entry turn writes one row, not a
// thousand), kept as the JSON text of the list, each payload serialised once.
// The relay publishes them after the commit, from memory when the writer hands
// the batch over, else by reading the row back (`readOutboxBatch`).
import type { EntityManager } from '@mikro-orm/postgresql';
import { nativeQuery } from './state/native-sql.ts';

/** A message to queue: its payload an object (serialised here), or text already serialised. */
export interface NatsOutboxRow {
  subject: string;
  msg_id: string;
  payload: unknown;
  headers: Record<string, string> | null;
}

/** A message to publish; a string payload is sent as it is (already serialised JSON). */
export interface OutboxMessage { subject: string; msgId: string; payload: unknown; headers: Record<string, string> | null }

/** An outbox row as written: its id and its messages, each payload already serialised. */
export interface QueuedNatsBatch { id: string; messages: OutboxMessage[] }

/**
 * Queues messages for the NATS relay inside the caller's transaction, as one
 * outbox row. The returned batch carries each payload as the text the row was
 * built from, so a caller can hand it to the relay after its commit
 * (NatsRelay.publishCommitted) instead of the relay reading it back.
 */
export async function queueNatsMessages(em: EntityManager, rows: readonly NatsOutboxRow[]): Promise<QueuedNatsBatch | null> {
  if (rows.length === 0) return null;
  const messages: OutboxMessage[] = [];
  const parts: string[] = [];
  for (const row of rows) {
    const payload = JSON.stringify(row.payload);
    messages.push({ subject: row.subject, msgId: row.msg_id, payload, headers: row.headers });
    parts.push(`${JSON.stringify({ subject: row.subject, msg_id: row.msg_id, headers: row.headers }).slice(0, -1)},"payload":${payload}}`);
  }
  const [inserted] = await nativeQuery<{ id: string }>(em,
    `insert into nats_outbox_batch (messages, message_count) values ($1, $2) returning id`, [`[${parts.join(',')}]`, rows.length]);
  return { id: (inserted as { id: string }).id, messages };
}

/** The messages of an outbox row's text, as `queueNatsMessages` wrote them. */
export function readOutboxBatch(text: string): OutboxMessage[] {
  const rows = JSON.parse(text) as NatsOutboxRow[];
  return rows.map((m) => ({ subject: m.subject, msgId: m.msg_id, payload: m.payload, headers: m.headers }));
}
