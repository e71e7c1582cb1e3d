// A strict reader of the Prometheus text exposition format (0.0.4), enough to
// prove /metrics is valid for a scraper: every line is a comment, a HELP or TYPE
// line, or a sample `name{label="value",...} value`; every sample belongs to a
// family with a TYPE; values are numbers (or +Inf, -Inf, NaN).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
  /** The value of the one sample with this name and exactly these labels. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Sum over samples of a name whose labels include the given ones. */
  sum(name: string, labels?: Record<string, string>): number;
}

export class ExpositionFormatError extends Error {
  constructor(line: number, text: string, reason: string) {
    super(`line ${line} ${JSON.stringify(text)}: ${reason}`);
    this.name = 'ExpositionFormatError';
  }
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+(-?\\d+))?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created'];

function parseValue(text: string): number | null {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  return /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : null;
}

function parseLabels(text: string, line: number, raw: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const match = LABEL.exec(rest);
    if (!match) throw new ExpositionFormatError(line, raw, `bad label set near ${JSON.stringify(rest)}`);
    labels[match[1] as string] = (match[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    rest = rest.slice(match[0].length);
  }
  return labels;
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of SUFFIXES) {
    if (name.endsWith(suffix) && types.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return undefined;
}

function matches(sample: Sample, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([k, v]) => sample.labels[k] === v);
}

/** @throws {ExpositionFormatError} naming the first line that is not valid exposition text */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const typeMatch = new RegExp(`^# TYPE (${NAME}) (\\S+)$`).exec(raw);
      if (typeMatch) {
        if (!TYPES.has(typeMatch[2] as string)) throw new ExpositionFormatError(line, raw, `unknown type ${typeMatch[2]}`);
        types.set(typeMatch[1] as string, typeMatch[2] as string);
        return;
      }
      if (raw.startsWith('# HELP ') && !new RegExp(`^# HELP ${NAME}( .*)?$`).test(raw)) throw new ExpositionFormatError(line, raw, 'bad HELP line');
      return;
    }
    const match = SAMPLE.exec(raw);
    if (!match) throw new ExpositionFormatError(line, raw, 'not a sample line');
    const name = match[1] as string;
    if (familyOf(name, types) === undefined) throw new ExpositionFormatError(line, raw, `sample of ${name} before (or without) its TYPE line`);
    const value = parseValue(match[3] as string);
    if (value === null) throw new ExpositionFormatError(line, raw, `value ${match[3]} is not a number`);
    samples.push({ name, labels: match[2] ? parseLabels(match[2], line, raw) : {}, value });
  });
  return {
    types,
    samples,
    value(name, labels = {}) {
      const found = samples.filter((s) => s.name === name && matches(s, labels) && Object.keys(s.labels).length === Object.keys(labels).length);
      return found.length === 1 ? found[0]?.value : undefined;
    },
    sum(name, labels = {}) {
      return samples.filter((s) => s.name === name && matches(s, labels)).reduce((total, s) => total + s.value, 0);
    },
  };
}
