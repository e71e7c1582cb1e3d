// Publishing to JetStream with a message id (the broker's duplicate window is
// the first filter against republished outbox rows) and the W3C trace context.
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER, extractTraceContext, injectTraceContext } from '../../pipeline/model/trace-context.ts';

export interface OutgoingMessage {
  subject: string;
  msgId: string;
  payload: unknown;
  headers?: Record<string, string> | null;
}

const encoder = new TextEncoder();

export async function publishMessage(js: JetStreamClient, message: OutgoingMessage): Promise<PubAck> {
  const h = natsHeaders();
  for (const [key, value] of Object.entries(message.headers ?? {})) {
    if (key !== TRACEPARENT_HEADER && key !== TRACESTATE_HEADER) h.set(key, value);
  }
  // The trace context goes through the one propagation helper: a malformed
  // stored traceparent is dropped rather than passed on to consumers.
  if (message.headers) injectTraceContext(h, extractTraceContext(message.headers));
  const data = typeof message.payload === 'string' ? encoder.encode(message.payload) : encoder.encode(JSON.stringify(message.payload));
  return js.publish(message.subject, data, { msgID: message.msgId, headers: h });
}

/** Publishes many messages with their acks awaited together, so a batch costs one round trip of latency. */
export async function publishAll(js: JetStreamClient, messages: readonly OutgoingMessage[]): Promise<PubAck[]> {
  return Promise.all(messages.map((m) => publishMessage(js, m)));
}
