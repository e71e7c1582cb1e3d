import { from, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { latestRevisionOnly } from './latestRevisionOnly.ts';

interface Revision {
  id: string;
  rev: number;
}

const keyOf = (x: Revision): string => x.id;
const revisionOf = (x: Revision): number => x.rev;
const values: Record<string, Revision> = {
  a: { id: 'a', rev: 1 },
  b: { id: 'a', rev: 2 },
  c: { id: 'a', rev: 3 },
  d: { id: 'a', rev: 4 },
  x: { id: 'x', rev: 1 },
  y: { id: 'x', rev: 2 },
  n: { id: 'x', rev: Number.NaN },
};

describe('latestRevisionOnly', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  it('drops items that are not newer than the highest revision seen for their key', () => {
    const stale: [number, Revision][] = [];
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   --a--c--x--b--d--x--|', values);
      const e1subs = '   ^-------------------!';
      const expected = ' --a--c--x-----d-----|';

      const latest = e1.pipe(
        latestRevisionOnly(keyOf, revisionOf, {
          capacity: 10,
          onStale: (item) => stale.push([testScheduler.now(), item]),
        }),
      );
      expectObservable(latest).toBe(expected, values);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
    expect(stale).toEqual([
      [11, values.b],
      [17, values.x],
    ]);
  });

  it('remembers only the last `capacity` keys, so a forgotten key starts afresh', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -c-a-x-a-|', values);
      const e1subs = '   ^--------!';
      const expected = ' -c---x-a-|';

      expectObservable(e1.pipe(latestRevisionOnly(keyOf, revisionOf, { capacity: 1 }))).toBe(expected, values);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('errors with the key when a revision is NaN', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -x-n-y-|', values);
      const e1subs = '   ^--!';
      const expected = ' -x-#';

      expectObservable(e1.pipe(latestRevisionOnly(keyOf, revisionOf, { capacity: 10 }))).toBe(
        expected,
        values,
        new TypeError('latestRevisionOnly: revision of key x is NaN'),
      );
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('over many evictions and refreshes, passes exactly what a least-recently-seen list of `capacity` keys would', () => {
    let state = 11;
    const next = (): number => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31);
    const items: Revision[] = Array.from({ length: 20_000 }, () => ({ id: `k${(next() >>> 16) % 40}`, rev: (next() >>> 16) % 6 }));
    const capacity = 7;
    const remembered: { id: string; rev: number }[] = [];
    const expected = items.filter((item) => {
      const at = remembered.findIndex((r) => r.id === item.id);
      const seen = at >= 0 ? (remembered.splice(at, 1)[0] as { id: string; rev: number }) : undefined;
      if (seen && item.rev <= seen.rev) { remembered.push(seen); return false; }
      remembered.push({ id: item.id, rev: item.rev });
      if (remembered.length > capacity) remembered.shift();
      return true;
    });
    let passed: Revision[] = [];
    from(items).pipe(latestRevisionOnly(keyOf, revisionOf, { capacity }), toArray()).subscribe((out) => { passed = out; });
    expect(expected.length).toBeGreaterThan(5_000);
    expect(expected.length).toBeLessThan(items.length);
    expect(passed).toEqual(expected);
  });

  it('keeps its memory per subscription', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -b-a-c-|', values);
      const e1subs = [
        '                ^------!',
        '                ^------!',
      ];
      const expected = ' -b---c-|';

      const latest = e1.pipe(latestRevisionOnly(keyOf, revisionOf, { capacity: 10 }));
      expectObservable(latest).toBe(expected, values);
      expectObservable(latest).toBe(expected, values);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('rejects a capacity that is not a positive integer', () => {
    expect(() => latestRevisionOnly(keyOf, revisionOf, { capacity: -1 })).toThrow(
      new RangeError('latestRevisionOnly: options.capacity must be a positive integer, got -1'),
    );
  });
});
