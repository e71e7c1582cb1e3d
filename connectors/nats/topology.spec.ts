import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { connectedNatsServer, takeAndDie, type ConnectedNats } from '../../test/support/nats-server.ts';
import { ensureConsumer, ensureConsumerFromAckFloor } from './topology.ts';

function setup(): Promise<ConnectedNats> {
  return connectedNatsServer(async (nc) => (await jetstreamManager(nc)).streams.add({ name: 'TOPOLOGY_SPEC', subjects: ['spec.>'] }));
}

/** What the durable delivers next, up to `count` messages, acking each. */
async function nextDelivered(s: ConnectedNats, count: number): Promise<string[]> {
  const consumer = await jetstream(s.nc).consumers.get('TOPOLOGY_SPEC', 'holder');
  const batch = await consumer.fetch({ max_messages: count, expires: 1_000 });
  const seen: string[] = [];
  for await (const msg of batch) { seen.push(msg.string()); msg.ack(); }
  return seen;
}

describe('ensureConsumerFromAckFloor', () => {
  // A long ack wait: the held messages are not redelivered on their own while the test runs.
  const options = { ackWaitMs: 60_000 };

  it('delivers what a dead consumer held, in stream order, before anything newer', async () => {
    await using s = await setup();
    const jsm = await jetstreamManager(s.nc);
    await ensureConsumer(jsm, 'TOPOLOGY_SPEC', 'holder', 'spec.>', options);
    const js = jetstream(s.nc);
    for (const n of ['1', '2', '3', '4', '5', '6']) await js.publish('spec.x', n);
    expect(await takeAndDie(s.nats.url, 'TOPOLOGY_SPEC', 'holder', 4, new Set(['1', '3']))).toBe(4);

    const { rewoundTo } = await ensureConsumerFromAckFloor(jsm, 'TOPOLOGY_SPEC', 'holder', 'spec.>', options);
    expect(rewoundTo).toBe(2);
    // 3 was acked past the floor and comes again: the consumers downstream know it.
    expect(await nextDelivered(s, 10)).toEqual(['2', '3', '4', '5', '6']);
    const info = await jsm.consumers.info('TOPOLOGY_SPEC', 'holder');
    expect(info.config.ack_wait).toBe(60_000 * 1_000_000);
    expect(info.config.filter_subject).toBe('spec.>');
  });

  it('leaves a consumer that holds nothing as it is', async () => {
    await using s = await setup();
    const jsm = await jetstreamManager(s.nc);
    await ensureConsumer(jsm, 'TOPOLOGY_SPEC', 'holder', 'spec.>', options);
    const js = jetstream(s.nc);
    for (const n of ['1', '2', '3']) await js.publish('spec.x', n);
    expect(await takeAndDie(s.nats.url, 'TOPOLOGY_SPEC', 'holder', 2, new Set(['1', '2']))).toBe(2);

    expect(await ensureConsumerFromAckFloor(jsm, 'TOPOLOGY_SPEC', 'holder', 'spec.>', options)).toEqual({ rewoundTo: null });
    expect(await nextDelivered(s, 10)).toEqual(['3']);
  });
});
