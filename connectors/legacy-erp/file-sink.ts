// The legacy ERP takes files, not calls: each posting becomes a CSV batch with
// a manifest (record count, control totals per currency, sha256 of the CSV)
// in one directory, which the legacy system collects; an `<batch>.ack` file
// appearing next to them marks the batch accepted.
//
// Writes are atomic (a temp file, flushed, then renamed) and the manifest is
// written last: it is the commit marker, and a CSV without one was never
// handed over (it is removed at start). A journal in the directory remembers
// every externalId written, so a retried posting answers `duplicate` with the
// same documentId instead of writing a line twice; at start it is reconciled
// with the manifests, so a crash between manifest and journal loses nothing.
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatMoney, parseMoney } from '../../pipeline/model/money.ts';
import type { ConnectorHealth } from '../connector-spec.ts';
import { formatCsv, parseCsvRecords } from '../csv.ts';

/** Columns of a batch file, in order. */
export const LEGACY_COLUMNS = [
  'documentId', 'externalId', 'kind', 'entryId', 'milestoneId', 'revision', 'projectId', 'customerId',
  'consultantId', 'role', 'workDate', 'hours', 'rate', 'amount', 'currency', 'legalEntity',
] as const;

export const JOURNAL_FILE = '.billstream-legacy-journal.jsonl';
export const MANIFEST_SUFFIX = '.manifest.json';
export const ACK_SUFFIX = '.ack';

export interface ControlTotal {
  currency: string;
  lines: number;
  /** Sum of the line amounts, 2 decimals. */
  amount: string;
  /** Sum of the line hours, 2 decimals (milestones count none). */
  hours: string;
}

export interface LegacyManifest {
  batch: string;
  file: string;
  createdAt: string;
  recordCount: number;
  /** sha256 (hex) of the CSV file's bytes. */
  sha256: string;
  controlTotals: ControlTotal[];
  idempotencyKey: string;
  columns: readonly string[];
}

export interface LegacyPostResult {
  externalId: string;
  documentId: string;
  status: 'created' | 'duplicate';
}

export interface LegacyBatchState {
  batch: string;
  createdAt: string;
  lines: number;
  acceptedAt: string | null;
}

export interface LegacyFileSinkOptions {
  directory: string;
  /** First part of batch names. @default billstream */
  prefix?: string;
  /** A batch unacknowledged for longer makes health() fail. @default 24 h */
  ackTimeoutMs?: number;
  /** @default () => new Date() */
  now?: () => Date;
}

type JournalLine =
  | { batch: string; createdAt: string; lines: Array<{ externalId: string; documentId: string }> }
  | { ack: string; at: string };

export class LegacyLineError extends Error {
  readonly index: number;

  constructor(index: number, reason: string) {
    super(`legacy ERP line ${index}: ${reason}`);
    this.name = 'LegacyLineError';
    this.index = index;
  }
}

/** Control totals of lines per currency, summed exactly in cents and hundredths. */
export function controlTotals(lines: ReadonlyArray<Record<string, unknown>>): ControlTotal[] {
  const totals = new Map<string, { lines: number; amount: bigint; hours: bigint }>();
  for (const line of lines) {
    const currency = String(line.currency);
    const total = totals.get(currency) ?? { lines: 0, amount: 0n, hours: 0n };
    total.lines++;
    total.amount += parseMoney(String(line.amount));
    if (line.hours !== undefined && line.hours !== null && line.hours !== '') total.hours += parseMoney(String(line.hours));
    totals.set(currency, total);
  }
  return [...totals.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([currency, t]) => ({ currency, lines: t.lines, amount: formatMoney(t.amount), hours: formatMoney(t.hours) }));
}

export class LegacyErpFileSink {
  readonly directory: string;
  readonly #prefix: string;
  readonly #ackTimeoutMs: number;
  readonly #now: () => Date;
  /** externalId → documentId of every line ever written. */
  readonly #written = new Map<string, string>();
  readonly #batches = new Map<string, LegacyBatchState>();
  #queue: Promise<unknown> = Promise.resolve();
  #started = false;

  constructor(options: LegacyFileSinkOptions) {
    this.directory = options.directory;
    this.#prefix = options.prefix ?? 'billstream';
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 24 * 3_600_000;
    this.#now = options.now ?? (() => new Date());
  }

