// Pure timing rules of the ERP client's retries, kept apart from I/O so they
// are tested as tables, with the randomness passed in.

export interface BackoffPolicy {
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/**
 * Wait before retrying after failed attempt number `attempt` (1-based): "full
 * jitter", a uniform draw below a ceiling that doubles per attempt and is
 * capped. Spreading retries over the whole interval keeps a fleet of clients
 * that failed together from retrying together.
 *
 * @param attempt the attempt that just failed, starting at 1.
 * @param random a draw in [0, 1); `Math.random` outside tests.
 * @returns milliseconds to wait, an integer in [0, min(maxBackoffMs, initialBackoffMs × 2^(attempt−1))].
 */
export function fullJitterBackoffMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** exponent);
  return Math.floor(random() * (ceiling + 1));
}

/**
 * Reads a `Retry-After` header: delay-seconds (`"3"`) or an HTTP date.
 *
 * @param now epoch milliseconds, to turn a date into a delay.
 * @returns milliseconds to wait (never negative), or undefined when the header is absent or unreadable.
 */
export function parseRetryAfterMs(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Only an HTTP date (it names a weekday or a month); Date.parse alone would also take "1.5".
  if (!/[A-Za-z]{3}/.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
