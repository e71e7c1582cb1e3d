// RFC 4180 CSV, read and written by the connectors that exchange files: the
// Toggl export, master-data files mapped through templates, and the legacy ERP
// batches. Quoted fields may hold commas, quotes ("") and line breaks; a UTF-8
// byte-order mark (which spreadsheet exports like to add) is dropped.

export class CsvFormatError extends Error {
  /** 1-based line of the file where the problem was found. */
  readonly line: number;

  constructor(message: string, options: { line: number; cause?: unknown }) {
    super(`CSV line ${options.line}: ${message}`, { cause: options.cause });
    this.name = 'CsvFormatError';
    this.line = options.line;
  }
}

export const isCsvFormatError = (err: unknown): err is CsvFormatError => err instanceof CsvFormatError;

/**
 * Splits CSV text into rows of fields.
 *
 * @example parseCsvRows('a,b\n"x, y","say ""hi"""\n') // [['a','b'], ['x, y', 'say "hi"']]
 * @throws CsvFormatError on a quote left open at the end of the text.
 */
export function parseCsvRows(text: string, delimiter = ','): string[][] {
  const input = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let quoteOpenedOn = 0;
  let fieldStarted = false;
  for (let i = 0; i < input.length; i++) {
    const ch = input[i] as string;
    if (quoted) {
      if (ch === '"') {
        if (input[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
      continue;
    }
    if (ch === '"' && !fieldStarted) {
      quoted = true;
      fieldStarted = true;
      quoteOpenedOn = line;
    } else if (ch === delimiter) {
      row.push(field);
      field = '';
      fieldStarted = false;
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && input[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      fieldStarted = false;
      line++;
    } else {
      field += ch;
      fieldStarted = true;
    }
  }
  if (quoted) throw new CsvFormatError('a quoted field is never closed', { line: quoteOpenedOn });
  if (fieldStarted || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  // Blank lines (a trailing newline, spacing in hand-made files) carry no record.
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** One data row keyed by its header, with the 1-based line it came from (the header is line 1). */
export interface CsvRecord {
  line: number;
  values: Record<string, string>;
}

/**
 * Reads CSV with a header row into objects keyed by column name.
 *
 * @throws CsvFormatError when a row has more fields than the header, or a header repeats a name.
 */
export function parseCsvRecords(text: string, delimiter = ','): { header: string[]; records: CsvRecord[] } {
  const rows = parseCsvRows(text, delimiter);
  const [header = [], ...data] = rows;
  const names = header.map((h) => h.trim());
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw new CsvFormatError(`the header names column "${name}" twice`, { line: 1 });
    seen.add(name);
  }
  const records = data.map((fields, index) => {
    const line = index + 2;
    if (fields.length > names.length) {
      throw new CsvFormatError(`the row has ${fields.length} fields but the header names ${names.length} columns`, { line });
    }
    const values: Record<string, string> = {};
    names.forEach((name, i) => {
      values[name] = fields[i] ?? '';
    });
    return { line, values };
  });
  return { header: names, records };
}

/** Quotes a field when it holds the delimiter, a quote or a line break (and only then). */
export function formatCsvField(value: string | number | boolean | null | undefined, delimiter = ','): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  if (text.includes(delimiter) || text.includes('"') || text.includes('\n') || text.includes('\r')) {
    return `"${text.replaceAll('"', '""')}"`;
  }
  return text;
}

/** CSV text of a header and rows, CRLF line ends as RFC 4180 has them. */
export function formatCsv(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null | undefined>>, delimiter = ','): string {
  const lines = [header, ...rows].map((fields) => fields.map((f) => formatCsvField(f, delimiter)).join(delimiter));
  return `${lines.join('\r\n')}\r\n`;
}
