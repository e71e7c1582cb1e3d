import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { enrichWith } from './enrichWith.ts';

describe('enrichWith', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  it('enriches each item with the snapshot current at the moment it passes', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      let rates = 'r1';
      testScheduler.schedule(() => {
        rates = 'r2';
      }, 6);
      const e1 = hot('   --a-----b-----c--|');
      const e1subs = '   ^----------------!';
      const expected = ' --A-----B-----C--|';

      const enriched = e1.pipe(enrichWith(() => rates, (item, snapshot) => `${item}@${snapshot}`));
      expectObservable(enriched).toBe(expected, { A: 'a@r1', B: 'b@r2', C: 'c@r2' });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });

  it('reads the context once per item and never while idle', () => {
    let reads = 0;
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a---------b|');
      const e1subs = '   ^-----------!';
      const expected = ' -A---------B|';

      const enriched = e1.pipe(
        enrichWith(
          () => ++reads,
          (item, read) => `${item}${read}`,
        ),
      );
      expectObservable(enriched).toBe(expected, { A: 'a1', B: 'b2' });
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
    expect(reads).toBe(2);
  });

  it('errors when enrich throws', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('time entry e2: consultant: no rate card');
      const e1 = cold('  -a--b--c--|');
      const e1subs = '   ^---!';
      const expected = ' -A--#';

      const enriched = e1.pipe(
        enrichWith(
          () => 'r1',
          (item, snapshot) => {
            if (item === 'b') throw failure;
            return `${item}@${snapshot}`;
          },
        ),
      );
      expectObservable(enriched).toBe(expected, { A: 'a@r1' }, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });
});
