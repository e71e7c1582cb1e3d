// A durable pull consumer as an Observable of JetStream messages. Flow control
// is the consumer's own: the server stops delivering once `max_ack_pending`
// messages are unacked, and with an in-flight budget the source itself stops
// pulling while the unsettled messages' count or bytes are at the budget, so the
// pipeline's in-flight work stays bounded however deep the backlog; messages are
// acked by the stage that commits their effect.
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { Observable } from 'rxjs';
import type { InFlightBudget } from './in-flight-budget.ts';

export interface JetStreamSourceOptions {
  stream: string;
  durable: string;
  /** Messages buffered client-side per pull. @default 500 */
  maxMessages?: number;
  /** Unsettled messages and bytes the subscriber may hold; released as each message is acked, nak'ed or terminated. */
  inFlight?: InFlightBudget;
}

/** Makes the message give its share of the budget back when it is first settled, by whichever stage settles it. */
function releasingOnSettle(msg: JsMsg, budget: InFlightBudget): JsMsg {
  const bytes = msg.data.length;
  let settled = false;
  const release = () => {
    if (settled) return;
    settled = true;
    budget.release(bytes);
  };
  const { ack, nak, term } = msg;
  msg.ack = () => { release(); ack.call(msg); };
  msg.nak = (millis?: number) => { release(); nak.call(msg, millis); };
  msg.term = (reason?: string) => { release(); term.call(msg, reason); };
  return msg;
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
      const budget = options.inFlight;
      for await (const msg of messages) {
        if (stopped) break;
        if (budget) {
          // Waiting here stops the iteration, and with it the pulls.
          await budget.acquire(msg.data.length);
          if (stopped) break;
          subscriber.next(releasingOnSettle(msg, budget));
        } else {
          subscriber.next(msg);
        }
      }
      subscriber.complete();
    })().catch((err: unknown) => { if (!stopped) subscriber.error(err); });
    return () => {
      stopped = true;
      stop?.();
    };
  });
}
