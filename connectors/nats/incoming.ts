// Adapts a JetStream message to the pipeline's IncomingMessage shape: subject,
// bytes, headers, broker timestamp and the ack/nak the pipeline settles it with.
import type { JsMsg } from '@nats-io/jetstream';

export interface IncomingJetStreamMessage {
  subject: string;
  data: Uint8Array;
  header(name: string): string | undefined;
  publishedAt: Date;
  redelivered: boolean;
  streamSequence: number;
  ack(): void;
  nak(delayMs: number): void;
}

export function fromJsMsg(msg: JsMsg): IncomingJetStreamMessage {
  return {
    subject: msg.subject,
    data: msg.data,
    header: (name) => msg.headers?.get(name) || undefined,
    publishedAt: new Date(Math.floor(msg.info.timestampNanos / 1_000_000)),
    redelivered: msg.redelivered,
    streamSequence: msg.seq,
    ack: () => msg.ack(),
    nak: (delayMs) => msg.nak(delayMs),
  };
}
