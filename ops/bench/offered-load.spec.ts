import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { freePort, startNatsServer } from '../../test/support/nats-server.ts';
import { offerLoad } from './offered-load.ts';

const encoder = new TextEncoder();

describe('offerLoad', () => {
  it('publishes every message from its worker thread, in order, with its Nats-Msg-Id', async () => {
    await using nats = await startNatsServer();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'OFFERED_SPEC', subjects: ['offered.>'] });
      const messages = Array.from({ length: 60 }, (_, i) => ({ subject: `offered.amer.e-${i}`, data: encoder.encode(JSON.stringify({ i })), msgId: `e-${i}` }));
      // A repeated id is stored once, as the bench's entries are.
      await offerLoad({ natsUrl: nats.url, messages: [...messages, messages[0] as (typeof messages)[number]], perSecond: 600, tickMs: 20 });
      const info = await jsm.streams.info('OFFERED_SPEC');
      expect(info.state.messages).toBe(60);
      const stored = await Promise.all([1, 30, 60].map((seq) => jsm.streams.getMessage('OFFERED_SPEC', { seq })));
      expect(stored.map((m) => m?.subject)).toEqual(['offered.amer.e-0', 'offered.amer.e-29', 'offered.amer.e-59']);
    } finally {
      await nc.close();
    }
  });

  it('rejects when its worker cannot publish', async () => {
    const port = await freePort();
    await expect(offerLoad({ natsUrl: `127.0.0.1:${port}`, messages: [{ subject: 'offered.x', data: encoder.encode('{}') }], perSecond: 10 })).rejects.toThrow();
  });
});
