import { defer, filter, finalize } from 'rxjs';
import type { MonoTypeOperatorFunction } from 'rxjs';

export interface LatestRevisionOnlyOptions<T> {
  /**
   * How many keys have their highest revision remembered. When a new key would exceed
   * it, the key seen least recently is forgotten. A positive integer.
   */
  capacity: number;
  /** Receives each dropped item (its revision was not newer), so the caller can ack it. */
  onStale?: (item: T) => void;
}

/**
 * Drops items whose revision is not higher than the highest already seen for their key.
 *
 * A record can be revised while an older revision is still on its way, for example
 * after a redelivery or when a producer retries. Once revision 3 of an entry has
 * passed, revisions 3, 2 and 1 are stale and must not undo it. The highest revision
 * is kept per key in a bounded least-recently-seen window, so memory stays flat. A
 * key that has fallen out of the window starts afresh. That is acceptable because
 * this filter only saves work. The authoritative check is the revision comparison
 * in the actor's transaction. Every dropped item goes to `onStale` so the caller
 * can ack it.
 *
 * ```
 * source:  --a1--a3--b1--a2--a4--b1--|
 *          latestRevisionOnly(key, revision, { capacity: 100 })
 * output:  --a1--a3--b1------a4------|
 *
 * a2 is older than a3 and the second b1 is not newer than b1: both go to onStale
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { of } from 'rxjs';
 * import { latestRevisionOnly } from '../operators/latestRevisionOnly.ts';
 *
 * of({ id: 'e1', rev: 1 }, { id: 'e1', rev: 3 }, { id: 'e1', rev: 2 })
 *   .pipe(latestRevisionOnly((e) => e.id, (e) => e.rev, {
 *     capacity: 10_000,
 *     onStale: (e) => console.log(`stale ${e.id}@${e.rev}`),
 *   }))
 *   .subscribe((e) => console.log(`${e.id}@${e.rev}`));
 *
 * // Output:
 * // e1@1
 * // e1@3
 * // stale e1@2
 * ```
 *
 * @param keyOf Returns the identity of the record that is being revised.
 * @param revisionOf Returns the item's revision. Higher is newer. Must not be NaN.
 * @param options `capacity` (how many keys are remembered) and `onStale`.
 * @returns A function that returns an Observable of the items that are newer than anything
 * seen for their key. It errors with a `TypeError` when `revisionOf` returns NaN.
 * @throws {RangeError} When `options.capacity` is not a positive integer.
 */
export function latestRevisionOnly<T>(
  keyOf: (item: T) => string,
  revisionOf: (item: T) => number,
  options: LatestRevisionOnlyOptions<T>,
): MonoTypeOperatorFunction<T> {
  const { capacity, onStale } = options;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new RangeError(`latestRevisionOnly: options.capacity must be a positive integer, got ${capacity}`);
  }
  return (source) =>
    defer(() => {
      // A Map iterates in insertion order; re-inserting a key on every sighting keeps
      // the least recently seen key first. Eviction reads it through one iterator
      // kept for the subscription, which steps over the holes deleted keys leave
      // in the Map's table once; a fresh `keys()` on each eviction would step over
      // all of them every time (see dedupeByKey).
      const highest = new Map<string, number>();
      let oldestFirst = highest.keys();
      return source.pipe(
        filter((item) => {
          const key = keyOf(item);
          const revision = revisionOf(item);
          if (Number.isNaN(revision)) {
            // NaN compares false both ways, so it would pass now and let every later revision through.
            throw new TypeError(`latestRevisionOnly: revision of key ${key} is NaN`);
          }
          const seen = highest.get(key);
          highest.delete(key);
          if (seen !== undefined && revision <= seen) {
            highest.set(key, seen);
            onStale?.(item);
            return false;
          }
          highest.set(key, revision);
          if (highest.size > capacity) {
            let oldest = oldestFirst.next();
            if (oldest.done) oldest = (oldestFirst = highest.keys()).next();
            if (!oldest.done) highest.delete(oldest.value);
          }
          return true;
        }),
        finalize(() => highest.clear()),
      );
    });
}
