// Where a pull stands, kept in the NATS KV bucket `billstream_cursors` so a
// restarted client resumes where the last one stopped: the watermark of the
// last complete run, and the position inside a run still under way. Next to it
// the revision ledger, which gives entries of sources without an update time
// (Clockify, Kimai, the Toggl CSV) a revision that only moves when their content does.
import type { KV } from '@nats-io/kv';
import { getJson, kvKeyPart, putJson } from '../kv-store.ts';
import { revisionFromInstant } from './mapping.ts';

/** A backfill's date range (inclusive days). */
export interface PullRange {
  from: string;
  to?: string;
}

export interface PullRunState {
  startedAt: string;
  /** The run's first position, to start over from when a stored position has gone stale. */
  first: string;
  /** Where the next page is. */
  position: string;
  /** Highest update time seen in this run: the next watermark once the run completes. */
  high: string | null;
  range?: PullRange;
  pages: number;
  entries: number;
  published: number;
  /** Entries in the whole run, when the source tells. */
  total?: number;
}

export interface CursorState {
  version: 1;
  /** Update time up to which every entry has been published; null before the first complete run. */
  watermark: string | null;
  /** The run under way; null between runs. */
  run: PullRunState | null;
  lastCompletedAt: string | null;
}

export function emptyCursor(): CursorState {
  return { version: 1, watermark: null, run: null, lastCompletedAt: null };
}

export class CursorConflictError extends Error {
  readonly key: string;

  constructor(key: string, options: { cause?: unknown } = {}) {
    super(`cursor ${key} was written by another pull client meanwhile; two clients must not pull one cursor`, options);
    this.name = 'CursorConflictError';
    this.key = key;
  }
}

export const isCursorConflict = (err: unknown): err is CursorConflictError => err instanceof CursorConflictError;

/** Cursors in KV, written compare-and-set so two clients on one cursor notice each other. */
export class CursorStore {
  readonly #kv: KV;
  readonly #revisions = new Map<string, number>();

  constructor(kv: KV) {
    this.#kv = kv;
  }

  async load(key: string): Promise<CursorState> {
    const stored = await getJson<CursorState>(this.#kv, key);
    this.#revisions.set(key, stored?.revision ?? 0);
    return stored?.value ?? emptyCursor();
  }

  /** @throws CursorConflictError when someone else wrote the cursor since this store read or wrote it. */
  async save(key: string, state: CursorState): Promise<void> {
    let revision: number;
    try {
      revision = await putJson(this.#kv, key, state, { previousRevision: this.#revisions.get(key) ?? 0 });
    } catch (err) {
      throw new CursorConflictError(key, { cause: err });
    }
    this.#revisions.set(key, revision);
  }
}

export function cursorKey(source: string, name: string): string {
  return `${kvKeyPart(source)}.cursor.${kvKeyPart(name)}`;
}

interface LedgerEntry {
  fp: string;
  revision: number;
}

/**
 * Revisions for entries whose source keeps no update time: the same content
 * keeps its revision (so re-reading it publishes the same message id and the
 * pipeline sees nothing new), changed content gets a higher one, from the time
 * it was observed.
 */
export class RevisionLedger {
  readonly #kv: KV;
  readonly #source: string;

  constructor(kv: KV, source: string) {
    this.#kv = kv;
    this.#source = source;
  }

  async revisionFor(sourceId: string, fp: string, observedAt: string): Promise<number> {
    const key = `${kvKeyPart(this.#source)}.seen.${kvKeyPart(sourceId)}`;
    for (let tries = 0; ; tries++) {
      const stored = await getJson<LedgerEntry>(this.#kv, key);
      if (stored && stored.value.fp === fp) return stored.value.revision;
      const observed = revisionFromInstant(observedAt) ?? 1;
      const revision = Math.max(observed, (stored?.value.revision ?? 0) + 1);
      try {
        await putJson(this.#kv, key, { fp, revision } satisfies LedgerEntry, { previousRevision: stored?.revision ?? 0 });
        return revision;
      } catch (err) {
        // A webhook and a pull saw the same change at once: read again and agree on the winner's revision.
        if (tries >= 3) throw err;
      }
    }
  }
}
