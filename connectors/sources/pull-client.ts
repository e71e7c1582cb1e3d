// The pull loop every time-capture source shares. A run reads pages from the
// source (from the watermark of the last complete run, or over a backfill's
// date range), maps each native entry, publishes the records, and only then
// writes the page's position to the cursor in KV. Killed anywhere, the next
// client resumes at the first page whose records were not all acknowledged;
// pages published twice are harmless, their idempotency keys repeat.
import type { ConnectorHealth, PublishRecord } from '../connector-spec.ts';
import { isConnectorBadRequest, isConnectorStopped } from '../connector-errors.ts';
import type { ConnectorHttpClient } from '../http-client.ts';
import { fingerprint, type IdMapping, type MapContext, type MapOutcome, type SourceName } from './mapping.ts';
import { type CursorState, type CursorStore, type PullRange, type PullRunState, type RevisionLedger } from './cursor-store.ts';

export interface PullPage<N> {
  entries: N[];
  /** Where the page after this one is; null when the run is complete. */
  next: string | null;
  /** Entries in the whole run, when the source says (for progress and ETA). */
  total?: number;
}

export interface RunStart {
  /** Update time every earlier entry was published up to; null on the very first run. */
  watermark: string | null;
  /** A backfill's date range; absent for an incremental run. */
  range?: PullRange;
  /** When this run started (ISO instant). */
  startedAt: string;
}

/** What a source contributes to the pull loop: where to start, how to read a page, how to map an entry. */
export interface SourcePuller<N> {
  readonly source: SourceName;
  /** The first position (a request path) of a run. */
  first(run: RunStart): string;
  fetch(http: ConnectorHttpClient, position: string): Promise<PullPage<N>>;
  /** The update time an entry moves the watermark to; null when the source keeps none. */
  watermarkOf(entry: N): string | null;
  /** The watermark of a completed run whose entries carry none (e.g. the run's start, less an overlap). */
  runWatermark(run: RunStart): string | null;
  /** True when entries need the revision ledger (no update time of their own). */
  readonly usesLedger: boolean;
  sourceIdOf(entry: N): string;
  map(entry: N, ctx: MapContext): MapOutcome;
}

export interface PullProgress {
  source: SourceName;
  pages: number;
  entries: number;
  /** Entries a resumed run had read before this pass began (0 for a fresh run): they do not count for the rate. */
  entriesBefore: number;
  published: number;
  total?: number;
  startedAt: string;
}

export interface PullRunResult extends PullProgress {
  /** True when the run read through to its end; false when stop() interrupted it. */
  complete: boolean;
  resumed: boolean;
  skipped: number;
  invalid: Array<{ sourceId: string; errors: Array<{ field: string; reason: string }> }>;
  watermark: string | null;
}

export interface PullClientOptions<N> {
  puller: SourcePuller<N>;
  http: ConnectorHttpClient;
  cursors: CursorStore;
  /** Required when the puller uses the ledger. */
  ledger?: RevisionLedger;
  /** The id mapping in force now; asked per page, so an edited template applies from the next page on. */
  ids: () => IdMapping;
  publish: PublishRecord;
  /** The KV key of this pull's cursor. */
  cursorKey: string;
  /** Set for a backfill. */
  range?: PullRange;
  /** Called after each page's records are published and its position saved. */
  onPage?: (progress: PullProgress) => void;
  onOutcome?: (outcome: MapOutcome) => void;
  /** @default () => new Date() */
  now?: () => Date;
}

/** One pull of one source; `run()` reads until caught up, `stop()` interrupts it between (or inside) requests. */
export class PullClient<N> {
  readonly #o: PullClientOptions<N>;
  #stopped = false;
  #running: Promise<PullRunResult> | null = null;
  #last: { at: number; result?: PullRunResult; error?: string } | null = null;

  constructor(options: PullClientOptions<N>) {
    if (options.puller.usesLedger && !options.ledger) {
      throw new TypeError(`the ${options.puller.source} pull needs a revision ledger: its entries carry no update time`);
    }
    this.#o = options;
  }

