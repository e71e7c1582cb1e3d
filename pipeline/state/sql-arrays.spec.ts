import { describe, expect, it } from 'vitest';
import { textArray } from './sql-arrays.ts';

describe('textArray', () => {
  it.each([
    [[], '{}'],
    [['e-1'], '{"e-1"}'],
    [['a', 'b'], '{"a","b"}'],
    [['say "hi"', 'back\\slash', 'comma,brace}', 'NULL', ''], '{"say \\"hi\\"","back\\\\slash","comma,brace}","NULL",""}'],
  ])('writes %j as the array literal %s', (values, literal) => {
    expect(textArray(values)).toBe(literal);
  });
});
