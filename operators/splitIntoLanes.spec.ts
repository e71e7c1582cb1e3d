import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RegionBatch } from './batchByRegion.ts';
import { splitIntoLanes } from './splitIntoLanes.ts';

// An item is `<key><n>`: its key decides its lane, n is its place in arrival order.
const laneOfKey = (item: string) => ({ a: 0, b: 1, c: 0, d: 1, e: 2 })[item[0] as 'a'] ?? 0;

describe('splitIntoLanes', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  it('splits each batch into its lanes, lowest first, each keeping its items in order', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot<RegionBatch<string>>('--A-----B--|', {
        A: { region: 'r', items: ['a0', 'b1', 'c2', 'a3', 'b4'] },
        B: { region: 's', items: ['d5'] },
      });
      const e1subs = '                  ^----------!';
      const expected = '                --(xy)--z--|';
      expectObservable(e1.pipe(splitIntoLanes(2, laneOfKey))).toBe(expected, {
        x: { region: 'r', lane: 'r#0', items: ['a0', 'c2', 'a3'] },
        y: { region: 'r', lane: 'r#1', items: ['b1', 'b4'] },
        z: { region: 's', lane: 's#1', items: ['d5'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('passes batches through whole with one lane, never asking for a lane', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot<RegionBatch<string>>('--A--E--|', { A: { region: 'r', items: ['a0', 'b1'] }, E: { region: 'r', items: [] } });
      const e1subs = '                  ^-------!';
      const expected = '                --x-----|';
      expectObservable(e1.pipe(splitIntoLanes(1, () => { throw new Error('not asked'); }))).toBe(expected, {
        x: { region: 'r', lane: 'r#0', items: ['a0', 'b1'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('keeps the other fields of a batch on every part', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const e1 = cold('(a|)', { a: { region: 'r', items: ['a0', 'b1'], openedAt: 7 } });
      expectObservable(e1.pipe(splitIntoLanes<string, RegionBatch<string> & { openedAt: number }>(2, laneOfKey))).toBe('(xy|)', {
        x: { region: 'r', lane: 'r#0', items: ['a0'], openedAt: 7 },
        y: { region: 'r', lane: 'r#1', items: ['b1'], openedAt: 7 },
      });
    });
  });

  it('errors the stream when laneOf answers a lane out of range, naming it', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot<RegionBatch<string>>('--A--|', { A: { region: 'r', items: ['a0', 'e1'] } });
      const e1subs = '                  ^-!';
      expectObservable(e1.pipe(splitIntoLanes(2, laneOfKey))).toBe('--#', undefined, new RangeError('splitIntoLanes: laneOf returned 2, not a lane in [0, 2)'));
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('refuses a lane count that is not a positive integer when created', () => {
    for (const lanes of [0, -1, 1.5, Number.NaN]) {
      expect(() => splitIntoLanes(lanes, laneOfKey)).toThrow(`splitIntoLanes: lanes must be a positive integer, got ${lanes}`);
    }
  });
});
