import type { Subscription } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { batchByCountOrTime } from './batchByCountOrTime.ts';

describe('batchByCountOrTime', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  it('emits a batch when it is full or when its first item has waited maxWaitMs', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -a-b-c-d-------e------------|');
      const e1subs = '   ^---------------------------!';
      const expected = ' -----X------Y-------Z-------|';

      const batches = e1.pipe(batchByCountOrTime({ maxCount: 3, maxWaitMs: 5, scheduler: testScheduler }));
      expectObservable(batches).toBe(expected, { X: ['a', 'b', 'c'], Y: ['d'], Z: ['e'] });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('starts the clock at the first item of a batch and emits nothing while idle', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   ---------a-b-------c--------|');
      const e1subs = '   ^---------------------------!';
      const expected = ' --------------X---------Y---|';

      const batches = e1.pipe(batchByCountOrTime({ maxCount: 10, maxWaitMs: 5, scheduler: testScheduler }));
      expectObservable(batches).toBe(expected, { X: ['a', 'b'], Y: ['c'] });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('stops the clock when a batch fills up, so the next batch gets a full wait', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -abc-d------|');
      const e1subs = '   ^-----------!';
      const expected = ' ---X------Y-|';

      const batches = e1.pipe(batchByCountOrTime({ maxCount: 3, maxWaitMs: 5, scheduler: testScheduler }));
      expectObservable(batches).toBe(expected, { X: ['a', 'b', 'c'], Y: ['d'] });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('flushes the partial batch when the source completes', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a-b-|');
      const e1subs = '   ^----!';
      const expected = ' -----(X|)';

      const batches = e1.pipe(batchByCountOrTime({ maxCount: 10, maxWaitMs: 100, scheduler: testScheduler }));
      expectObservable(batches).toBe(expected, { X: ['a', 'b'] });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('keeps a batch within maxBytes: an item that would overflow it starts the next batch', () => {
    const bytes: Record<string, number> = { a: 3, b: 3, c: 5, d: 9, e: 1 };
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      // d alone is larger than maxBytes: it cannot be split, so it leaves alone at once.
      const e1 = hot('   -a-b-c-d-e-----|');
      const e1subs = '   ^--------------!';
      const expected = ' -----A-(CD)---E|';

      const batches = e1.pipe(
        batchByCountOrTime({
          maxCount: 10,
          maxWaitMs: 5,
          maxBytes: 8,
          sizeOf: (item) => bytes[item] ?? 0,
          scheduler: testScheduler,
        }),
      );
      expectObservable(batches).toBe(expected, { A: ['a', 'b'], C: ['c'], D: ['d'], E: ['e'] });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('passes a source error on and drops the partial batch', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a-b-#');
      const e1subs = '   ^----!';
      const expected = ' -----#';

      const batches = e1.pipe(batchByCountOrTime({ maxCount: 10, maxWaitMs: 10, scheduler: testScheduler }));
      expectObservable(batches).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('errors when sizeOf throws', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('cannot encode b');
      const e1 = cold('  -a-b-c-|');
      const e1subs = '   ^--!';
      const expected = ' ---#';

      const batches = e1.pipe(
        batchByCountOrTime({
          maxCount: 10,
          maxWaitMs: 10,
          maxBytes: 100,
          sizeOf: (item: string) => {
            if (item === 'b') throw failure;
            return 1;
          },
          scheduler: testScheduler,
        }),
      );
      expectObservable(batches).toBe(expected, undefined, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('cancels the pending batch and its clock on unsubscribe', () => {
    const maxWaitMs = 7;
    const schedule = vi.spyOn(testScheduler, 'schedule');
    let clocks: Subscription[] = [];
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -a-b------|');
      const unsub = '    ----!';
      const e1subs = '   ^---!';
      const expected = ' -----';

      const batches = e1.pipe(batchByCountOrTime({ maxCount: 10, maxWaitMs, scheduler: testScheduler }));
      expectObservable(batches, unsub).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
      // Look at frame 5, after the unsubscribe and before the clock would have been due (frame 8).
      testScheduler.schedule(() => {
        clocks = schedule.mock.calls.flatMap(([, delay], call) =>
          delay === maxWaitMs ? [schedule.mock.results[call]?.value as Subscription] : [],
        );
      }, 5);
    });
    expect(clocks).toHaveLength(1);
    expect(clocks[0]?.closed).toBe(true);
  });

  it('rejects options out of range with an error that names the option', () => {
    expect(() => batchByCountOrTime({ maxCount: 0, maxWaitMs: 5 })).toThrow(
      new RangeError('batchByCountOrTime: options.maxCount must be a positive integer, got 0'),
    );
    expect(() => batchByCountOrTime({ maxCount: 1, maxWaitMs: -1 })).toThrow(
      new RangeError('batchByCountOrTime: options.maxWaitMs must be a finite number >= 0, got -1'),
    );
    expect(() => batchByCountOrTime({ maxCount: 1, maxWaitMs: 5, maxBytes: 0, sizeOf: () => 1 })).toThrow(
      new RangeError('batchByCountOrTime: options.maxBytes must be a number > 0, got 0'),
    );
    expect(() => batchByCountOrTime({ maxCount: 1, maxWaitMs: 5, maxBytes: 1024 })).toThrow(
      new TypeError('batchByCountOrTime: options.maxBytes needs options.sizeOf to measure items'),
    );
  });
});
