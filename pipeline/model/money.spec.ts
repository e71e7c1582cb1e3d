import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatHours,
  formatMoney,
  isMoneyFormatError,
  lineAmount,
  MoneyFormatError,
  parseHours,
  parseMoney,
  roundHalfAwayFromZero,
} from './money.ts';

/** Catch the thrown value so a test can look at its fields. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('parseMoney', () => {
  it.each([
    ['1125.00', 112500n],
    ['7.5', 750n],
    ['7.05', 705n],
    ['-3.25', -325n],
    ['-0.50', -50n],
    ['0', 0n],
    ['0.00', 0n],
    ['12', 1200n],
    ['0007.10', 710n],
    ['92233720368547758.07', 9223372036854775807n],
  ])('parses %j as %s cents', (text, cents) => {
    expect(parseMoney(text)).toBe(cents);
  });

  it.each([
    ['7.505', 'must have at most 2 decimals'],
    ['1.000', 'must have at most 2 decimals'],
    ['', 'must be a plain decimal number such as "1125.00"'],
    ['abc', 'must be a plain decimal number such as "1125.00"'],
    ['1,25', 'must be a plain decimal number such as "1125.00"'],
    ['+1.00', 'must be a plain decimal number such as "1125.00"'],
    ['.50', 'must be a plain decimal number such as "1125.00"'],
    ['5.', 'must be a plain decimal number such as "1125.00"'],
    ['1e3', 'must be a plain decimal number such as "1125.00"'],
    [' 1.00', 'must be a plain decimal number such as "1125.00"'],
    ['--1', 'must be a plain decimal number such as "1125.00"'],
    ['NaN', 'must be a plain decimal number such as "1125.00"'],
  ])('refuses %j: %s', (text, reason) => {
    const err = thrownBy(() => parseMoney(text));
    expect(err).toBeInstanceOf(MoneyFormatError);
    expect(isMoneyFormatError(err)).toBe(true);
    expect(err).toMatchObject({ name: 'MoneyFormatError', reason, text, quantity: 'money' });
    expect((err as Error).message).toContain(reason);
  });
});

describe('formatMoney', () => {
  it.each([
    [112500n, '1125.00'],
    [0n, '0.00'],
    [5n, '0.05'],
    [-5n, '-0.05'],
    [-50n, '-0.50'],
    [-325n, '-3.25'],
    [100n, '1.00'],
  ])('formats %s cents as %j', (cents, text) => {
    expect(formatMoney(cents)).toBe(text);
  });

  it('round-trips through parseMoney for any amount', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), (cents) => {
        const text = formatMoney(cents);
        expect(text).toMatch(/^-?\d+\.\d{2}$/);
        expect(parseMoney(text)).toBe(cents);
      }),
    );
  });

  it('re-formats any canonical 2-decimal text to itself', () => {
    const canonical = fc
      .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 15n }), fc.integer({ min: 0, max: 99 }))
      .filter(([negative, whole, fraction]) => !negative || whole > 0n || fraction > 0)
      .map(([negative, whole, fraction]) => `${negative ? '-' : ''}${whole}.${String(fraction).padStart(2, '0')}`);
    fc.assert(
      fc.property(canonical, (text) => {
        expect(formatMoney(parseMoney(text))).toBe(text);
      }),
    );
  });
});

describe('parseHours', () => {
  it.each<[string | number, bigint]>([
    [7.5, 750n],
    ['7.5', 750n],
    ['7.50', 750n],
    [7.25, 725n],
    [1.15, 115n], // 1.15 * 100 === 114.99999999999999 in floating point
    [0.29, 29n], // 0.29 * 100 === 28.999999999999996
    [8, 800n],
    ['8', 800n],
    [24, 2400n],
    [0.01, 1n],
    [-7.5, -750n],
    [-0, 0n],
  ])('parses %j as %s hundredths', (value, hundredths) => {
    expect(parseHours(value)).toBe(hundredths);
  });

  it.each<[string | number, string]>([
    [7.505, 'must have at most 2 decimals'],
    ['7.505', 'must have at most 2 decimals'],
    [0.1 + 0.2, 'must have at most 2 decimals'],
    [Number.NaN, 'must be a finite number'],
    [Number.POSITIVE_INFINITY, 'must be a finite number'],
    [Number.NEGATIVE_INFINITY, 'must be a finite number'],
    [1e-7, 'must be a plain decimal number such as "1125.00"'],
    [1e21, 'must be a plain decimal number such as "1125.00"'],
    ['1e2', 'must be a plain decimal number such as "1125.00"'],
    ['seven', 'must be a plain decimal number such as "1125.00"'],
    ['', 'must be a plain decimal number such as "1125.00"'],
  ])('refuses %j: %s', (value, reason) => {
    const err = thrownBy(() => parseHours(value));
    expect(err).toBeInstanceOf(MoneyFormatError);
    expect(err).toMatchObject({ reason, quantity: 'hours' });
  });

  it('gives the same result for a number and its decimal string', () => {
    fc.assert(
      fc.property(fc.integer({ min: -100_000, max: 100_000 }), (hundredths) => {
        const asNumber = hundredths / 100; // the float a JSON sender would produce
        const asString = formatHours(BigInt(hundredths));
        expect(parseHours(asNumber)).toBe(BigInt(hundredths));
        expect(parseHours(asString)).toBe(BigInt(hundredths));
      }),
    );
  });
});

describe('formatHours', () => {
  it.each([
    [750n, '7.50'],
    [2400n, '24.00'],
    [1n, '0.01'],
    [-750n, '-7.50'],
  ])('formats %s hundredths as %j', (hundredths, text) => {
    expect(formatHours(hundredths)).toBe(text);
  });

  it('round-trips through parseHours', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }), (h) => {
        expect(parseHours(formatHours(h))).toBe(h);
      }),
    );
  });
});

describe('roundHalfAwayFromZero', () => {
  it.each([
    [5n, 2n, 3n],
    [-5n, 2n, -3n],
    [5n, -2n, -3n],
    [-5n, -2n, 3n],
    [4n, 3n, 1n],
    [5n, 3n, 2n],
    [-4n, 3n, -1n],
    [-5n, 3n, -2n],
    [149n, 100n, 1n],
    [150n, 100n, 2n],
    [-150n, 100n, -2n],
    [-149n, 100n, -1n],
    [0n, 7n, 0n],
    [6n, 3n, 2n],
  ])('%s / %s → %s', (n, d, expected) => {
    expect(roundHalfAwayFromZero(n, d)).toBe(expected);
  });

  it('refuses a zero denominator', () => {
    expect(() => roundHalfAwayFromZero(1n, 0n)).toThrow(RangeError);
  });

  it('is never more than half a unit away from the exact quotient', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 18n), max: 10n ** 18n }), fc.bigInt({ min: 1n, max: 10n ** 9n }), (n, d) => {
        const q = roundHalfAwayFromZero(n, d);
        // |n/d - q| ≤ 1/2  ⇔  |n - q·d| · 2 ≤ d
        const error = n - q * d;
        expect(2n * (error < 0n ? -error : error) <= d).toBe(true);
        expect(roundHalfAwayFromZero(-n, d)).toBe(-q);
      }),
    );
  });
});

describe('lineAmount', () => {
  it.each([
    [750n, 15000n, 112500n], // 7.50 h × 150.00
    [725n, 13333n, 96664n], // 7.25 × 133.33 = 966.6425
    [1n, 50n, 1n], // 0.01 × 0.50 = 0.005 → 0.01
    [1n, 49n, 0n], // 0.0049 → 0.00
    [-1n, 50n, -1n], // half away from zero, not toward +∞
    [150n, 3333n, 5000n], // 1.50 × 33.33 = 49.995 → 50.00
    [-150n, 3333n, -5000n],
    [0n, 99999n, 0n],
    [2400n, 0n, 0n],
  ])('%s hundredths × %s cents = %s cents', (hours, rate, amount) => {
    expect(lineAmount(hours, rate)).toBe(amount);
  });

  const hoursArb = fc.bigInt({ min: -240_000n, max: 240_000n });
  const rateArb = fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n });

  it('agrees with an exact rational reference', () => {
    // Reference: the exact value is |h·r|/100; rounding half away from zero is
    // floor(|h·r|/100 + 1/2) = floor((2·|h·r| + 100) / 200), then the sign back.
    // Independent of the remainder comparison in the implementation.
    function reference(h: bigint, r: bigint): bigint {
      const product = h * r;
      const magnitude = product < 0n ? -product : product;
      const rounded = (2n * magnitude + 100n) / 200n;
      return product < 0n ? -rounded : rounded;
    }
    fc.assert(
      fc.property(hoursArb, rateArb, (h, r) => {
        expect(lineAmount(h, r)).toBe(reference(h, r));
      }),
    );
  });

  it('is symmetric under negation of the hours', () => {
    fc.assert(
      fc.property(hoursArb, rateArb, (h, r) => {
        expect(lineAmount(-h, r)).toBe(-lineAmount(h, r));
      }),
    );
  });

  it('gives the same amount for hours as a JSON number or a decimal string', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2400 }), rateArb, (hundredths, r) => {
        const fromNumber = lineAmount(parseHours(hundredths / 100), r);
        const fromString = lineAmount(parseHours(formatHours(BigInt(hundredths))), r);
        expect(fromNumber).toBe(fromString);
      }),
    );
  });
});
