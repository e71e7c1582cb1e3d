// Taking over from an instance that died holding messages: the router and a
// partition's new owner deliver what the dead one held, in stream order, before
// anything newer (a project's revision 2 must not overtake its revision 1).
import { DiscardPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { LeaseStore } from '../connectors/nats/lease-store.ts';
import { STREAMS, ensureConsumer, ensureTopology, partitionConsumerName, routerConsumerName } from '../connectors/nats/topology.ts';
import { connectedNatsServer, takeAndDie, type ConnectedNats } from '../test/support/nats-server.ts';
import { PartitionedIntake } from './cluster.ts';

/** Long enough that nothing the dead instance held is redelivered on its own while a test runs. */
const topology = { ackWaitMs: 60_000 };
const SUBJECT = 'ingest.time.amer.p-1';

function setup(): Promise<ConnectedNats> {
  return connectedNatsServer(async (nc) => ensureTopology(await jetstreamManager(nc), [], topology));
}

/** An instance that took `take` messages of a durable and was killed before acking any. */
async function consumeAndDie(s: ConnectedNats, stream: string, durable: string, filter: string, take: number): Promise<void> {
  await ensureConsumer(await jetstreamManager(s.nc), stream, durable, filter, topology);
  expect(await takeAndDie(s.nats.url, stream, durable, take)).toBe(take);
}

/** One instance owning the single partition and the router; collects what it hands to the pipeline, acking each. */
async function receiveInOneInstance(s: ConnectedNats, count: number, meanwhile?: (log: string[]) => Promise<void>): Promise<string[]> {
  const leases = await LeaseStore.open(s.nc, { ttlMs: 3_000 });
  const log: string[] = [];
  const intake = new PartitionedIntake(jetstream(s.nc), await jetstreamManager(s.nc), leases, { instanceId: 'next', partitions: 1, topology, log: (line) => log.push(line) });
  const received: string[] = [];
  const subscription = intake.time$.subscribe((msg) => { received.push(new TextDecoder().decode(msg.data)); msg.ack(); });
  await intake.start();
  try {
    await meanwhile?.(log);
    const deadline = Date.now() + 10_000;
    while (received.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    return received;
  } finally {
    await intake.stop();
    subscription.unsubscribe();
  }
}

const numbered = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

describe('PartitionedIntake keeps a project\'s messages in order', () => {
  it('routes what a dead router held before anything newer', async () => {
    await using s = await setup();
    const js = jetstream(s.nc);
    for (const n of numbered(1, 20)) await js.publish(SUBJECT, n);
    await consumeAndDie(s, STREAMS.ingest, routerConsumerName('time'), 'ingest.time.>', 5);

    expect(await receiveInOneInstance(s, 20)).toEqual(numbered(1, 20));
  });

  it('hands on what a partition\'s dead owner held before anything newer', async () => {
    await using s = await setup();
    const js = jetstream(s.nc);
    // Already routed, by a router that acked them all.
    for (const n of numbered(1, 20)) await js.publish(`part.0.${SUBJECT}`, n, { msgID: `route:${n}` });
    await consumeAndDie(s, STREAMS.partitioned, partitionConsumerName(0), 'part.0.>', 5);

    expect(await receiveInOneInstance(s, 20)).toEqual(numbered(1, 20));
  });

  it('routes again from the ack floor after a failed publish, so what came in meanwhile stays behind', async () => {
    await using s = await setup();
    const jsm = await jetstreamManager(s.nc);
    // The partitioned stream refuses a fourth message until the test lifts the limit.
    const partitioned = await jsm.streams.info(STREAMS.partitioned);
    await jsm.streams.update(STREAMS.partitioned, { ...partitioned.config, max_msgs: 3, discard: DiscardPolicy.New });
    const js = jetstream(s.nc);
    for (const n of numbered(1, 10)) await js.publish(SUBJECT, n);

    const received = await receiveInOneInstance(s, 20, async (log) => {
      const deadline = Date.now() + 10_000;
      while (!log.some((line) => line.includes(`route ${SUBJECT}`)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await jsm.streams.update(STREAMS.partitioned, { ...partitioned.config, max_msgs: -1 });
      // Newer messages, in before the failed ones are routed again.
      for (const n of numbered(11, 20)) await js.publish(SUBJECT, n);
    });
    expect(received).toEqual(numbered(1, 20));
  });
});
