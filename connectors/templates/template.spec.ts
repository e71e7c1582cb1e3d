import { describe, expect, it } from 'vitest';
import { evaluate, parseTemplate, readDate, readMoney, templateResolver, TemplateInvalidError, type Expression } from './template.ts';

const row = {
  code: ' P-100 ',
  client: 'Acme Corp',
  start: '01.03.2026',
  us: '3/7/2026',
  cap: '12.500,50',
  plain: '1125.5',
  billable: 'Ja',
  empty: '',
  nothing: null,
  project: { id: 14307913, name: 'Website' },
  tasks: [{ id: 'dev', billable: 'yes' }, { id: 'pm', billable: 'no' }],
};

describe('template expressions', () => {
  it.each<[string, Expression, unknown]>([
    ['a path, trimmed', { path: 'code' }, 'P-100'],
    ['a nested path', { path: 'project.id' }, 14307913],
    ['a constant', { const: 'EUR' }, 'EUR'],
    ['a lookup', { path: 'client', lookup: { 'Acme Corp': 'acme' } }, 'acme'],
    ['a lookup with a catch-all', { path: 'client', lookup: { Other: 'x', '*': 'fallback' } }, 'fallback'],
    ['a lookup of a number', { path: 'project.id', lookup: { 14307913: 'acme-web' } }, 'acme-web'],
    ['a day-first date', { path: 'start', date: 'DD.MM.YYYY' }, '2026-03-01'],
    ['a US date without zeros', { path: 'us', date: 'M/D/YYYY' }, '2026-03-07'],
    ['money with a comma and dots', { path: 'cap', money: { decimal: ',', group: '.' } }, '12500.50'],
    ['money with one decimal', { path: 'plain', money: true }, '1125.50'],
    ['words as booleans', { path: 'billable', boolean: { true: ['ja'], false: ['nein'] } }, true],
    ['a join', { join: [{ path: 'code' }, { path: 'client', case: 'lower' }], separator: ':' }, 'P-100:acme corp'],
    ['a default for an empty value', { path: 'empty', default: 'none' }, 'none'],
    ['a lower-cased value', { path: 'client', case: 'lower' }, 'acme corp'],
    ['a collected list', { collect: { path: 'tasks', fields: { taskId: { path: 'id' }, billable: { path: 'billable', boolean: true } } } }, [
      { taskId: 'dev', billable: true }, { taskId: 'pm', billable: false },
    ]],
  ])('reads %s', (_what, expr, value) => {
    expect(evaluate(expr, row)).toEqual({ kind: 'value', value });
  });

  it.each<[string, Expression, string]>([
    ['a missing path', { path: 'nope' }, '"nope" is missing'],
    ['an explicit null', { path: 'nothing' }, '"nothing" is null'],
    ['an empty column', { path: 'empty' }, '"empty" is empty'],
    ['a value not in the table', { path: 'client', lookup: { Other: 'x' } }, '"client" "Acme Corp" is not in the lookup table (it has "Other")'],
    ['a date in another format', { path: 'start', date: 'YYYY-MM-DD' }, '"start" "01.03.2026" is no date in the format YYYY-MM-DD'],
    ['money with a third decimal', { const: '1.005', money: true }, 'the value "1.005" is no amount with at most 2 decimals (decimal separator ".")'],
    ['a word that is no boolean', { path: 'client', boolean: true }, '"client" "Acme Corp" is neither true/yes/y/1/x nor false/no/n/0'],
  ])('fails on %s, naming path and value', (_what, expr, reason) => {
    expect(evaluate(expr, row)).toEqual({ kind: 'error', reason });
  });

  it('leaves an optional missing value out', () => {
    expect(evaluate({ path: 'nope', optional: true }, row)).toEqual({ kind: 'absent' });
  });

  it('reads calendar dates only', () => {
    expect(readDate('30.02.2026', 'DD.MM.YYYY')).toBeNull();
    expect(readDate('2026-03-02T09:00:00+0100', 'iso')).toBe('2026-03-02');
    expect(readMoney('1,234.5', { decimal: '.', group: ',' })).toBe('1234.50');
    expect(readMoney('1.234,5', { decimal: '.' })).toBeNull();
  });
});

describe('parseTemplate', () => {
  const valid = { name: 'acme-projects', version: 1, kind: 'project', fields: { projectId: { path: 'code' } } };

  it('fills the input defaults', () => {
    expect(parseTemplate(valid).input).toEqual({ format: 'csv', delimiter: ',' });
  });

  it('refuses an expression with two sources, an unknown kind and a date format without a year, naming each', () => {
    let failure: unknown;
    try {
      parseTemplate({ ...valid, kind: 'invoice', fields: { projectId: { path: 'a', const: 'b' }, startDate: { path: 'd', date: 'DD.MM' } } });
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(TemplateInvalidError);
    const fields = (failure as TemplateInvalidError).fields.map((f) => f.field);
    expect(fields).toContain('kind');
    expect(fields).toContain('fields.projectId');
  });

  it('refuses a date format that cannot be read', () => {
    expect(() => parseTemplate({ ...valid, fields: { startDate: { path: 'd', date: 'DD.MM' } } })).toThrow(/fields\.startDate\.date: date format "DD\.MM" must hold YYYY/);
  });

  it('resolves source ids, saying which template failed', () => {
    const resolver = templateResolver(parseTemplate({ name: 'harvest', version: 3, kind: 'time', source: 'harvest', fields: { projectId: { path: 'project.id', lookup: { 1: 'p-1' } } } }));
    expect(resolver.label).toBe('template harvest v3');
    expect(resolver.resolve('projectId', { project: { id: 1 } })).toEqual({ value: 'p-1' });
    expect(resolver.resolve('projectId', { project: null })).toEqual({ error: '"project.id" is null in the source entry' });
    expect(resolver.resolve('taskId', {})).toEqual({});
  });
});
