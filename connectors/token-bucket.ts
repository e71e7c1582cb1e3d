// A token bucket: the rate limit every pulling connector keeps towards its
// source, so a burst of pages never earns a 429 in the first place. Pure timing
// over an injected clock; the waiting itself is the caller's.

export interface TokenBucketOptions {
  /** Tokens added per second: the sustained request rate. */
  ratePerSecond: number;
  /** Most tokens held at once: how many requests may go out back to back after a quiet spell. */
  burst: number;
}

export class TokenBucketConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenBucketConfigError';
  }
}

/**
 * Reservations may run the bucket below zero: each caller learns how long to
 * wait for its own token, so concurrent callers queue fairly instead of racing.
 *
 * @example
 * const bucket = new TokenBucket({ ratePerSecond: 2, burst: 1 }, () => 0);
 * bucket.reserve(); // 0   (the one token in the bucket)
 * bucket.reserve(); // 500 (half a second until the next token)
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #updatedAt: number;
  /** Nothing goes out before this instant, whatever the tokens (a source's Retry-After). */
  #blockedUntil = 0;

  /** @param now milliseconds on a monotonic clock. @default performance.now */
  constructor(options: TokenBucketOptions, now: () => number = () => performance.now()) {
    if (!(options.ratePerSecond > 0)) throw new TokenBucketConfigError(`ratePerSecond must be greater than 0, got ${options.ratePerSecond}`);
    if (!(options.burst >= 1)) throw new TokenBucketConfigError(`burst must be at least 1, got ${options.burst}`);
    this.#rate = options.ratePerSecond;
    this.#burst = options.burst;
    this.#now = now;
    this.#tokens = options.burst;
    this.#updatedAt = now();
  }

  /**
   * Takes one token.
   *
   * @returns milliseconds the caller must wait before its request may go out (0 when at once).
   */
  reserve(): number {
    const now = this.#now();
    this.#refill(now);
    this.#tokens -= 1;
    const untilToken = this.#tokens >= 0 ? 0 : (-this.#tokens / this.#rate) * 1000;
    return Math.max(untilToken, this.#blockedUntil - now, 0);
  }

  /** Holds every request back for `ms` from now: the source said so (429 with Retry-After). */
  blockFor(ms: number): void {
    this.#blockedUntil = Math.max(this.#blockedUntil, this.#now() + ms);
  }

  /** Tokens available now (negative while reservations wait). */
  available(): number {
    this.#refill(this.#now());
    return this.#tokens;
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#updatedAt);
    this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed / 1000) * this.#rate);
    this.#updatedAt = now;
  }
}
