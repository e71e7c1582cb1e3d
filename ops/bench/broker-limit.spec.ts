import { describe, expect, it } from 'vitest';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { tap } from 'rxjs';
import { jetStreamSource } from '../../connectors/nats/jetstream-source.ts';
import { connectedNatsServer } from '../../test/support/nats-server.ts';
import { republishOnce, republishOnceInWorker } from './broker-limit.ts';

/** A source stream of `count` messages (one subject each, as the week's entries) with a durable on it, and an empty sink stream. */
async function prepare(nc: NatsConnection, count: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'SOURCE', subjects: ['source.>'] });
  await jsm.streams.add({ name: 'SINK', subjects: ['sink.source.>'] });
  const js = jetstream(nc);
  for (let i = 0; i < count; i++) await js.publish(`source.m${i}`, `payload ${i}`);
  await jsm.consumers.add('SOURCE', { durable_name: 'bench', ack_policy: AckPolicy.Explicit, max_ack_pending: 40 });
}

describe('republishOnce, the broker limit baseline', () => {
  it('stores every message once in the sink, in order, and acks every source message, with never more than inFlight publishes unanswered', async () => {
    await using nats = await connectedNatsServer((nc) => prepare(nc, 300));
    // Publishes not yet answered, counted as the sink's publishes go out and as source messages are acked.
    let unanswered = 0;
    let mostUnanswered = 0;
    const publish = nats.nc.publish.bind(nats.nc);
    nats.nc.publish = (subject, payload, options) => {
      if (subject.startsWith('sink.')) mostUnanswered = Math.max(mostUnanswered, ++unanswered);
      publish(subject, payload, options);
    };
    const source = jetStreamSource(jetstream(nats.nc), { stream: 'SOURCE', durable: 'bench' }).pipe(tap((msg) => {
      const ack = msg.ack.bind(msg);
      msg.ack = () => { unanswered--; ack(); };
    }));
    await republishOnce(nats.nc, source, { subjectPrefix: 'sink.', count: 300, inFlight: 7 });
    expect(mostUnanswered).toBe(7);

    const jsm = await jetstreamManager(nats.nc);
    const sink = (await jsm.streams.info('SINK')).state;
    expect(sink.messages).toBe(300);
    for (const seq of [1, 150, 300]) {
      const stored = await jsm.streams.getMessage('SINK', { seq });
      expect([stored?.subject, stored?.string()]).toEqual([`sink.source.m${seq - 1}`, `payload ${seq - 1}`]);
    }
    const consumer = await jsm.consumers.info('SOURCE', 'bench');
    expect([consumer.num_pending, consumer.num_ack_pending, consumer.ack_floor.stream_seq]).toEqual([0, 0, 300]);
  });

  it('fails, naming the subject, when no stream stores what it publishes, and acks nothing', async () => {
    await using nats = await connectedNatsServer((nc) => prepare(nc, 5));
    await expect(republishOnce(nats.nc, jetStreamSource(jetstream(nats.nc), { stream: 'SOURCE', durable: 'bench' }), { subjectPrefix: 'nowhere.', count: 5 }))
      .rejects.toThrow(/no stream stores nowhere\.source\.m0/);
    const consumer = await (await jetstreamManager(nats.nc)).consumers.info('SOURCE', 'bench');
    expect(consumer.ack_floor.stream_seq).toBe(0);
  });

  it('fails when no copy is acknowledged for stallMs, rather than wait for ever', async () => {
    await using nats = await connectedNatsServer((nc) => prepare(nc, 3));
    // A plain subscriber takes the copies and never answers: no stream, and no 503 either.
    const silent = nats.nc.subscribe('silent.>');
    const started = performance.now();
    await expect(republishOnce(nats.nc, jetStreamSource(jetstream(nats.nc), { stream: 'SOURCE', durable: 'bench' }), { subjectPrefix: 'silent.', count: 3, stallMs: 1_500 }))
      .rejects.toThrow('3 publishes not acknowledged within 1500 ms');
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_500);
    silent.unsubscribe();
  });

  it('runs in a worker thread of its own: every message stored once and acked, the time measured from after `ready`', async () => {
    await using nats = await connectedNatsServer((nc) => prepare(nc, 200));
    const jsm = await jetstreamManager(nats.nc);
    let sinkAtReady: number | null = null;
    const seconds = await republishOnceInWorker({ natsUrl: nats.nats.url, stream: 'SOURCE', durable: 'bench', subjectPrefix: 'sink.', count: 200 }, async () => {
      sinkAtReady = (await jsm.streams.info('SINK')).state.messages;
    });
    // Nothing was taken before `ready` had run.
    expect(sinkAtReady).toBe(0);
    expect(seconds).toBeGreaterThan(0);
    expect((await jsm.streams.info('SINK')).state.messages).toBe(200);
    const consumer = await jsm.consumers.info('SOURCE', 'bench');
    expect([consumer.num_pending, consumer.num_ack_pending, consumer.ack_floor.stream_seq]).toEqual([0, 0, 200]);
  });

  it('in a worker, fails with what failed there', async () => {
    await using nats = await connectedNatsServer((nc) => prepare(nc, 5));
    await expect(republishOnceInWorker({ natsUrl: nats.nats.url, stream: 'SOURCE', durable: 'bench', subjectPrefix: 'nowhere.', count: 5 }))
      .rejects.toThrow(/no stream stores nowhere\.source\.m0/);
  });
});
