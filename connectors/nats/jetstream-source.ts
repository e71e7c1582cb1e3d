// A durable pull consumer as an Observable of JetStream messages. Flow control
// is the consumer's own: the server stops delivering once `max_ack_pending`
// messages are unacked, and with an in-flight budget the source itself stops
// pulling while the unsettled messages' count or bytes are at the budget, so the
// pipeline's in-flight work stays bounded however deep the backlog; messages are
// acked by the stage that commits their effect.
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { ClosedConnectionError, DrainingConnectionError } from '@nats-io/transport-node';
import { Observable } from 'rxjs';
import type { InFlightBudget } from './in-flight-budget.ts';

export interface JetStreamSourceOptions {
  stream: string;
  durable: string;
  /** Messages buffered client-side per pull. @default 500 */
  maxMessages?: number;
  /** Unsettled messages and bytes the subscriber may hold; released as each message is acked, nak'ed or terminated. */
  inFlight?: InFlightBudget;
  /** The consume failed or ended while still subscribed; it starts again after a short wait. */
  onRestart?: (err: unknown) => void;
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

/** Waits between a failed or ended consume and the next, doubling up to the last. */
const RESTART_DELAYS_MS = [250, 500, 1_000, 2_000, 5_000];

export function jetStreamSource(js: JetStreamClient, options: JetStreamSourceOptions): Observable<JsMsg> {
  return new Observable<JsMsg>((subscriber) => {
    let stopped = false;
    let stop: (() => void) | undefined;
    let wakeDelay: (() => void) | undefined;
    const budget = options.inFlight;
    void (async () => {
      // A source ends only when its subscriber lets go. A consume that fails (the
      // consumer not there yet, a JetStream API call timed out under load) or ends
      // on its own (the client gave up on a consumer after missed heartbeats) is
      // started again: left ended, a partition owner would keep renewing its lease
      // while nobody consumed the partition.
      for (let failures = 0; !stopped;) {
        let delivered = false;
        try {
          const consumer = await js.consumers.get(options.stream, options.durable);
          const messages = await consumer.consume({ max_messages: options.maxMessages ?? 500 });
          stop = () => { void messages.close(); };
          if (stopped) stop();
          for await (const msg of messages) {
            if (stopped) break;
            delivered = true;
            if (budget) {
              // Waiting here stops the iteration, and with it the pulls. Room
              // taken at once costs no await (a promise and a turn per message).
              if (!budget.tryAcquire(msg.data.length)) {
                await budget.acquire(msg.data.length);
                if (stopped) break;
              }
              subscriber.next(releasingOnSettle(msg, budget));
            } else {
              subscriber.next(msg);
            }
          }
          if (stopped) break;
          options.onRestart?.(new Error(`the consume of ${options.stream}/${options.durable} ended`));
        } catch (err) {
          // The connection's owner closed it: nothing is consumed on it again.
          if (stopped || err instanceof ClosedConnectionError || err instanceof DrainingConnectionError) break;
          options.onRestart?.(err);
        }
        failures = delivered ? 0 : failures + 1;
        const delayMs = RESTART_DELAYS_MS[Math.min(failures, RESTART_DELAYS_MS.length - 1)] as number;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delayMs);
          wakeDelay = () => { clearTimeout(timer); resolve(); };
        });
      }
      subscriber.complete();
    })();
    return () => {
      stopped = true;
      stop?.();
      wakeDelay?.();
    };
  });
}
