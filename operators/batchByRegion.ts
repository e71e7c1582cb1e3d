import { asyncScheduler, debounceTime, defer, finalize, groupBy, map, mergeMap, startWith, Subject } from 'rxjs';
import type { OperatorFunction, SchedulerLike } from 'rxjs';
import { batchByCountOrTime } from './batchByCountOrTime.ts';

/** The batch window of one region. A field left out falls back to the top-level option of the same name. */
export interface RegionWindow {
  /** This region's batch leaves as soon as it holds this many items. A positive integer. */
  maxCount?: number;
  /** This region's batch leaves at the latest this many milliseconds after its first item arrived. At least 0. */
  maxWaitMs?: number;
  /** This region's batch leaves as soon as the `sizeOf` of its items adds up to this. > 0; Infinity for no limit. */
  maxBytes?: number;
}

export interface BatchByRegionOptions<T> {
  /** A region's batch leaves as soon as it holds this many items. A positive integer. */
  maxCount: number;
  /** A region's batch leaves at the latest this many milliseconds after its first item arrived. At least 0. */
  maxWaitMs: number;
  /**
   * A region's batch leaves as soon as the `sizeOf` of its items adds up to this. An item that
   * would push the batch over it goes to the region's next batch instead. Requires `sizeOf`.
   * @default Infinity
   */
  maxBytes?: number;
  /** Returns the size one item adds to its region's batch, for example its encoded length in bytes. */
  sizeOf?: (item: T) => number;
  /**
   * Batch windows for single regions, keyed by region. A region named here uses its own
   * `maxCount`, `maxWaitMs` and `maxBytes`, each falling back to the top-level one when left out.
   * Every other region uses the top-level ones.
   * @default {}
   */
  regions?: Readonly<Record<string, RegionWindow>>;
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

const regionWindowFields: readonly string[] = ['maxCount', 'maxWaitMs', 'maxBytes'] satisfies (keyof RegionWindow)[];

/**
 * Batches items per region, each region on its own count, bytes and clock, with optional windows per region.
 *
 * Each region has its own ERP endpoint and company, so a batch must never mix
 * regions. One shared batch split afterwards would also tie every region to the
 * busiest one's rhythm. Here each region is its own group (`groupBy`) with its own
 * `batchByCountOrTime`, and all groups are merged into one output. A busy region
 * fills its batches by count, or by bytes when `maxBytes` and `sizeOf` are given. A
 * quiet region's lone item leaves on its own timer, `maxWaitMs` after it arrived,
 * however busy the others are. Regions differ in what their endpoint takes and how
 * long their users may wait, so `regions` gives a region its own `maxCount`,
 * `maxWaitMs` or `maxBytes`, each falling back to the top-level value; every region
 * not named there uses the top-level ones. Items of one region stay in order.
 * Groups must not pile up for regions that have gone quiet: a region's group ends
 * after `idleMs` without an item, and its partial batch is flushed when it ends. If
 * `idleMs` is shorter than a region's `maxWaitMs`, a partial batch can leave after
 * `idleMs` of silence.
 *
 * ```
 * source:  -ax-b-c-d-e-f-g-----------|      x: region US; all others: region EU
 *          batchByRegion(regionOf, { maxCount: 3, maxWaitMs: 9, regions: { US: { maxWaitMs: 3 } } })
 * output:  -----XA-----B----------G--|
 *
 * A = EU [a, b, c] and B = EU [d, e, f] leave full; X = US [x] leaves 3 ms after x, on
 * US's own maxWaitMs; G = EU [g] leaves 9 ms after g, on the top-level maxWaitMs
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { of } from 'rxjs';
 * import { batchByRegion } from '../operators/batchByRegion.ts';
 *
 * of(
 *   { region: 'eu', id: 1, bytes: 600 },
 *   { region: 'us', id: 2, bytes: 100 },
 *   { region: 'eu', id: 3, bytes: 600 },
 *   { region: 'us', id: 4, bytes: 100 },
 *   { region: 'eu', id: 5, bytes: 100 },
 * )
 *   .pipe(
 *     batchByRegion((entry) => entry.region, {
 *       maxCount: 100,
 *       maxWaitMs: 500,
 *       maxBytes: 1_000,
 *       sizeOf: (entry) => entry.bytes,
 *       regions: { us: { maxCount: 2 } },
 *     }),
 *   )
 *   .subscribe(({ region, items }) => console.log(region, items.map((entry) => entry.id)));
 *
 * // Output:
 * // eu [ 1 ]      (entry 3 would have pushed it over 1000 bytes)
 * // us [ 2, 4 ]   (full at us's own maxCount)
 * // eu [ 3, 5 ]   (flushed on completion)
 * ```
 *
 * @param regionOf Returns the region an item belongs to.
 * @param options `maxCount`, `maxWaitMs` and optional `maxBytes` with `sizeOf` for each
 * region's batches, `regions` with the windows of regions that differ from those,
 * `idleMs` after which a silent region's group ends, and the `scheduler` for all timers.
 * @returns A function that returns an Observable of non-empty `{ region, items }` batches,
 * each region's items in source order.
 * @throws {RangeError} When an option is out of range: the top-level windows as named by
 * `batchByCountOrTime`, `idleMs` and the fields of `regions` as named by `batchByRegion`.
 * @throws {TypeError} When `maxBytes` (top-level or a region's) is given without `sizeOf`,
 * or an entry of `regions` is not an object of `maxCount`, `maxWaitMs` and `maxBytes`.
 */
export function batchByRegion<T>(
  regionOf: (item: T) => string,
  options: BatchByRegionOptions<T>,
): OperatorFunction<T, RegionBatch<T>> {
  const { maxCount, maxWaitMs, maxBytes, sizeOf, regions = {}, idleMs = 60_000, scheduler = asyncScheduler } = options;
  if (!(idleMs > 0) || !Number.isFinite(idleMs)) {
    throw new RangeError(`batchByRegion: options.idleMs must be a finite number > 0, got ${idleMs}`);
  }
  // Built once, and so validated once; every group gets its own subscription to its region's batcher.
  const defaultBatcher = batchByCountOrTime<T>({ maxCount, maxWaitMs, maxBytes, sizeOf, scheduler });
  // A Map rather than a lookup in `regions`: a region named like an Object.prototype key gets the defaults.
  const regionBatchers = new Map<string, OperatorFunction<T, T[]>>();
  for (const [region, window] of Object.entries(regions)) {
    const name = `batchByRegion: options.regions.${region}`;
    checkRegionWindow(name, window, sizeOf !== undefined);
    regionBatchers.set(
      region,
      batchByCountOrTime<T>({
        maxCount: window.maxCount ?? maxCount,
        maxWaitMs: window.maxWaitMs ?? maxWaitMs,
        maxBytes: window.maxBytes ?? maxBytes,
        sizeOf,
        scheduler,
      }),
    );
  }

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
        mergeMap((group) =>
          group.pipe(
            regionBatchers.get(group.key) ?? defaultBatcher,
            map((items) => ({ region: group.key, items })),
          ),
        ),
        finalize(() => arrivals.clear()),
      );
    });
}

