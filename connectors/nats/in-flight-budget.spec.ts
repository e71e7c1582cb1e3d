import { describe, expect, it } from 'vitest';
import { InFlightBudget, InFlightLimitError } from './in-flight-budget.ts';

/** Whether the promise has settled after the microtasks queued so far have run. */
async function settled(promise: Promise<void>): Promise<boolean> {
  let done = false;
  void promise.then(() => { done = true; });
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

describe('InFlightBudget', () => {
  it('lets messages through up to maxMessages and waits for a release past it', async () => {
    const budget = new InFlightBudget({ maxMessages: 2, maxBytes: 1_000 });
    expect(await settled(budget.acquire(10))).toBe(true);
    expect(await settled(budget.acquire(10))).toBe(true);
    const third = budget.acquire(10);
    expect(await settled(third)).toBe(false);
    budget.release(10);
    expect(await settled(third)).toBe(true);
    expect({ messages: budget.messages, bytes: budget.bytes }).toEqual({ messages: 2, bytes: 20 });
  });

  it('waits while the bytes would pass maxBytes, serves waiters in order, and lets one oversized message through alone', async () => {
    const budget = new InFlightBudget({ maxMessages: 10, maxBytes: 100 });
    await budget.acquire(60);
    const big = budget.acquire(500);
    const small = budget.acquire(1);
    expect(await settled(big)).toBe(false);
    // The small one fits, but waits behind the big one: no overtaking.
    expect(await settled(small)).toBe(false);
    budget.release(60);
    expect(await settled(big)).toBe(true);
    expect(await settled(small)).toBe(false);
    budget.release(500);
    expect(await settled(small)).toBe(true);
    expect({ messages: budget.messages, bytes: budget.bytes }).toEqual({ messages: 1, bytes: 1 });
  });

  it('takes room at once with tryAcquire when it fits and no one waits, and takes nothing otherwise', async () => {
    const budget = new InFlightBudget({ maxMessages: 2, maxBytes: 100 });
    expect(budget.tryAcquire(60)).toBe(true);
    expect(budget.tryAcquire(50)).toBe(false);
    const waiter = budget.acquire(50);
    // 10 bytes would fit, but the waiter is first in line.
    expect(budget.tryAcquire(10)).toBe(false);
    expect({ messages: budget.messages, bytes: budget.bytes }).toEqual({ messages: 1, bytes: 60 });
    budget.release(60);
    expect(await settled(waiter)).toBe(true);
    expect(budget.tryAcquire(10)).toBe(true);
    expect(budget.tryAcquire(1)).toBe(false);
    expect({ messages: budget.messages, bytes: budget.bytes }).toEqual({ messages: 2, bytes: 60 });
  });

  it('refuses limits that are not positive integers, naming the limit', () => {
    expect(() => new InFlightBudget({ maxMessages: 0, maxBytes: 1 })).toThrow(new InFlightLimitError('InFlightBudget: maxMessages must be a positive integer, got 0'));
    expect(() => new InFlightBudget({ maxMessages: 1, maxBytes: 1.5 })).toThrow(new InFlightLimitError('InFlightBudget: maxBytes must be a positive integer, got 1.5'));
  });
});
