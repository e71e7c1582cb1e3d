// The bench's first row, the broker's limit: a bare consumer that fetches each
// message, publishes it once to another stream and acks it when that stream has
// stored it, doing nothing else. The denominator of billstream's ratio, so it
// spends per message no more client work than billstream's own publishes do
// (connectors/nats/publish.ts): one reply subscription for the whole run, each
// publish's reply subject its index, and no request object, timer, promise or
// Error per message, as `js.publish` builds. Measured with `js.publish`, the
// row was held back by the client (nats.js built two Errors with stack traces
// per publish), not by the broker.
//
// In the week close, the bare consumer runs in a worker thread: the bench's own
// heap holds the whole generated week (a million messages, over a gigabyte), and
// on its main thread the consumer paid for collecting that heap. At 1M the bench
// process spent 32 CPU-µs per message republished against 13 at 100k, and the
// row ran at 38,000–42,000 msgs/s against 68,000.
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import { connect, createInbox, type NatsConnection } from '@nats-io/transport-node';
import { NATS_CLIENT_SETTINGS } from '../../connectors/nats/connection.ts';
import { jetStreamSource } from '../../connectors/nats/jetstream-source.ts';
import { pubAckOf } from '../../connectors/nats/publish.ts';
import { Subscription, type Observable } from 'rxjs';
import { runTimedWorker, serveTimedWork, timedWorkerData } from './timed-worker.ts';

export interface RepublishOptions {
  /** Prefixed to each message's subject to make its new one (`bench.sink.` + subject). */
  subjectPrefix: string;
  /** Messages to take from the source; resolves once every one is stored again and acked. */
  count: number;
  /** Published and not yet stored at most, so the source's own bound is the one that paces it. @default 1024 */
  inFlight?: number;
  /** Fails when no publish has been acknowledged for this long while some wait. @default 30,000 */
  stallMs?: number;
}

export class RepublishError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RepublishError';
  }
}

/** Republishes `count` messages of `source` once each, acking each source message when its copy is stored. */
export function republishOnce(nc: NatsConnection, source: Observable<JsMsg>, options: RepublishOptions): Promise<void> {
  const inFlight = options.inFlight ?? 1024;
  const stallMs = options.stallMs ?? 30_000;
  const inbox = createInbox();
  const prefix = `${inbox}.`;
  const waiting = new Map<number, JsMsg>();
  let next = 0;
  let taken = 0;
  let stored = 0;
  let lastStoredAt = performance.now();
  return new Promise<void>((resolve, reject) => {
    // Made before the source is subscribed: a source that delivers (or fails) at once can end it.
    const subscription = new Subscription();
    let paused = false;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearInterval(watchdog);
      reply.unsubscribe();
      subscription.unsubscribe();
      if (err) reject(err);
      else resolve();
    };
    const reply = nc.subscribe(`${inbox}.*`, {
      callback: (err, answer) => {
        if (err) { finish(err); return; }
        const index = Number(answer.subject.slice(prefix.length));
        const msg = waiting.get(index);
        if (!msg) return;
        try {
          pubAckOf(answer, `${options.subjectPrefix}${msg.subject}`);
        } catch (err) {
          finish(err as Error);
          return;
        }
        waiting.delete(index);
        msg.ack();
        stored++;
        lastStoredAt = performance.now();
        if (stored === options.count) { finish(); return; }
        if (paused && waiting.size < inFlight) { paused = false; pump(); }
      },
    });
    const watchdog = setInterval(() => {
      if (waiting.size > 0 && performance.now() - lastStoredAt > stallMs) finish(new RepublishError(`${waiting.size} publishes not acknowledged within ${stallMs} ms`));
    }, 1_000);
    // Messages the source delivered while too many were in flight wait here, in
    // order (at most the consumer's max_ack_pending less those in flight).
    let held: JsMsg[] = [];
    let heldFrom = 0;
    const publish = (msg: JsMsg) => {
      // The stall clock counts from the oldest wait: a source slow to deliver is not a stalled server.
      if (waiting.size === 0) lastStoredAt = performance.now();
      const index = next++;
      waiting.set(index, msg);
      nc.publish(`${options.subjectPrefix}${msg.subject}`, msg.data, { reply: `${prefix}${index}` });
    };
    const pump = () => {
      while (heldFrom < held.length && waiting.size < inFlight) publish(held[heldFrom++] as JsMsg);
      if (heldFrom < held.length) { paused = true; return; }
      held = [];
      heldFrom = 0;
    };
    subscription.add(source.subscribe({
      next: (msg) => {
        if (taken === options.count) return;
        taken++;
        if (paused || waiting.size >= inFlight) { held.push(msg); paused = true; return; }
        publish(msg);
      },
      error: (err: unknown) => finish(err instanceof Error ? err : new RepublishError(String(err))),
    }));
  });
}

export interface RepublishInWorker extends RepublishOptions {
  natsUrl: string;
  /** The source: a stream and a durable pull consumer on it. */
  stream: string;
  durable: string;
}

/**
 * `republishOnce` in a worker thread with a connection of its own (billstream's
 * client settings). `ready` runs once the worker is connected and before it
 * takes a message, so what it measures leaves out the worker's start; resolves
 * with the seconds from the first take to the last ack.
 */
export function republishOnceInWorker(options: RepublishInWorker, ready?: () => Promise<void> | void): Promise<number> {
  return runTimedWorker(new URL(import.meta.url), REPUBLISHER, options, ready);
}

const REPUBLISHER = 'broker-limit';
const republishing = timedWorkerData<RepublishInWorker>(REPUBLISHER);
if (republishing) {
  await serveTimedWork(async () => {
    const nc = await connect({ servers: republishing.natsUrl, ...NATS_CLIENT_SETTINGS });
    return {
      run: () => republishOnce(nc, jetStreamSource(jetstream(nc), { stream: republishing.stream, durable: republishing.durable }), republishing),
      close: () => nc.close(),
    };
  });
}
