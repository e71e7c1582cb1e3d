import { from, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { dedupeByKey } from './dedupeByKey.ts';

const byItself = (x: string): string => x;

describe('dedupeByKey', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  it('drops an item whose key was seen and hands it to onDuplicate as it is dropped', () => {
    const duplicates: [number, string][] = [];
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   --a--b--a--a--c--|');
      const e1subs = '   ^----------------!';
      const expected = ' --a--b--------c--|';

      const deduped = e1.pipe(
        dedupeByKey(byItself, { capacity: 10, onDuplicate: (x) => duplicates.push([testScheduler.now(), x]) }),
      );
      expectObservable(deduped).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
    expect(duplicates).toEqual([
      [8, 'a'],
      [11, 'a'],
    ]);
  });

  it('remembers only the last `capacity` distinct keys, forgetting the least recently seen', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  --a--b--a--c--b--|');
      const e1subs = '   ^----------------!';
      const expected = ' --a--b-----c--b--|';

      expectObservable(e1.pipe(dedupeByKey(byItself, { capacity: 2 }))).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('refreshes a key on each duplicate, so a key that keeps being redelivered stays remembered', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      // First in, first out would evict a when c arrives and let the last a through.
      const e1 = cold('  -a-b-a-c-a-|');
      const e1subs = '   ^----------!';
      const expected = ' -a-b---c---|';

      expectObservable(e1.pipe(dedupeByKey(byItself, { capacity: 2 }))).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('over many evictions and refreshes, passes exactly what a least-recently-seen list of `capacity` keys would', () => {
    // Thousands of evictions with refreshes between them: the path that reads the
    // oldest key through the iterator kept across evictions.
    let state = 7;
    const next = (): number => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31);
    const keys = Array.from({ length: 20_000 }, () => `k${(next() >>> 16) % 40}`);
    const capacity = 7;
    const remembered: string[] = [];
    const expected = keys.filter((key) => {
      const at = remembered.indexOf(key);
      if (at >= 0) { remembered.splice(at, 1); remembered.push(key); return false; }
      remembered.push(key);
      if (remembered.length > capacity) remembered.shift();
      return true;
    });
    let passed: string[] = [];
    from(keys).pipe(dedupeByKey(byItself, { capacity }), toArray()).subscribe((items) => { passed = items; });
    expect(expected.length).toBeGreaterThan(5_000);
    expect(passed).toEqual(expected);
  });

  it('keeps its memory per subscription', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a-b-a-|');
      const e1subs = [
        '                ^------!',
        '                ^------!',
      ];
      const expected = ' -a-b---|';

      const deduped = e1.pipe(dedupeByKey(byItself, { capacity: 10 }));
      expectObservable(deduped).toBe(expected);
      expectObservable(deduped).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('errors when keyOf throws', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('message without id');
      const e1 = cold('  -a-b-x-c-|');
      const e1subs = '   ^----!';
      const expected = ' -a-b-#';

      const deduped = e1.pipe(
        dedupeByKey(
          (x) => {
            if (x === 'x') throw failure;
            return x;
          },
          { capacity: 10 },
        ),
      );
      expectObservable(deduped).toBe(expected, undefined, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('rejects a capacity that is not a positive integer', () => {
    expect(() => dedupeByKey(byItself, { capacity: 0 })).toThrow(
      new RangeError('dedupeByKey: options.capacity must be a positive integer, got 0'),
    );
    expect(() => dedupeByKey(byItself, { capacity: 1.5 })).toThrow(RangeError);
  });
});
