import { describe, expect, it } from 'vitest';
import { CsvFormatError, formatCsv, parseCsvRecords, parseCsvRows } from './csv.ts';

describe('CSV', () => {
  it('reads quoted fields with delimiters, quotes and line breaks, CRLF and a byte-order mark', () => {
    const text = '\uFEFFa,b,c\r\n"x, y","say ""hi""","two\nlines"\r\n,,\r\n';
    expect(parseCsvRows(text)).toEqual([['a', 'b', 'c'], ['x, y', 'say "hi"', 'two\nlines'], ['', '', '']]);
  });

  it('keys rows by header and numbers them by file line', () => {
    const { header, records } = parseCsvRecords('Name;Hours\nKim;7,5\n\nPat;3\n', ';');
    expect(header).toEqual(['Name', 'Hours']);
    expect(records).toEqual([{ line: 2, values: { Name: 'Kim', Hours: '7,5' } }, { line: 3, values: { Name: 'Pat', Hours: '3' } }]);
  });

  it('names the line of a quote never closed, a row too long and a repeated column', () => {
    expect(() => parseCsvRows('a\n"open\n')).toThrow(new CsvFormatError('a quoted field is never closed', { line: 2 }));
    expect(() => parseCsvRecords('a,b\n1,2,3\n')).toThrow(/CSV line 2: the row has 3 fields but the header names 2 columns/);
    expect(() => parseCsvRecords('a,a\n')).toThrow(/names column "a" twice/);
  });

  it('writes what it reads back', () => {
    const rows = [['1', 'lead, "senior"', 'two\nlines'], [2, null, true]] as const;
    const text = formatCsv(['id', 'role', 'note'], rows);
    expect(text).toBe('id,role,note\r\n1,"lead, ""senior""","two\nlines"\r\n2,,true\r\n');
    expect(parseCsvRows(text)).toEqual([['id', 'role', 'note'], ['1', 'lead, "senior"', 'two\nlines'], ['2', '', 'true']]);
  });
});