  /** Runs one pass (resuming an interrupted one); concurrent calls share it. */
  run(): Promise<PullRunResult> {
    this.#stopped = false;
    this.#o.http.restart();
    this.#running ??= this.#run().then(
      (result) => {
        this.#last = { at: Date.now(), result };
        return result;
      },
      (err: unknown) => {
        this.#last = { at: Date.now(), error: err instanceof Error ? err.message : String(err) };
        throw err;
      },
    ).finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  /** Interrupts the run: requests in flight are aborted, the cursor keeps the last page fully published. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#o.http.stop();
    await this.#running?.catch(() => undefined);
  }

  health(): ConnectorHealth {
    if (this.#last?.error) return { ok: false, detail: `${this.#o.puller.source}: last pull failed: ${this.#last.error}` };
    const http = this.#o.http.health();
    if (!http.ok) return http;
    if (this.#last?.result) {
      const r = this.#last.result;
      return { ok: true, detail: `${r.source}: last pull at ${new Date(this.#last.at).toISOString()} published ${r.published} of ${r.entries} entries` };
    }
    return { ok: true, detail: `${this.#o.puller.source}: no pull yet` };
  }

  async #run(): Promise<PullRunResult> {
    const { puller, cursors, cursorKey } = this.#o;
    const now = this.#o.now ?? (() => new Date());
    let cursor = await cursors.load(cursorKey);
    const resumed = cursor.run !== null && sameRange(cursor.run.range, this.#o.range);
    let run: PullRunState;
    if (resumed && cursor.run) {
      run = cursor.run;
    } else {
      const startedAt = now().toISOString();
      const first = puller.first({ watermark: cursor.watermark, range: this.#o.range, startedAt });
      run = { startedAt, first, position: first, high: null, pages: 0, entries: 0, published: 0, ...(this.#o.range ? { range: this.#o.range } : {}) };
      cursor = { ...cursor, run };
      await cursors.save(cursorKey, cursor);
    }
    const result: PullRunResult = {
      source: puller.source, pages: run.pages, entries: run.entries, entriesBefore: run.entries, published: run.published, startedAt: run.startedAt,
      complete: false, resumed, skipped: 0, invalid: [], watermark: cursor.watermark,
      ...(run.total !== undefined ? { total: run.total } : {}),
    };

    let position: string | null = run.position;
    let restartedStale = false;
    while (position !== null) {
      if (this.#stopped) return result;
      let page: PullPage<N>;
      try {
        page = await puller.fetch(this.#o.http, position);
      } catch (err) {
        if (isConnectorStopped(err)) return result;
        // A stored position (a cursor link) the source no longer honours: read the run again from its start.
        if (resumed && !restartedStale && position !== run.first && isConnectorBadRequest(err)) {
          restartedStale = true;
          position = run.first;
          continue;
        }
        throw err;
      }
      const ids = this.#o.ids();
      for (const entry of page.entries) {
        if (this.#stopped) return result;
        const outcome = await this.#map(entry, ids, run.startedAt);
        this.#o.onOutcome?.(outcome);
        if (outcome.kind === 'record') {
          await this.#o.publish('time', outcome.record as Record<string, unknown>, outcome.msgId);
          run.published++;
        } else if (outcome.kind === 'skipped') {
          result.skipped++;
        } else {
          result.invalid.push({ sourceId: outcome.sourceId, errors: outcome.errors });
        }
        const mark = puller.watermarkOf(entry);
        if (mark !== null && (run.high === null || Date.parse(mark) > Date.parse(run.high))) run.high = mark;
      }
      run.pages++;
      run.entries += page.entries.length;
      if (page.total !== undefined) run.total = page.total;
      position = page.next;
      if (position === null) {
        const watermark = run.high ?? puller.runWatermark({ watermark: cursor.watermark, range: run.range, startedAt: run.startedAt }) ?? cursor.watermark;
        // A backfill reads the past: it never moves the incremental watermark back.
        cursor = { ...cursor, watermark: this.#o.range ? cursor.watermark : laterOf(cursor.watermark, watermark), run: null, lastCompletedAt: now().toISOString() };
        result.complete = true;
      } else {
        run.position = position;
        cursor = { ...cursor, run };
      }
      await this.#o.cursors.save(this.#o.cursorKey, cursor);
      Object.assign(result, { pages: run.pages, entries: run.entries, published: run.published, watermark: cursor.watermark });
      if (run.total !== undefined) result.total = run.total;
      this.#o.onPage?.({
        source: puller.source, pages: run.pages, entries: run.entries, entriesBefore: result.entriesBefore, published: run.published, startedAt: run.startedAt,
        ...(run.total !== undefined ? { total: run.total } : {}),
      });
    }
    return result;
  }

  async #map(entry: N, ids: IdMapping, observedAt: string): Promise<MapOutcome> {
    const { puller, ledger } = this.#o;
    if (!puller.usesLedger || !ledger) return puller.map(entry, { ids });
    const revision = await ledger.revisionFor(puller.sourceIdOf(entry), fingerprint(entry), observedAt);
    return puller.map(entry, { ids, revision });
  }
}

function sameRange(a: PullRange | undefined, b: PullRange | undefined): boolean {
  return (a?.from ?? null) === (b?.from ?? null) && (a?.to ?? null) === (b?.to ?? null);
}

function laterOf(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return Date.parse(b) > Date.parse(a) ? b : a;
}

export type { CursorState };
