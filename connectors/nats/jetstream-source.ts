// A durable pull consumer as an Observable of JetStream messages. Flow control
// is the consumer's own: the server stops delivering once `max_ack_pending`
// messages are unacked, so the pipeline's in-flight work stays bounded however
// deep the backlog; messages are acked by the stage that commits their effect.
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { Observable } from 'rxjs';

export interface JetStreamSourceOptions {
  stream: string;
  durable: string;
  /** Messages buffered client-side per pull. @default 500 */
  maxMessages?: number;
}

export function jetStreamSource(js: JetStreamClient, options: JetStreamSourceOptions): Observable<JsMsg> {
  return new Observable<JsMsg>((subscriber) => {
    let stopped = false;
    let stop: (() => void) | undefined;
    void (async () => {
      const consumer = await js.consumers.get(options.stream, options.durable);
      const messages = await consumer.consume({ max_messages: options.maxMessages ?? 500 });
      stop = () => { void messages.close(); };
      if (stopped) stop();
      for await (const msg of messages) {
        if (stopped) break;
        subscriber.next(msg);
      }
      subscriber.complete();
    })().catch((err: unknown) => { if (!stopped) subscriber.error(err); });
    return () => {
      stopped = true;
      stop?.();
    };
  });
}
