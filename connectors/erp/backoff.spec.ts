import { describe, expect, it } from 'vitest';
import { fullJitterBackoffMs, parseRetryAfterMs } from './backoff.ts';

const policy = { initialBackoffMs: 200, maxBackoffMs: 10_000 };

describe('fullJitterBackoffMs', () => {
  it.each([
    // attempt, random draw, expected wait
    [1, 0, 0],
    [1, 0.5, 100],
    [1, 0.9999, 200],
    [2, 0.9999, 400],
    [3, 0.5, 400],
    [6, 0.9999, 6_400],
    [7, 0.99999, 10_000], // 12 800 capped
    [50, 0.99999, 10_000], // no overflow far out
    [0, 0.9999, 200], // a nonsense attempt is treated as the first
  ])('attempt %i with draw %f waits %i ms', (attempt, draw, expected) => {
    expect(fullJitterBackoffMs(attempt, policy, () => draw)).toBe(expected);
  });

  it('waits nothing when the policy says so', () => {
    expect(fullJitterBackoffMs(5, { initialBackoffMs: 0, maxBackoffMs: 0 }, () => 0.9)).toBe(0);
  });
});

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2025-03-03T10:00:00Z');
  it.each([
    ['3', 3_000],
    ['0', 0],
    [' 12 ', 12_000],
    ['Mon, 03 Mar 2025 10:00:05 GMT', 5_000],
    ['Mon, 03 Mar 2025 09:59:00 GMT', 0], // a date already past means now
    ['1.5', undefined],
    ['-1', undefined],
    ['soon', undefined],
    ['', undefined],
    [null, undefined],
    [undefined, undefined],
  ])('%j → %j', (header, expected) => {
    expect(parseRetryAfterMs(header, now)).toBe(expected);
  });
});
