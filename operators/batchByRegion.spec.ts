import { map, merge } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { batchByRegion } from './batchByRegion.ts';
import type { RegionBatch } from './batchByRegion.ts';
import { serialPerKey } from './serialPerKey.ts';

// Upper-case items belong to region US, lower-case ones to region EU.
const regionOf = (item: string): string => (item === item.toUpperCase() ? 'US' : 'EU');

// Sizes for the byte tests, as `sizeOf` would measure an encoded item.
const sizes: Readonly<Record<string, number>> = { a: 4, b: 4, c: 3, d: 6, e: 1, X: 9, Y: 5, Z: 4, P: 1, Q: 1, R: 1 };
const sizeOf = (item: string): number => sizes[item] ?? Number.NaN;

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

  it("sends a region's batch when its bytes reach maxBytes, an item that would overflow it going to the next", () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      // Bytes: a 4, b 4, X 9, c 3, d 6, e 1. EU [a, b] + c would be 11; [c, d, e] is exactly 10.
      const e1 = hot('   -a-bX-c-d-e------|');
      const e1subs = '   ^----------------!';
      const expected = ' ------A---C-X----|';

      const batches = e1.pipe(
        batchByRegion(regionOf, { maxCount: 10, maxWaitMs: 8, maxBytes: 10, sizeOf, scheduler: testScheduler }),
      );
      expectObservable(batches).toBe(expected, {
        A: { region: 'EU', items: ['a', 'b'] },
        C: { region: 'EU', items: ['c', 'd', 'e'] },
        // 9 bytes of US on top of EU's 8 would overflow a shared batch; US counts only its own.
        X: { region: 'US', items: ['X'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('gives a region its own maxBytes while the other regions have no byte limit', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      // Bytes: X 9, Y 5, Z 4. US holds at most 10: [X] leaves when Y would overflow it, [Y, Z] leaves
      // 6 ms after Y. EU [a, b, c, d] (17 bytes) leaves 6 ms after a.
      const e1 = hot('   -aXbYcdZ----------|');
      const e1subs = '   ^-----------------!';
      const expected = ' ----X--A--Y-------|';

      const batches = e1.pipe(
        batchByRegion(regionOf, {
          maxCount: 10,
          maxWaitMs: 6,
          sizeOf,
          regions: { US: { maxBytes: 10 } },
          scheduler: testScheduler,
        }),
      );
      expectObservable(batches).toBe(expected, {
        X: { region: 'US', items: ['X'] },
        A: { region: 'EU', items: ['a', 'b', 'c', 'd'] },
        Y: { region: 'US', items: ['Y', 'Z'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('gives a region named in regions a smaller maxCount and shorter maxWaitMs; another keeps the defaults', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      // US: 2 items or 4 ms. EU, not named: 3 items or 9 ms.
      const e1 = hot('   -aX-bY-c-Z----d-----------|');
      const e1subs = '   ^-------------------------!';
      const expected = ' -----Y-A-----Z---------D--|';

      const batches = e1.pipe(
        batchByRegion(regionOf, {
          maxCount: 3,
          maxWaitMs: 9,
          regions: { US: { maxCount: 2, maxWaitMs: 4 } },
          scheduler: testScheduler,
        }),
      );
      expectObservable(batches).toBe(expected, {
        Y: { region: 'US', items: ['X', 'Y'] },
        A: { region: 'EU', items: ['a', 'b', 'c'] },
        Z: { region: 'US', items: ['Z'] },
        D: { region: 'EU', items: ['d'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('falls back to the top-level values field by field for what a region override leaves out', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      // US sets only maxWaitMs (3), so it keeps maxCount 3 and maxBytes 10. Bytes: X 9, Y 5, a 4, P, Q, R 1.
      // [X] leaves when Y would overflow 10 bytes, [Y] 3 ms after Y, [P, Q, R] full by count.
      const e1 = hot('   -XYa---PQR-----|');
      const e1subs = '   ^--------------!';
      const expected = ' --X--Y---R--A--|';

      const batches = e1.pipe(
        batchByRegion(regionOf, {
          maxCount: 3,
          maxWaitMs: 9,
          maxBytes: 10,
          sizeOf,
          regions: { US: { maxWaitMs: 3 } },
          scheduler: testScheduler,
        }),
      );
      expectObservable(batches).toBe(expected, {
        X: { region: 'US', items: ['X'] },
        Y: { region: 'US', items: ['Y'] },
        R: { region: 'US', items: ['P', 'Q', 'R'] },
        A: { region: 'EU', items: ['a'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it("never holds a quiet region's lone item past its maxWaitMs while a spike fills another's batches by count", () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -abcXdefghijklmn-----|');
      const e1subs = '   ^--------------------!';
      const expected = ' ---A---B-XC--J-----M-|';

      const batches = e1.pipe(batchByRegion(regionOf, { maxCount: 3, maxWaitMs: 5, scheduler: testScheduler }));
      expectObservable(batches).toBe(expected, {
        A: { region: 'EU', items: ['a', 'b', 'c'] },
        B: { region: 'EU', items: ['d', 'e', 'f'] },
        // Exactly 5 ms after X arrived, between two of the spike's full batches.
        X: { region: 'US', items: ['X'] },
        C: { region: 'EU', items: ['g', 'h', 'i'] },
        J: { region: 'EU', items: ['j', 'k', 'l'] },
        M: { region: 'EU', items: ['m', 'n'] },
      });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it("serves a quiet region's batches between a busy region's through serialPerKey with one worker slot", () => {
    testScheduler.run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      // EU's spike makes four full batches at frame 1; US's lone items leave 2 ms after arriving.
      const eu = hot('    -(abcdefgh)-----|');
      const us = hot('    --X---Y---------|');
      const euSubs = '    ^---------------!';
      const usSubs = '    ^---------------!';
      // Each turn takes 4 ms and one runs at a time. In arrival order, US [X] would wait for all four
      // EU batches, until frame 17.
      const turn = cold('  ----(r|)');
      const turnSubs = [
        '                 -^---!',
        '                 -----^---!',
        '                 ---------^---!',
        '                 -------------^---!',
        '                 -----------------^---!',
        '                 ---------------------^---!',
      ];
      const expected = '  -----A---X---C---Y---E---(G|)';

      const work = (region: string, batches: RegionBatch<string>[]) =>
        turn.pipe(map(() => `${region}[${batches.map((batch) => batch.items.join('')).join('|')}]`));
      const results = merge(eu, us).pipe(
        batchByRegion(regionOf, { maxCount: 2, maxWaitMs: 2, scheduler: testScheduler }),
        serialPerKey((batch) => batch.region, work, { maxConcurrentKeys: 1, maxBatch: 1 }),
      );
      expectObservable(results).toBe(expected, {
        A: 'EU[ab]',
        X: 'US[X]',
        C: 'EU[cd]',
        Y: 'US[Y]',
        E: 'EU[ef]',
        G: 'EU[gh]',
      });
      expectSubscriptions(eu.subscriptions).toBe(euSubs);
      expectSubscriptions(us.subscriptions).toBe(usSubs);
      expectSubscriptions(turn.subscriptions).toBe(turnSubs);
    });
  });

  it('rejects a region override out of range at creation with an error that names the region and the field', () => {
    const defaults = { maxCount: 10, maxWaitMs: 20 };
    expect(() => batchByRegion(regionOf, { ...defaults, regions: { US: { maxCount: 0 } } })).toThrow(
      new RangeError('batchByRegion: options.regions.US.maxCount must be a positive integer, got 0'),
    );
    expect(() => batchByRegion(regionOf, { ...defaults, regions: { EU: {}, US: { maxWaitMs: -1 } } })).toThrow(
      new RangeError('batchByRegion: options.regions.US.maxWaitMs must be a finite number >= 0, got -1'),
    );
    expect(() => batchByRegion(regionOf, { ...defaults, sizeOf, regions: { US: { maxBytes: 0 } } })).toThrow(
      new RangeError('batchByRegion: options.regions.US.maxBytes must be a number > 0, got 0'),
    );
    expect(() => batchByRegion(regionOf, { ...defaults, regions: { US: { maxBytes: 100 } } })).toThrow(
      new TypeError('batchByRegion: options.regions.US.maxBytes needs options.sizeOf to measure items'),
    );
    const withIdleMs = { US: { maxCount: 5, idleMs: 10 } } as Record<string, { maxCount?: number }>;
    expect(() => batchByRegion(regionOf, { ...defaults, regions: withIdleMs })).toThrow(
      new TypeError(
        'batchByRegion: options.regions.US.idleMs is not a per-region option (maxCount, maxWaitMs, maxBytes)',
      ),
    );
  });

  it('rejects options out of range with an error that names the option', () => {
    expect(() => batchByRegion(regionOf, { maxCount: 10, maxWaitMs: 20, idleMs: 0 })).toThrow(
      new RangeError('batchByRegion: options.idleMs must be a finite number > 0, got 0'),
    );
    expect(() => batchByRegion(regionOf, { maxCount: 0, maxWaitMs: 20 })).toThrow(
      new RangeError('batchByCountOrTime: options.maxCount must be a positive integer, got 0'),
    );
    expect(() => batchByRegion(regionOf, { maxCount: 10, maxWaitMs: 20, maxBytes: 100 })).toThrow(
      new TypeError('batchByCountOrTime: options.maxBytes needs options.sizeOf to measure items'),
    );
  });
});
