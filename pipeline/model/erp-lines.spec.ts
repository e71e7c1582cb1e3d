import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chargeOf, reversalOf } from './erp-lines.ts';
import { formatMoney, parseMoney } from './money.ts';
import type { ProjectRecord, TimeRecord } from './types.ts';

const project = { projectId: 'p-1', customerId: 'cust-1', legalEntity: 'le-us' } as ProjectRecord;
const entry = { entryId: 'e-1', revision: 2, consultantId: 'c-1', workDate: '2026-11-10' } as TimeRecord;

describe('chargeOf', () => {
  it('is the revision\'s line, keyed by entry and revision, in the key order the poster sends', () => {
    const charge = chargeOf(entry, project, { amountMinor: 112500n, rateMinor: 15000n, currency: 'USD', role: 'senior' }, 750n);
    expect(charge).toEqual({
      amount: '1125.00', consultantId: 'c-1', currency: 'USD', customerId: 'cust-1', entryId: 'e-1', externalId: 'e-1:2:charge', hours: '7.50',
      kind: 'charge', legalEntity: 'le-us', projectId: 'p-1', rate: '150.00', revision: 2, role: 'senior', workDate: '2026-11-10',
    });
    expect(Object.keys(charge)).toEqual([...Object.keys(charge)].sort());
  });
});

describe('reversalOf', () => {
  it.each([
    ['1125.00', '7.50', '-1125.00', '-7.50'],
    ['-40.00', '-0.25', '40.00', '0.25'],
    ['0.00', '0.00', '0.00', '0.00'],
  ])('negates amount %s and hours %s', (amount, hours, reversedAmount, reversedHours) => {
    const reversal = reversalOf({ ...chargeOf(entry, project, { amountMinor: 0n, rateMinor: 0n, currency: 'USD', role: 'senior' }, 0n), amount, hours });
    expect([reversal.kind, reversal.externalId, reversal.amount, reversal.hours]).toEqual(['reversal', 'e-1:2:reversal', reversedAmount, reversedHours]);
  });

  it('leaves an entry\'s documents summing to nothing, whatever it was charged', () => {
    fc.assert(fc.property(fc.bigInt({ min: -10_000_000n, max: 10_000_000n }), (cents) => {
      const charge = chargeOf(entry, project, { amountMinor: cents, rateMinor: 0n, currency: 'USD', role: 'senior' }, 100n);
      expect(parseMoney(String(charge.amount)) + parseMoney(String(reversalOf(charge).amount))).toBe(0n);
      expect(formatMoney(cents)).toBe(charge.amount);
    }));
  });
});
