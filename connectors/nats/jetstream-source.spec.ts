import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { connectedNatsServer, type ConnectedNats } from '../../test/support/nats-server.ts';
import { jetStreamSource } from './jetstream-source.ts';

function setup(): Promise<ConnectedNats> {
  return connectedNatsServer(async (nc) => (await jetstreamManager(nc)).streams.add({ name: 'SOURCE_SPEC', subjects: ['spec.>'] }));
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('jetStreamSource', () => {
  it('keeps trying a consumer that is not there yet, says why, and delivers once it exists', async () => {
    await using s = await setup();
    const restarts: string[] = [];
    const received: string[] = [];
    let failed: unknown = null;
    const subscription = jetStreamSource(jetstream(s.nc), { stream: 'SOURCE_SPEC', durable: 'late', onRestart: (err) => restarts.push(String(err)) })
      .subscribe({ next: (msg: JsMsg) => { received.push(msg.string()); msg.ack(); }, error: (err: unknown) => { failed = err; } });
    try {
      await until(() => restarts.length >= 2, 'two restarts');
      expect(restarts[0]).toMatch(/consumer not found/);
      expect(failed).toBeNull();

      await (await jetstreamManager(s.nc)).consumers.add('SOURCE_SPEC', { durable_name: 'late', ack_policy: AckPolicy.Explicit });
      const js = jetstream(s.nc);
      for (const n of ['1', '2', '3']) await js.publish('spec.x', n);
      await until(() => received.length === 3, 'three messages');
      expect(received).toEqual(['1', '2', '3']);
      expect(failed).toBeNull();
    } finally {
      subscription.unsubscribe();
    }
  });

  it('stops trying once its subscriber lets go', async () => {
    await using s = await setup();
    const restarts: string[] = [];
    const subscription = jetStreamSource(jetstream(s.nc), { stream: 'SOURCE_SPEC', durable: 'never', onRestart: (err) => restarts.push(String(err)) }).subscribe();
    await until(() => restarts.length >= 1, 'a restart');
    subscription.unsubscribe();
    const seen = restarts.length;
    await new Promise((r) => setTimeout(r, 1_500));
    expect(restarts.length).toBe(seen);
  });

  it('completes when the connection it consumes on is closed by its owner', async () => {
    await using s = await setup();
    await (await jetstreamManager(s.nc)).consumers.add('SOURCE_SPEC', { durable_name: 'closing', ack_policy: AckPolicy.Explicit });
    const restarts: string[] = [];
    let completed = false;
    let failed: unknown = null;
    const received: string[] = [];
    jetStreamSource(jetstream(s.nc), { stream: 'SOURCE_SPEC', durable: 'closing', onRestart: (err) => restarts.push(String(err)) })
      .subscribe({ next: (msg) => { received.push(msg.string()); msg.ack(); }, complete: () => { completed = true; }, error: (err: unknown) => { failed = err; } });
    await jetstream(s.nc).publish('spec.y', 'one');
    await until(() => received.length === 1, 'a message');
    await s.nc.close();
    await until(() => completed, 'completion');
    expect(failed).toBeNull();
  });
});
