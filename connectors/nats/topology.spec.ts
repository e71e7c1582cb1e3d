import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { startNatsServer, type TestNatsServer } from '../../test/support/nats-server.ts';
import { ensureConsumer, ensureConsumerFromAckFloor } from './topology.ts';

interface Setup extends AsyncDisposable { nats: TestNatsServer; nc: NatsConnection }

async function setup(): Promise<Setup> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  await (await jetstreamManager(nc)).streams.add({ name: 'TOPOLOGY_SPEC', subjects: ['spec.>'] });
  return {
    nats, nc,
    async [Symbol.asyncDispose]() {
      if (!nc.isClosed()) await nc.close();
      await nats[Symbol.asyncDispose]();
    },
  };
}

/** An earlier consumer of the durable that took `take` messages, acked those in `ack`, and died holding the rest. */
async function consumeAndDie(s: Setup, take: number, ack: ReadonlySet<string>): Promise<void> {
  const holder = await connect({ servers: s.nats.url });
  const consumer = await jetstream(holder).consumers.get('TOPOLOGY_SPEC', 'holder');
  const batch = await consumer.fetch({ max_messages: take, expires: 2_000 });
  for await (const msg of batch) if (ack.has(msg.string())) msg.ack();
  await holder.flush();
  await holder.close();
}

/** What the durable delivers next, up to `count` messages, acking each. */
async function nextDelivered(s: Setup, count: number): Promise<string[]> {
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
    await consumeAndDie(s, 4, new Set(['1', '3']));

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
    await consumeAndDie(s, 2, new Set(['1', '2']));

    expect(await ensureConsumerFromAckFloor(jsm, 'TOPOLOGY_SPEC', 'holder', 'spec.>', options)).toEqual({ rewoundTo: null });
    expect(await nextDelivered(s, 10)).toEqual(['3']);
  });
});
