import { asyncScheduler, debounceTime, defer, finalize, groupBy, map, mergeMap, startWith, Subject } from 'rxjs';
import type { OperatorFunction, SchedulerLike } from 'rxjs';
import { batchByCountOrTime } from './batchByCountOrTime.ts';

export interface BatchByRegionOptions {
  /** A region's batch leaves as soon as it holds this many items. A positive integer. */
  maxCount: number;
  /** A region's batch leaves at the latest this many milliseconds after its first item arrived. */
  maxWaitMs: number;
  /**
   * A region that has had no item for this long ends its group, which flushes its
   * partial batch and frees its state. Its next item starts a fresh group. A positive number.
   * @default 60000
   */
  idleMs?: number;
  /** @default asyncScheduler */
  scheduler?: SchedulerLike;
}

/** One region's batch. */
export interface RegionBatch<T> {
  region: string;
  items: T[];
}

/**
 * Batches items per region, each region on its own count and clock.
 *
 * Each region has its own ERP endpoint and company, so a batch must never mix
 * regions. One shared batch split afterwards would also tie every region to the
 * busiest one's rhythm. Here each region is its own group (`groupBy`) with its own
 * `batchByCountOrTime`, and all groups are merged into one output. A busy region
 * fills its batches by count. A quiet region's lone item leaves on its own timer,
 * `maxWaitMs` after it arrived, however busy the others are. Items of one region
 * stay in order. Groups must not pile up for regions that have gone quiet: a
 * region's group ends after `idleMs` without an item, and its partial batch is
 * flushed when it ends. If `idleMs` is shorter than `maxWaitMs`, a partial batch
 * can leave after `idleMs` of silence.
 *
 * ```
 * source:  -ax-b-c-d-e-f-g-----------|      x: region US; all others: region EU
 *          batchByRegion(regionOf, { maxCount: 3, maxWaitMs: 9 })
 * output:  ------A----XB----------G--|
 *
 * A = EU [a, b, c] and B = EU [d, e, f] leave full; X = US [x] leaves 9 ms after x,
 * between two EU batches; G = EU [g] leaves 9 ms after g
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { of } from 'rxjs';
 * import { batchByRegion } from '../operators/batchByRegion.ts';
 *
 * of({ region: 'eu', id: 1 }, { region: 'us', id: 2 }, { region: 'eu', id: 3 })
 *   .pipe(batchByRegion((entry) => entry.region, { maxCount: 2, maxWaitMs: 500 }))
 *   .subscribe(({ region, items }) => console.log(region, items.map((entry) => entry.id)));
 *
 * // Output:
 * // eu [ 1, 3 ]
 * // us [ 2 ]      (flushed on completion)
 * ```
 *
 * @param regionOf Returns the region an item belongs to.
 * @param options `maxCount` and `maxWaitMs` for each region's batches, `idleMs` after
 * which a silent region's group ends, and the `scheduler` for all timers.
 * @returns A function that returns an Observable of `{ region, items }` batches.
 * @throws {RangeError} When an option is out of range (see `batchByCountOrTime`).
 */
export function batchByRegion<T>(
  regionOf: (item: T) => string,
  options: BatchByRegionOptions,
): OperatorFunction<T, RegionBatch<T>> {
  const { maxCount, maxWaitMs, idleMs = 60_000, scheduler = asyncScheduler } = options;
  if (!(idleMs > 0) || !Number.isFinite(idleMs)) {
    throw new RangeError(`batchByRegion: options.idleMs must be a finite number > 0, got ${idleMs}`);
  }
  // Built once, and so validated once; every group gets its own subscription to it.
  const batchRegion = batchByCountOrTime<T>({ maxCount, maxWaitMs, scheduler });

  return (source) =>
    defer(() => {
      // Why not `duration: (group) => group.pipe(debounceTime(idleMs))`: rxjs 7's groupBy
      // counts a subscription to the group as a consumer, so after an unsubscribe from
      // downstream the source would stay subscribed until every group had gone idle, and
      // forever while items keep arriving. The idle clock listens to its own signal instead.
      const arrivals = new Map<string, Subject<void>>();
      return source.pipe(
        groupBy(
          (item) => {
            const region = regionOf(item);
            arrivals.get(region)?.next();
            return region;
          },
          {
            duration: (group) => {
              const arrived = new Subject<void>();
              arrivals.set(group.key, arrived);
              return arrived.pipe(
                startWith(undefined),
                debounceTime(idleMs, scheduler),
                finalize(() => {
                  if (arrivals.get(group.key) === arrived) arrivals.delete(group.key);
                }),
              );
            },
          },
        ),
        mergeMap((group) => group.pipe(batchRegion, map((items) => ({ region: group.key, items })))),
        finalize(() => arrivals.clear()),
      );
    });
}
