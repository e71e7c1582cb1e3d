import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { connectedNatsServer, type ConnectedNats } from '../../test/support/nats-server.ts';
import { JetStreamPublishError, headerBlock, publishAll } from './publish.ts';

function setup(): Promise<ConnectedNats> {
  return connectedNatsServer(async (nc) => (await jetstreamManager(nc)).streams.add({ name: 'PUBLISH_SPEC', subjects: ['spec.>'], duplicate_window: 60_000_000_000 }));
}

describe('publishAll', () => {
  it('stores every message with its Nats-Msg-Id and headers and answers their PubAcks in order', async () => {
    await using s = await setup();
    const messages = Array.from({ length: 300 }, (_, i) => ({
      subject: `spec.${i % 3}`, msgId: `m-${i}`, payload: { n: i }, headers: { 'Schema-Version': '1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    }));
    const acks = await publishAll(s.nc, messages);
    expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(acks.every((a) => a.stream === 'PUBLISH_SPEC' && a.duplicate === false)).toBe(true);
    const jsm = await jetstreamManager(s.nc);
    const stored = await jsm.streams.getMessage('PUBLISH_SPEC', { seq: 42 });
    expect(stored?.json()).toEqual({ n: 41 });
    expect(stored?.header.get('Nats-Msg-Id')).toBe('m-41');
    expect(stored?.header.get('Schema-Version')).toBe('1');
    expect(stored?.header.get('traceparent')).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it('answers a message id seen within the duplicate window as a duplicate, storing nothing', async () => {
    await using s = await setup();
    await publishAll(s.nc, [{ subject: 'spec.a', msgId: 'once', payload: 'first' }]);
    const [again] = await publishAll(s.nc, [{ subject: 'spec.a', msgId: 'once', payload: 'second' }]);
    expect(again).toMatchObject({ seq: 1, duplicate: true });
    expect((await (await jetstreamManager(s.nc)).streams.info('PUBLISH_SPEC')).state.messages).toBe(1);
  });

  it('rejects naming the subject when no stream stores it, and resolves an empty batch at once', async () => {
    await using s = await setup();
    await expect(publishAll(s.nc, [{ subject: 'nowhere.x', msgId: 'n-1', payload: {} }])).rejects.toThrow(new JetStreamPublishError('no stream stores nowhere.x'));
    await expect(publishAll(s.nc, [])).resolves.toEqual([]);
  });

  it('drops a malformed stored traceparent, sends a message without headers with its message id alone, and refuses a header that would break the block', async () => {
    await using s = await setup();
    await publishAll(s.nc, [
      { subject: 'spec.t', msgId: 'bad-trace', payload: 1, headers: { traceparent: 'not-a-traceparent', 'Schema-Version': '1' } },
      { subject: 'spec.t', msgId: 'no-headers', payload: 2 },
    ]);
    const jsm = await jetstreamManager(s.nc);
    const bad = await jsm.streams.getMessage('PUBLISH_SPEC', { seq: 1 });
    expect(bad?.header.get('traceparent')).toBe('');
    expect(bad?.header.get('Schema-Version')).toBe('1');
    const bare = await jsm.streams.getMessage('PUBLISH_SPEC', { seq: 2 });
    expect(bare?.header.keys()).toEqual(['Nats-Msg-Id']);
    await expect(publishAll(s.nc, [{ subject: 'spec.t', msgId: 'x', payload: 3, headers: { 'Schema-Version': '1\r\nInjected: yes' } }]))
      .rejects.toThrow('header Schema-Version: a value cannot contain CR or LF');
    await expect(publishAll(s.nc, [{ subject: 'spec.t', msgId: 'y', payload: 3, headers: { 'Bad Name': 'v' } }]))
      .rejects.toThrow("header name 'Bad Name': ' ' is not a valid character in a header name");
    expect((await jsm.streams.info('PUBLISH_SPEC')).state.messages).toBe(2);
  });

  it('writes the header block NATS expects: stored headers in order, the trace context, then the message id', () => {
    expect(headerBlock({ subject: 's', msgId: 'm-1', payload: {}, headers: { 'Schema-Version': ' 1 ', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'Nats-Msg-Id': 'stale' } }))
      .toBe('NATS/1.0\r\nSchema-Version: 1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nNats-Msg-Id: m-1\r\n\r\n');
  });
});
