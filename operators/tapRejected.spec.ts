import type { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import type { Decoded } from './decodeWith.ts';
import { tapRejected } from './tapRejected.ts';

type Outcome = Decoded<string, number, string>;
type Rejected = Extract<Outcome, { ok: false }>;
const isRejected = (outcome: Outcome): outcome is Rejected => !outcome.ok;

const values = {
  a: { ok: true, input: '1', value: 1 },
  X: { ok: false, input: 'x', error: 'not a digit: x' },
  b: { ok: true, input: '2', value: 2 },
  Y: { ok: false, input: 'y', error: 'not a digit: y' },
} satisfies Record<string, Outcome>;

describe('tapRejected', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected);
    });
  });

  it('hands rejected items to quarantine as they pass and lets the rest through', () => {
    const quarantined: [number, Rejected][] = [];
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot<Outcome>('--a--X--b--Y--|', values);
      const e1subs = '         ^-------------!';
      const expected = '       --a-----b-----|';

      const accepted = e1.pipe(tapRejected(isRejected, (item) => quarantined.push([testScheduler.now(), item])));
      expectObservable(accepted).toBe(expected, values);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
    expect(quarantined).toEqual([
      [5, values.X],
      [11, values.Y],
    ]);
  });

  it('narrows the output type to the items that are not rejected', () => {
    testScheduler.run(({ cold }) => {
      const accepted = cold<Outcome>('a|', values).pipe(tapRejected(isRejected, () => undefined));
      expectTypeOf(accepted).toEqualTypeOf<Observable<{ ok: true; input: string; value: number }>>();
    });
  });

  it('errors the stream when quarantine throws, so no rejected item is lost silently', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const failure = new Error('dead-letter subject unavailable');
      const e1 = cold<Outcome>('--a--X--b--|', values);
      const e1subs = '          ^----!';
      const expected = '        --a--#';

      const accepted = e1.pipe(
        tapRejected(isRejected, () => {
          throw failure;
        }),
      );
      expectObservable(accepted).toBe(expected, values, failure);
      expectSubscriptions(e1.subscriptions).toBe(e1subs);
    });
  });
});
