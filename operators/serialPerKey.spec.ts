import { finalize, from, lastValueFrom, map, of, timer, toArray } from 'rxjs';
import type { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { serialPerKey } from './serialPerKey.ts';

// An item is its key followed by its id: 'Pa' is item a of key P.
const keyOf = (item: string): string => item.slice(0, 1);
const ids = (items: string[]): string => items.map((item) => item.slice(1)).join('');
const values = { a: 'Pa', b: 'Pb', c: 'Pc', d: 'Pd', q: 'Qq', x: 'Qx' };

interface Turn {
  key: string;
  items: string;
  start: number;
  end: number;
}

describe('serialPerKey', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  /** Work that takes `ms` of virtual time and records when each turn ran. */
  const timedWork =
    (ms: number, turns: Turn[]) =>
    (key: string, items: string[]): Observable<string> => {
      const turn: Turn = { key, items: ids(items), start: testScheduler.now(), end: Number.NaN };
      turns.push(turn);
      return timer(ms, testScheduler).pipe(
        map(() => `${key}[${ids(items)}]`),
        finalize(() => {
          turn.end = testScheduler.now();
        }),
      );
    };

  const expectNoOverlapPerKey = (turns: Turn[]): void => {
    const lastEnd = new Map<string, number>();
    for (const turn of turns) {
      expect(turn.start).toBeGreaterThanOrEqual(lastEnd.get(turn.key) ?? -Infinity);
      lastEnd.set(turn.key, turn.end);
    }
  };

  it('runs the turns of one key in arrival order, one at a time, with the mail that queued meanwhile', () => {
    const turns: Turn[] = [];
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -a-b-cx-d-------|', values);
      const e1subs = '   ^---------------!';
      const expected = ' -------A----XB-----(D|)';

      const results = e1.pipe(serialPerKey(keyOf, timedWork(6, turns), { maxConcurrentKeys: 2, maxBatch: 10 }));
      expectObservable(results).toBe(expected, { A: 'P[a]', X: 'Q[x]', B: 'P[bc]', D: 'P[d]' });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
    expect(turns).toEqual([
      { key: 'P', items: 'a', start: 1, end: 7 },
      { key: 'Q', items: 'x', start: 6, end: 12 },
      { key: 'P', items: 'bc', start: 7, end: 13 },
      { key: 'P', items: 'd', start: 13, end: 19 },
    ]);
    expectNoOverlapPerKey(turns);
  });

  it('lets keys wait in line for a free slot, and sends a key with more mail to the back of the line', () => {
    const turns: Turn[] = [];
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -aqb-------|', values);
      const e1subs = '   ^----------!';
      const expected = ' -----A---Q---(B|)';

      const results = e1.pipe(serialPerKey(keyOf, timedWork(4, turns), { maxConcurrentKeys: 1, maxBatch: 10 }));
      expectObservable(results).toBe(expected, { A: 'P[a]', Q: 'Q[q]', B: 'P[b]' });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
    expect(turns.map(({ start, end }) => [start, end])).toEqual([
      [1, 5],
      [5, 9],
      [9, 13],
    ]);
  });

  it('hands a turn at most maxBatch items', () => {
    const turns: Turn[] = [];
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -abcd-|', values);
      const e1subs = '   ^-----!';
      const expected = ' -----A---B---(D|)';

      const results = e1.pipe(serialPerKey(keyOf, timedWork(4, turns), { maxConcurrentKeys: 4, maxBatch: 2 }));
      expectObservable(results).toBe(expected, { A: 'P[a]', B: 'P[bc]', D: 'P[d]' });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
    expectNoOverlapPerKey(turns);
  });

  it('hands a turn no more items than add up to maxWeight, but an item heavier than that on its own', () => {
    const turns: Turn[] = [];
    const weights: Record<string, number> = { Pa: 1, Pb: 5, Pc: 1, Pd: 2 };
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -abcd-|', values);
      const e1subs = '   ^-----!';
      const expected = ' -----A---B---(C|)';

      const results = e1.pipe(serialPerKey(keyOf, timedWork(4, turns), {
        maxConcurrentKeys: 4, maxBatch: 10, weightOf: (item) => weights[item] ?? 1, maxWeight: 3,
      }));
      // b (5) exceeds maxWeight alone and still gets a turn; c (1) + d (2) fit in one.
      expectObservable(results).toBe(expected, { A: 'P[a]', B: 'P[b]', C: 'P[cd]' });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
    expectNoOverlapPerKey(turns);
  });

  it('emits every value a turn produces', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -ax---|', values);
      const e1subs = '   ^-----!';
      const turn = cold('-1--(2|)');
      const turnSubs = [
        '                -^---!',
        '                --^---!',
      ];
      const expected = ' --11-2(2|)';

      const results = e1.pipe(serialPerKey(keyOf, () => turn, { maxConcurrentKeys: 2, maxBatch: 10 }));
      expectObservable(results).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
      expectSubscriptions(turn.subscriptions).toBe(turnSubs);
    });
  });

  it('runs synchronous turns in order without waiting', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a(bx)c-|', values);
      const e1subs = '   ^-------!';
      const expected = ' -A(BX)C-|';

      const results = e1.pipe(
        serialPerKey(keyOf, (key, items) => of(`${key}[${ids(items)}]`), { maxConcurrentKeys: 1, maxBatch: 10 }),
      );
      expectObservable(results).toBe(expected, { A: 'P[a]', B: 'P[b]', X: 'Q[x]', C: 'P[c]' });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('errors when a turn errors, cancelling the turns of other keys', () => {
    testScheduler.run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('project Q: turn failed');
      const e1 = hot('    -aq-----|', values);
      const e1subs = '    ^---!';
      const pTurn = cold('------(x|)');
      const pTurnSubs = ' -^--!';
      const qTurn = cold('--#', undefined, failure);
      const qTurnSubs = ' --^-!';
      const expected = '  ----#';

      const results = e1.pipe(
        serialPerKey(keyOf, (key) => (key === 'P' ? pTurn : qTurn), { maxConcurrentKeys: 2, maxBatch: 10 }),
      );
      expectObservable(results).toBe(expected, undefined, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
      expectSubscriptions(pTurn.subscriptions).toBe(pTurnSubs);
      expectSubscriptions(qTurn.subscriptions).toBe(qTurnSubs);
    });
  });

  it('errors when keyOf throws, cancelling the running turns', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('message without project');
      const e1 = cold('  -ab-|', values);
      const e1subs = '   ^-!';
      const turn = cold('---(x|)');
      const turnSubs = ' -^!';
      const expected = ' --#';

      const throwingKeyOf = (item: string): string => {
        if (item === 'Pb') throw failure;
        return keyOf(item);
      };
      const results = e1.pipe(serialPerKey(throwingKeyOf, () => turn, { maxConcurrentKeys: 2, maxBatch: 10 }));
      expectObservable(results).toBe(expected, undefined, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
      expectSubscriptions(turn.subscriptions).toBe(turnSubs);
    });
  });

  it('errors when work throws instead of returning', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('work is broken');
      const e1 = cold('  -a-|', values);
      const e1subs = '   ^!';
      const expected = ' -#';

      const results = e1.pipe(
        serialPerKey(
          keyOf,
          () => {
            throw failure;
          },
          { maxConcurrentKeys: 2, maxBatch: 10 },
        ),
      );
      expectObservable(results).toBe(expected, undefined, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('cancels the running turns on unsubscribe', () => {
    testScheduler.run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -ax----|', values);
      const e1subs = '   ^--!';
      const turn = cold('-----(r|)');
      const turnSubs = [
        '                -^-!',
        '                --^!',
      ];
      const unsub = '    ---!';
      const expected = ' ----';

      const results = e1.pipe(serialPerKey(keyOf, () => turn, { maxConcurrentKeys: 2, maxBatch: 10 }));
      expectObservable(results, unsub).toBe(expected);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
      expectSubscriptions(turn.subscriptions).toBe(turnSubs);
    });
  });

  it('accepts work that returns a Promise, keeping the turns of a key apart', async () => {
    const active = new Set<string>();
    const overlapping: string[] = [];
    const results = await lastValueFrom(
      from(['Pa', 'Pb', 'Qx', 'Pc']).pipe(
        serialPerKey(
          keyOf,
          async (key, items) => {
            if (active.has(key)) overlapping.push(key);
            active.add(key);
            await Promise.resolve();
            await Promise.resolve();
            active.delete(key);
            return `${key}[${ids(items)}]`;
          },
          { maxConcurrentKeys: 2, maxBatch: 10 },
        ),
        toArray(),
      ),
    );
    expect(results).toEqual(['P[a]', 'Q[x]', 'P[bc]']);
    expect(overlapping).toEqual([]);
  });

  it('errors when a Promise turn rejects', async () => {
    const results = from(['Pa', 'Qx']).pipe(
      serialPerKey(
        keyOf,
        (key) => (key === 'Q' ? Promise.reject(new Error('project Q: ERP refused the batch')) : Promise.resolve(key)),
        { maxConcurrentKeys: 2, maxBatch: 10 },
      ),
    );
    await expect(lastValueFrom(results)).rejects.toThrow('project Q: ERP refused the batch');
  });

  it('rejects options out of range with an error that names the option', () => {
    const work = (): Observable<never> => of();
    expect(() => serialPerKey(keyOf, work, { maxConcurrentKeys: 0, maxBatch: 1 })).toThrow(
      new RangeError('serialPerKey: options.maxConcurrentKeys must be a positive integer or Infinity, got 0'),
    );
    expect(() => serialPerKey(keyOf, work, { maxConcurrentKeys: Infinity, maxBatch: 1 })).not.toThrow();
    expect(() => serialPerKey(keyOf, work, { maxConcurrentKeys: 1, maxBatch: 0.5 })).toThrow(
      new RangeError('serialPerKey: options.maxBatch must be a positive integer, got 0.5'),
    );
    expect(() => serialPerKey(keyOf, work, { maxConcurrentKeys: 1, maxBatch: 1, maxWeight: 0 })).toThrow(
      new RangeError('serialPerKey: options.maxWeight must be a number > 0, got 0'),
    );
  });
});
