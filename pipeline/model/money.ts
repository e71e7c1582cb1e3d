// Money and hours as exact integers. CONTRACT §1: no money is ever computed in
// binary floating point, so amounts are bigint cents and hours are bigint
// hundredths of an hour. This file owns parsing, rounding and formatting; the
// rest of billstream only adds and compares these integers.

/** An amount in minor units (cents). bigint because hours × rate products can pass 2^53. */
export type Minor = bigint;

/** Which quantity a {@link MoneyFormatError} was about. */
export type DecimalQuantity = 'money' | 'hours';

/**
 * Thrown when a text is not an acceptable decimal amount or hour count.
 *
 * `reason` is the rule in plain words ("must have at most 2 decimals"), so a
 * validator can put it next to the field name without re-wording it.
 */
export class MoneyFormatError extends Error {
  readonly text: string;
  readonly reason: string;
  readonly quantity: DecimalQuantity;

  constructor(text: string, reason: string, quantity: DecimalQuantity = 'money', options?: { cause?: unknown }) {
    super(`${quantity === 'money' ? 'amount' : 'hours'} ${JSON.stringify(text)} ${reason}`, options);
    this.name = 'MoneyFormatError';
    this.text = text;
    this.reason = reason;
    this.quantity = quantity;
  }
}

/** Type guard so callers can tell a format problem from a programming error. */
export function isMoneyFormatError(err: unknown): err is MoneyFormatError {
  return err instanceof MoneyFormatError;
}

// An optional minus, digits, and an optional fraction. No plus sign, no
// exponent, no bare ".5" or "5.": the wire format is plain decimals only.
const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/** Reason used when the text is not a plain decimal at all. */
export const DECIMAL_SHAPE_REASON = 'must be a plain decimal number such as "1125.00"';
/** Reason used when the text has too many decimals. */
export const DECIMAL_PLACES_REASON = 'must have at most 2 decimals';

/**
 * Parse a decimal text with at most 2 decimals into hundredths.
 *
 * Shared by money (cents) and hours (hundredths of an hour): both are scaled
 * by 100, so one exact string-to-integer conversion serves both.
 */
function parseHundredths(text: string, quantity: DecimalQuantity): bigint {
  const match = DECIMAL.exec(text);
  if (match === null) throw new MoneyFormatError(text, DECIMAL_SHAPE_REASON, quantity);
  const [, sign, whole = '0', fraction = ''] = match;
  if (fraction.length > 2) throw new MoneyFormatError(text, DECIMAL_PLACES_REASON, quantity);
  const magnitude = BigInt(whole) * 100n + BigInt(fraction.padEnd(2, '0'));
  return sign === '-' ? -magnitude : magnitude;
}

/** Format hundredths with exactly 2 decimals; a negative value keeps its sign even below 1 ("-0.50"). */
function formatHundredths(value: bigint): string {
  const negative = value < 0n;
  const magnitude = negative ? -value : value;
  const whole = magnitude / 100n;
  const fraction = (magnitude % 100n).toString().padStart(2, '0');
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}

/**
 * Parse a decimal money text into cents.
 *
 * Inputs are the wire strings of CONTRACT §1; up to 2 decimals are accepted
 * ("7.5" is 750 cents) because upstream systems often drop a trailing zero,
 * but a third decimal would be a silent rounding, so it is refused.
 *
 * @example parseMoney('1125.00') // 112500n
 * @example parseMoney('-3.25')   // -325n
 * @param text a decimal such as "1125.00", "7.5", "-3.25" or "0"
 * @returns the amount in cents
 * @throws {MoneyFormatError} when the text is not a plain decimal or has more than 2 decimals
 */
export function parseMoney(text: string): Minor {
  return parseHundredths(text, 'money');
}

/**
 * Format cents as the wire decimal with exactly 2 decimals.
 *
 * @example formatMoney(112500n) // "1125.00"
 * @example formatMoney(-50n)    // "-0.50"
 */
export function formatMoney(minor: Minor): string {
  return formatHundredths(minor);
}

/**
 * Parse hours, given as a decimal string or a JSON number, into hundredths of an hour.
 *
 * A JSON number is converted through its shortest round-tripping decimal
 * (`String(n)`), never by multiplying the float: 7.25 × 100 happens to be
 * exact, but 1.15 × 100 is 114.99999999999999, and the shortest decimal is
 * what the sender wrote. Exponent forms (1e-7), NaN and Infinity are refused.
 * The range (0 < h ≤ 24) is a rule of time records, not of the quantity, so it
 * is checked by the record schema, not here.
 *
 * @example parseHours(7.5)    // 750n
 * @example parseHours('7.25') // 725n
 * @throws {MoneyFormatError} with quantity 'hours'
 */
export function parseHours(value: string | number): bigint {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new MoneyFormatError(String(value), 'must be a finite number', 'hours');
    return parseHundredths(String(value), 'hours');
  }
  return parseHundredths(value, 'hours');
}

/**
 * Format hundredths of an hour with exactly 2 decimals.
 *
 * @example formatHours(750n) // "7.50"
 */
export function formatHours(hundredths: bigint): string {
  return formatHundredths(hundredths);
}

/**
 * Divide and round half away from zero: the rounding CONTRACT §1 prescribes for line amounts.
 *
 * bigint division truncates toward zero; the remainder then decides whether
 * to step one further from zero. Comparing 2·|remainder| with |denominator|
 * keeps it exact, and taking magnitudes makes -x round to exactly -(round x).
 *
 * @example roundHalfAwayFromZero(5n, 2n)  // 3n
 * @example roundHalfAwayFromZero(-5n, 2n) // -3n
 * @throws {RangeError} when the denominator is 0
 */
export function roundHalfAwayFromZero(numerator: bigint, denominator: bigint): bigint {
  if (denominator === 0n) throw new RangeError('roundHalfAwayFromZero: denominator must not be 0');
  const negative = numerator < 0n !== denominator < 0n;
  const n = numerator < 0n ? -numerator : numerator;
  const d = denominator < 0n ? -denominator : denominator;
  let quotient = n / d;
  if (2n * (n % d) >= d) quotient += 1n;
  return negative ? -quotient : quotient;
}

/**
 * The amount of one line: hours × rate, rounded half away from zero to cents.
 *
 * Hundredths of an hour × cents gives ten-thousandths of the currency, so the
 * product is divided by 100 once, and rounded per line (CONTRACT §1), never
 * on a sum.
 *
 * @example lineAmount(750n, 15000n) // 7.50 h × 150.00 = 112500n
 * @example lineAmount(1n, 50n)      // 0.01 h × 0.50 = 0.005 → 1n
 */
export function lineAmount(hoursHundredths: bigint, rateMinor: Minor): Minor {
  return roundHalfAwayFromZero(hoursHundredths * rateMinor, 100n);
}
