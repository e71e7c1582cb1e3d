// Publishing a generated week the way a busy producer would, shared by the demo
// and the benchmarks.
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { STREAMS, ingestConsumerName } from '../../connectors/nats/topology.ts';
import { REFERENCE_KINDS } from '../../pipeline/reference-store.ts';

/**
 * Runs `publish` for each item with at most `window` acknowledgements
 * outstanding (JetStream keeps the order: one connection, one stream), and
 * reports how many went out after each.
 */
export async function publishBounded<T>(items: Iterable<T>, publish: (item: T) => Promise<unknown>, window = 512, onPublished?: (count: number) => void): Promise<number> {
  const inFlight = new Set<Promise<unknown>>();
  let published = 0;
  for (const item of items) {
    const p = publish(item).then(() => { published++; onPublished?.(published); });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    if (inFlight.size >= window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return published;
}

/** Resolves once the reference consumers have applied everything published to them so far. */
export async function referenceCaughtUp(nc: NatsConnection, pollMs = 50): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (;;) {
    let behind = 0;
    for (const kind of REFERENCE_KINDS) {
      const info = await jsm.consumers.info(STREAMS.ingest, ingestConsumerName(kind));
      behind += info.num_pending + info.num_ack_pending;
    }
    if (behind === 0) return;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
