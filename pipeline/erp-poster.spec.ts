import { describe, expect, it } from 'vitest';
import { canonicalLine } from './erp-poster.ts';

describe('canonicalLine', () => {
  it('gives a line built by a turn and the same line read back from jsonb (keys reordered) one body', () => {
    const built = { externalId: 'e-1:1:charge', kind: 'charge', entryId: 'e-1', revision: 1, projectId: 'p-1', amount: '1125.00', currency: 'USD' };
    // jsonb sorts keys by length, then bytewise.
    const fromJsonb = { kind: 'charge', amount: '1125.00', entryId: 'e-1', currency: 'USD', revision: 1, projectId: 'p-1', externalId: 'e-1:1:charge' };
    expect(JSON.stringify(built)).not.toBe(JSON.stringify(fromJsonb));
    expect(JSON.stringify(canonicalLine(built))).toBe(JSON.stringify(canonicalLine(fromJsonb)));
    expect(canonicalLine(built)).toEqual(built);
  });

  it('sends a line already in that order as it is, and copies one that is not', () => {
    const ordered = { amount: '1125.00', currency: 'USD', entryId: 'e-1', externalId: 'e-1:1:charge', kind: 'charge', projectId: 'p-1', revision: 1 };
    expect(canonicalLine(ordered)).toBe(ordered);
    const unordered = { kind: 'charge', amount: '1125.00', externalId: 'e-1:1:charge' };
    const line = canonicalLine(unordered);
    expect(line).not.toBe(unordered);
    expect(Object.keys(line)).toEqual(['amount', 'externalId', 'kind']);
  });
});
