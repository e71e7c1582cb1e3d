import { describe, expect, it } from 'vitest';
import { TokenBucket, TokenBucketConfigError } from './token-bucket.ts';

describe('TokenBucket', () => {
  it('lets a burst through, then spaces requests at the rate', () => {
    let now = 0;
    const bucket = new TokenBucket({ ratePerSecond: 4, burst: 2 }, () => now);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 250, 500]);
    now = 1000;
    // Two reservations were waiting; one second refilled four tokens: two left, at most the burst.
    expect(bucket.available()).toBe(2);
    expect(bucket.reserve()).toBe(0);
  });

  it('never holds more than the burst after a quiet spell', () => {
    let now = 0;
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3 }, () => now);
    now = 60_000;
    expect(bucket.available()).toBe(3);
  });

  it('holds every request back while the source asked to wait', () => {
    let now = 0;
    const bucket = new TokenBucket({ ratePerSecond: 100, burst: 10 }, () => now);
    bucket.blockFor(2000);
    expect(bucket.reserve()).toBe(2000);
    now = 1500;
    expect(bucket.reserve()).toBe(500);
    now = 2000;
    expect(bucket.reserve()).toBe(0);
  });

  it('refuses a rate or burst that would never let anything through', () => {
    expect(() => new TokenBucket({ ratePerSecond: 0, burst: 1 })).toThrow(TokenBucketConfigError);
    expect(() => new TokenBucket({ ratePerSecond: 1, burst: 0 })).toThrow(/burst must be at least 1/);
  });
});