  /** Creates the directory, reads the journal and reconciles it with the manifests there. */
  async start(): Promise<void> {
    if (this.#started) return;
    await mkdir(this.directory, { recursive: true });
    const journal = await readFile(join(this.directory, JOURNAL_FILE), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    for (const text of journal.split('\n')) {
      if (text.trim() === '') continue;
      let line: JournalLine;
      try {
        line = JSON.parse(text) as JournalLine;
      } catch {
        continue; // A line torn by a crash mid-append; the manifest reconciliation below restores it.
      }
      if ('ack' in line) {
        const state = this.#batches.get(line.ack);
        if (state) state.acceptedAt = line.at;
      } else {
        this.#remember(line.batch, line.createdAt, line.lines);
      }
    }
    const files = await readdir(this.directory);
    for (const file of files) {
      if (file.endsWith(MANIFEST_SUFFIX)) {
        const batch = file.slice(0, -MANIFEST_SUFFIX.length);
        if (this.#batches.has(batch)) continue;
        const manifest = JSON.parse(await readFile(join(this.directory, file), 'utf8')) as LegacyManifest;
        const rows = parseCsvRecords(await readFile(join(this.directory, manifest.file), 'utf8')).records;
        const lines = rows.map((r) => ({ externalId: r.values.externalId ?? '', documentId: r.values.documentId ?? '' }));
        await this.#appendJournal({ batch, createdAt: manifest.createdAt, lines });
        this.#remember(batch, manifest.createdAt, lines);
      } else if (file.startsWith('.') && file.endsWith('.tmp')) {
        await rm(join(this.directory, file), { force: true });
      }
    }
    for (const file of files) {
      // A batch CSV whose manifest never landed was not handed over; its lines are written again on retry.
      if (file.endsWith('.csv') && !this.#batches.has(file.slice(0, -4))) await rm(join(this.directory, file), { force: true });
    }
    this.#started = true;
    await this.pollAcknowledgements();
  }

  /** The documentId a written line got, if it was written. */
  documentIdOf(externalId: string): string | undefined {
    return this.#written.get(externalId);
  }

  /**
   * Writes the lines not written before as one batch (CSV, then manifest) and
   * answers every line with its documentId `legacy:<batch>:<line>`.
   * Postings are written one at a time.
   *
   * @throws LegacyLineError for a line without externalId, kind, amount or currency.
   */
  write(lines: ReadonlyArray<Record<string, unknown>>, idempotencyKey: string): Promise<LegacyPostResult[]> {
    const run = this.#queue.then(() => this.#write(lines, idempotencyKey));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #write(lines: ReadonlyArray<Record<string, unknown>>, idempotencyKey: string): Promise<LegacyPostResult[]> {
    if (!this.#started) throw new Error('the legacy ERP file sink is used before start()');
    lines.forEach((line, i) => {
      for (const field of ['externalId', 'kind', 'amount', 'currency'] as const) {
        if (typeof line[field] !== 'string' || line[field] === '') throw new LegacyLineError(i, `has no ${field}`);
      }
    });
    const fresh: Array<Record<string, unknown>> = [];
    const seen = new Set<string>();
    for (const line of lines) {
      const id = String(line.externalId);
      if (!this.#written.has(id) && !seen.has(id)) {
        fresh.push(line);
        seen.add(id);
      }
    }
    const created = new Set<string>();
    if (fresh.length > 0) {
      const createdAt = this.#now();
      const stamp = createdAt.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
      const digest = createHash('sha256').update(fresh.map((l) => String(l.externalId)).join('\n')).digest('hex').slice(0, 8);
      const batch = `${this.#prefix}-${stamp}-${digest}`;
      const documented: Array<Record<string, unknown>> = fresh.map((line, i) => ({ ...line, documentId: `legacy:${batch}:${i + 1}` }));
      const csv = formatCsv(LEGACY_COLUMNS, documented.map((line) => LEGACY_COLUMNS.map((c) => line[c] as string | number | undefined)));
      const manifest: LegacyManifest = {
        batch,
        file: `${batch}.csv`,
        createdAt: createdAt.toISOString(),
        recordCount: documented.length,
        sha256: createHash('sha256').update(csv).digest('hex'),
        controlTotals: controlTotals(documented),
        idempotencyKey,
        columns: LEGACY_COLUMNS,
      };
      await this.#atomicWrite(`${batch}.csv`, csv);
      await this.#atomicWrite(`${batch}${MANIFEST_SUFFIX}`, `${JSON.stringify(manifest, null, 2)}\n`);
      const journal = documented.map((l) => ({ externalId: String(l.externalId), documentId: String(l.documentId) }));
      await this.#appendJournal({ batch, createdAt: manifest.createdAt, lines: journal });
      this.#remember(batch, manifest.createdAt, journal);
      for (const l of journal) created.add(l.externalId);
    }
    return lines.map((line) => {
      const externalId = String(line.externalId);
      return { externalId, documentId: this.#written.get(externalId) as string, status: created.has(externalId) ? 'created' : 'duplicate' };
    });
  }

  /** Marks batches whose `<batch>.ack` has appeared as accepted; returns the newly accepted ones. */
  async pollAcknowledgements(): Promise<string[]> {
    const accepted: string[] = [];
    for (const state of this.#batches.values()) {
      if (state.acceptedAt !== null) continue;
      const ack = await stat(join(this.directory, `${state.batch}${ACK_SUFFIX}`)).catch(() => null);
      if (!ack) continue;
      state.acceptedAt = ack.mtime.toISOString();
      await this.#appendJournal({ ack: state.batch, at: state.acceptedAt });
      accepted.push(state.batch);
    }
    return accepted;
  }

  batches(): LegacyBatchState[] {
    return [...this.#batches.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
  }

  health(): ConnectorHealth {
    if (!this.#started) return { ok: false, detail: 'legacy ERP file sink not started' };
    const waiting = this.batches().filter((b) => b.acceptedAt === null);
    const oldest = waiting[0];
    if (oldest && this.#now().getTime() - Date.parse(oldest.createdAt) > this.#ackTimeoutMs) {
      return { ok: false, detail: `batch ${oldest.batch} in ${this.directory} is unacknowledged since ${oldest.createdAt} (no ${oldest.batch}${ACK_SUFFIX})` };
    }
    return { ok: true, detail: `${this.#batches.size} batches in ${this.directory}, ${waiting.length} awaiting acknowledgement` };
  }

  #remember(batch: string, createdAt: string, lines: Array<{ externalId: string; documentId: string }>): void {
    for (const l of lines) this.#written.set(l.externalId, l.documentId);
    if (!this.#batches.has(batch)) this.#batches.set(batch, { batch, createdAt, lines: lines.length, acceptedAt: null });
  }

  async #atomicWrite(file: string, content: string): Promise<void> {
    const temp = join(this.directory, `.${file}.tmp`);
    await writeFile(temp, content, { flush: true });
    await rename(temp, join(this.directory, file));
  }

  async #appendJournal(line: JournalLine): Promise<void> {
    await appendFile(join(this.directory, JOURNAL_FILE), `${JSON.stringify(line)}\n`, { flush: true });
  }
}
