import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { batchByRegion } from './batchByRegion.ts';

// Upper-case items belong to region US, lower-case ones to region EU.
const regionOf = (item: string): string => (item === item.toUpperCase() ? 'US' : 'EU');

describe('batchByRegion', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  it("sends a quiet region's batch on its own timer while a busy region fills its batches by count", () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -aX-b-c-d-e-f-g-----------|');
      const e1subs = '   ^-------------------------!';
      const expected = ' ------A----XB----------G--|';

      const batches = e1.pipe(batchByRegion(regionOf, { maxCount: 3, maxWaitMs: 9, scheduler: testScheduler }));
      expectObservable(batches).toBe(expected, {
        A: { region: 'EU', items: ['a', 'b', 'c'] },
        X: { region: 'US', items: ['X'] },
        B: { region: 'EU', items: ['d', 'e', 'f'] },
        G: { region: 'EU', items: ['g'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it("ends a region's group after idleMs without items, flushing its partial batch, and starts afresh", () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -a-b-c------------d-----|');
      const e1subs = '   ^-----------------------!';
      const expected = ' ----------A------------D|';

      const batches = e1.pipe(
        batchByRegion(regionOf, { maxCount: 10, maxWaitMs: 20, idleMs: 5, scheduler: testScheduler }),
      );
      expectObservable(batches).toBe(expected, {
        A: { region: 'EU', items: ['a', 'b', 'c'] },
        D: { region: 'EU', items: ['d'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('unsubscribes from the source at once when unsubscribed, whatever groups are open', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -aX-b-c-d-|');
      const unsub = '    ----!';
      const e1subs = '   ^---!';
      const expected = ' -----';

      const batches = e1.pipe(batchByRegion(regionOf, { maxCount: 10, maxWaitMs: 20, scheduler: testScheduler }));
      expectObservable(batches, unsub).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('passes a source error on', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('connection lost');
      const e1 = cold('  -aX-b-#', undefined, failure);
      const e1subs = '   ^-----!';
      const expected = ' ------#';

      const batches = e1.pipe(batchByRegion(regionOf, { maxCount: 10, maxWaitMs: 20, scheduler: testScheduler }));
      expectObservable(batches).toBe(expected, undefined, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('rejects options out of range with an error that names the option', () => {
    expect(() => batchByRegion(regionOf, { maxCount: 10, maxWaitMs: 20, idleMs: 0 })).toThrow(
      new RangeError('batchByRegion: options.idleMs must be a finite number > 0, got 0'),
    );
    expect(() => batchByRegion(regionOf, { maxCount: 0, maxWaitMs: 20 })).toThrow(
      new RangeError('batchByCountOrTime: options.maxCount must be a positive integer, got 0'),
    );
  });
});