/**
 * Checks one entry of `options.regions` with the rules of `batchByCountOrTime`, so that the
 * error names the region. The fields it leaves out are the top-level ones, checked already.
 */
function checkRegionWindow(name: string, window: RegionWindow, hasSizeOf: boolean): void {
  if (typeof window !== 'object' || window === null) {
    throw new TypeError(`${name} must be an object of maxCount, maxWaitMs and maxBytes, got ${String(window)}`);
  }
  for (const field of Object.keys(window)) {
    if (!regionWindowFields.includes(field)) {
      throw new TypeError(`${name}.${field} is not a per-region option (maxCount, maxWaitMs, maxBytes)`);
    }
  }
  const { maxCount, maxWaitMs, maxBytes } = window;
  if (maxCount !== undefined && (!Number.isInteger(maxCount) || maxCount < 1)) {
    throw new RangeError(`${name}.maxCount must be a positive integer, got ${maxCount}`);
  }
  if (maxWaitMs !== undefined && (!Number.isFinite(maxWaitMs) || maxWaitMs < 0)) {
    throw new RangeError(`${name}.maxWaitMs must be a finite number >= 0, got ${maxWaitMs}`);
  }
  if (maxBytes !== undefined && (typeof maxBytes !== 'number' || Number.isNaN(maxBytes) || maxBytes <= 0)) {
    throw new RangeError(`${name}.maxBytes must be a number > 0, got ${maxBytes}`);
  }
  if (maxBytes !== undefined && maxBytes !== Infinity && !hasSizeOf) {
    throw new TypeError(`${name}.maxBytes needs options.sizeOf to measure items`);
  }
}
