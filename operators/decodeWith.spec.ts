import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { decodeWith } from './decodeWith.ts';
import type { DecodeResult } from './decodeWith.ts';

const decodeDigit = (raw: string): DecodeResult<number, string> => {
  if (raw === 'boom') throw new Error('decoder bug');
  return /^\d$/.test(raw) ? { ok: true, value: Number(raw) } : { ok: false, error: `not a digit: ${raw}` };
};
const onThrow = (exception: unknown, input: string): string =>
  `decoder threw on ${input}: ${exception instanceof Error ? exception.message : String(exception)}`;

describe('decodeWith', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  it('emits one outcome per item, in order, and passes bad input on instead of erroring', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a--x--b--|', { a: '1', x: 'x', b: '2' });
      const e1subs = '   ^---------!';
      const expected = ' -A--X--B--|';

      expectObservable(e1.pipe(decodeWith(decodeDigit, onThrow))).toBe(expected, {
        A: { ok: true, input: '1', value: 1 },
        X: { ok: false, input: 'x', error: 'not a digit: x' },
        B: { ok: true, input: '2', value: 2 },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('turns an exception from the decoder into a rejected outcome through onThrow', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   --a--t--b--|', { a: '1', t: 'boom', b: '2' });
      const e1subs = '   ^----------!';
      const expected = ' --A--T--B--|';

      expectObservable(e1.pipe(decodeWith(decodeDigit, onThrow))).toBe(expected, {
        A: { ok: true, input: '1', value: 1 },
        T: { ok: false, input: 'boom', error: 'decoder threw on boom: decoder bug' },
        B: { ok: true, input: '2', value: 2 },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('passes a source error on', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a--#', { a: '1' }, new Error('connection lost'));
      const e1subs = '   ^---!';
      const expected = ' -A--#';

      expectObservable(e1.pipe(decodeWith(decodeDigit, onThrow))).toBe(
        expected,
        { A: { ok: true, input: '1', value: 1 } },
        new Error('connection lost'),
      );
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('errors only when onThrow itself throws', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('onThrow bug');
      const e1 = cold('  -a--t--b--|', { a: '1', t: 'boom', b: '2' });
      const e1subs = '   ^---!';
      const expected = ' -A--#';

      const decoded = e1.pipe(
        decodeWith(decodeDigit, () => {
          throw failure;
        }),
      );
      expectObservable(decoded).toBe(expected, { A: { ok: true, input: '1', value: 1 } }, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });
});
