import { asyncScheduler, Observable } from 'rxjs';
import type { OperatorFunction, SchedulerLike, Subscription } from 'rxjs';

export interface BatchByCountOrTimeOptions<T> {
  /** A batch leaves as soon as it holds this many items. A positive integer. */
  maxCount: number;
  /** A batch leaves at the latest this many milliseconds after its first item arrived. At least 0. */
  maxWaitMs: number;
  /**
   * A batch leaves as soon as the `sizeOf` of its items adds up to this. An item that would push
   * the batch over it goes to the next batch instead. Requires `sizeOf`.
   * @default Infinity
   */
  maxBytes?: number;
  /** Returns the size one item adds to a batch, for example its encoded length in bytes. */
  sizeOf?: (item: T) => number;
  /** @default asyncScheduler */
  scheduler?: SchedulerLike;
}

/**
 * Collects items into arrays that leave when full (count or bytes) or when their first item has waited `maxWaitMs`.
 *
 * Writing to a database or an ERP costs much more per call than per row, so items
 * travel in batches. A batch must not wait long for company either: each item is an
 * unacked message and someone's hours. The clock starts when the first item of a
 * batch arrives, so nothing is emitted and no timer runs while the source is idle.
 * A batch that fills up by count or by bytes leaves at once and stops its clock.
 * When the source completes, the partial batch is flushed before completion. When
 * the source errors, the error passes on and the partial batch is dropped. Its
 * messages were never acked, so they are redelivered.
 *
 * ```
 * source:  -a-b-c-d-------e------------|
 *          batchByCountOrTime({ maxCount: 3, maxWaitMs: 5 })
 * output:  -----X------Y-------Z-------|
 *
 * X = [a, b, c] (full), Y = [d] (5 ms after d), Z = [e] (5 ms after e)
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { interval, take } from 'rxjs';
 * import { batchByCountOrTime } from '../operators/batchByCountOrTime.ts';
 *
 * interval(10)
 *   .pipe(take(5), batchByCountOrTime({ maxCount: 2, maxWaitMs: 1_000 }))
 *   .subscribe((batch) => console.log(batch));
 *
 * // Output:
 * // [0, 1]
 * // [2, 3]
 * // [4]      (flushed on completion)
 * ```
 *
 * @param options `maxCount`, `maxWaitMs`, optional `maxBytes` with `sizeOf`, and the `scheduler`
 * for the wait.
 * @returns A function that returns an Observable of non-empty batches, in source order.
 * @throws {RangeError} When `maxCount`, `maxWaitMs` or `maxBytes` is out of range.
 * @throws {TypeError} When `maxBytes` is given without `sizeOf`.
 */
export function batchByCountOrTime<T>(options: BatchByCountOrTimeOptions<T>): OperatorFunction<T, T[]> {
  const { maxCount, maxWaitMs, maxBytes = Infinity, sizeOf, scheduler = asyncScheduler } = options;
  if (!Number.isInteger(maxCount) || maxCount < 1) {
    throw new RangeError(`batchByCountOrTime: options.maxCount must be a positive integer, got ${maxCount}`);
  }
  if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
    throw new RangeError(`batchByCountOrTime: options.maxWaitMs must be a finite number >= 0, got ${maxWaitMs}`);
  }
  if (Number.isNaN(maxBytes) || maxBytes <= 0) {
    throw new RangeError(`batchByCountOrTime: options.maxBytes must be a number > 0, got ${maxBytes}`);
  }
  if (maxBytes !== Infinity && sizeOf === undefined) {
    throw new TypeError('batchByCountOrTime: options.maxBytes needs options.sizeOf to measure items');
  }
  const measure = maxBytes === Infinity ? undefined : sizeOf;

  return (source) =>
    new Observable<T[]>((subscriber) => {
      let batch: T[] = [];
      let bytes = 0;
      let deadline: Subscription | undefined;

      const flush = (): void => {
        deadline?.unsubscribe();
        deadline = undefined;
        if (batch.length === 0) return;
        const full = batch;
        // Reset before emitting: a downstream that pushes into the source synchronously starts a new batch.
        batch = [];
        bytes = 0;
        subscriber.next(full);
      };

      const sourceSubscription = source.subscribe({
        next: (item) => {
          let size = 0;
          if (measure !== undefined) {
            try {
              size = measure(item);
            } catch (err) {
              subscriber.error(err);
              return;
            }
          }
          if (batch.length > 0 && bytes + size > maxBytes) flush();
          batch.push(item);
          bytes += size;
          if (batch.length >= maxCount || bytes >= maxBytes) flush();
          else if (batch.length === 1) deadline = scheduler.schedule(flush, maxWaitMs);
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          flush();
          subscriber.complete();
        },
      });

      return () => {
        sourceSubscription.unsubscribe();
        deadline?.unsubscribe();
        deadline = undefined;
        batch = [];
      };
    });
}
