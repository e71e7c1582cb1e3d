import { describe, expect, it } from 'vitest';
import { formatCents, lineAmountCents, parseCents, validateInvoiceRequest, validatePosting } from './sandbox-validation.ts';
import { charge } from './erp-fixture.ts';

describe('money in cents', () => {
  it.each([
    ['1125.00', 112_500n],
    ['0.05', 5n],
    ['-7.50', -750n],
    ['999999999999.99', 99_999_999_999_999n],
    ['7.5', null],
    ['7.500', null],
    ['1,125.00', null],
    [' 1.00', null],
    ['+1.00', null],
    [7.5, null],
  ])('parseCents(%j) = %s', (input, expected) => {
    expect(parseCents(input)).toBe(expected);
  });

  it.each([
    [0n, '0.00'],
    [5n, '0.05'],
    [-750n, '-7.50'],
    [112_500n, '1125.00'],
  ])('formatCents(%s) = %s', (cents, expected) => {
    expect(formatCents(cents)).toBe(expected);
  });

  it.each([
    // hours, rate, amount: hours × rate rounded half away from zero
    ['7.50', '150.00', '1125.00'],
    ['3.33', '99.99', '332.97'], // 332.9667
    ['0.25', '0.10', '0.03'], // 0.025 rounds up
    ['-0.25', '0.10', '-0.03'], // and away from zero when negative
    ['0.01', '0.49', '0.00'], // 0.0049
    ['24.00', '999999.99', '23999999.76'],
  ])('%s h × %s = %s', (hours, rate, amount) => {
    expect(formatCents(lineAmountCents(parseCents(hours) ?? 0n, parseCents(rate) ?? 0n))).toBe(amount);
  });
});

describe('validatePosting', () => {
  it('accepts a charge, a reversal and a milestone', () => {
    const result = validatePosting({
      transactions: [
        charge('E1'),
        charge('E1', { externalId: 'rev', kind: 'reversal', hours: '-7.50', amount: '-1125.00' }),
        { externalId: 'm', kind: 'milestone', milestoneId: 'M1', revision: 1, projectId: 'P', customerId: 'C', amount: '10.00', currency: 'USD', legalEntity: 'X' },
      ],
    });
    expect(result.ok).toBe(true);
  });

  it.each([
    ['no body', null, 'invalid_request'],
    ['no transactions', {}, 'invalid_request'],
    ['an empty batch', { transactions: [] }, 'invalid_request'],
    ['too many lines', { transactions: Array.from({ length: 1001 }, () => charge('E')) }, 'too_many_lines'],
  ])('refuses %s with 400', (_what, body, code) => {
    expect(validatePosting(body)).toMatchObject({ ok: false, status: 400, code });
  });

  it.each([
    ['a charge with negative hours', { hours: '-7.50', amount: '-1125.00' }, 'hours', 'invalid_amount'],
    ['a reversal with positive amount', { kind: 'reversal' as const }, 'hours', 'invalid_amount'],
    ['a negative rate', { rate: '-150.00', amount: '-1125.00' }, 'rate', 'invalid_amount'],
    ['a bad id', { projectId: 'P 1' }, 'projectId', 'invalid_field'],
    ['a lowercase currency', { currency: 'usd' }, 'currency', 'invalid_field'],
    ['a revision of 0', { revision: 0, externalId: 'charge:E1:1' }, 'revision', 'invalid_field'],
    ['an impossible date', { workDate: '2025-13-01' }, 'workDate', 'invalid_field'],
    ['an amount off by a cent', { amount: '1125.01' }, 'amount', 'amount_mismatch'],
    ['a numeric amount', { amount: 1125 as unknown as string }, 'amount', 'invalid_amount'],
  ])('refuses %s naming the field', (_what, overrides, field, code) => {
    const result = validatePosting({ transactions: [charge('E1', overrides)] });
    expect(result.ok).toBe(false);
    if (result.ok || result.status !== 422) throw new Error('expected a 422');
    expect(result.errors).toContainEqual(expect.objectContaining({ externalId: 'charge:E1:1', index: 0, field, code }));
  });

  it('names a line without a usable externalId by its index', () => {
    const result = validatePosting({ transactions: [charge('E1'), { ...charge('E2'), externalId: 'has space' }, 42] });
    if (result.ok || result.status !== 422) throw new Error('expected a 422');
    expect(result.errors).toEqual([
      expect.objectContaining({ externalId: null, index: 1, field: 'externalId', code: 'invalid_field' }),
      expect.objectContaining({ externalId: null, index: 2, code: 'invalid_field' }),
    ]);
  });
});

describe('validateInvoiceRequest', () => {
  it('accepts a well-formed request', () => {
    expect(validateInvoiceRequest({ projectId: 'P', customerId: 'C', periodEnd: '2025-03-31', documentIds: ['D1'] })).toMatchObject({ ok: true });
  });

  it('lists every problem with its field', () => {
    const result = validateInvoiceRequest({ projectId: 'P', periodEnd: '31/03/2025', documentIds: ['D1', 'D1'] });
    expect(result).toMatchObject({
      ok: false,
      details: [
        { field: 'customerId', reason: expect.any(String) },
        { field: 'periodEnd', reason: expect.any(String) },
        { field: 'documentIds', reason: 'must not repeat a document' },
      ],
    });
  });
});
