import { mergeMap } from 'rxjs';
import type { OperatorFunction } from 'rxjs';
import type { RegionBatch } from './batchByRegion.ts';

/** The part of a region's batch that belongs to one of its lanes. */
export interface LaneBatch<T> extends RegionBatch<T> {
  /** `<region>#<lane>`: the key of this part's mailbox downstream. */
  lane: string;
}

/**
 * Splits each region's batch into one batch per lane, each lane's items in their order in the batch.
 *
 * A region's batches worked strictly one at a time (as `serialPerKey` does per key)
 * make its busiest region a single queue: with half of all items in one region,
 * everything waits on that region's turns, one after another. When only items of
 * the same sub-key must stay in order (a project's, say, within its region), a
 * stable `laneOf(item)` in `[0, lanes)` splits the region into lanes whose turns
 * can overlap, while each sub-key stays in one lane and so in order. With one
 * lane, batches pass through unsplit.
 *
 * ```
 * source:  --A-----B--|      A = { region: 'r', items: [a0, b1, c0] }, B = { region: 's', items: [d1] }
 *          splitIntoLanes(2, laneOf)          (laneOf: a, c → 0; b, d → 1)
 * output:  --(xy)--z--|      x = r#0 [a0, c0], y = r#1 [b1], z = s#1 [d1]
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { of } from 'rxjs';
 * import { splitIntoLanes } from '../operators/splitIntoLanes.ts';
 *
 * of({ region: 'emea', items: ['p1:a', 'p2:b', 'p1:c'] })
 *   .pipe(splitIntoLanes(2, (item) => (item.startsWith('p1') ? 0 : 1)))
 *   .subscribe((batch) => console.log(batch.lane, batch.items.join(',')));
 *
 * // Output:
 * // emea#0 p1:a,p1:c
 * // emea#1 p2:b
 * ```
 *
 * @param lanes How many lanes each region has. A positive integer.
 * @param laneOf Returns an item's lane, an integer in `[0, lanes)`; the same sub-key must always get the same lane.
 * @returns A function that returns an Observable of the lanes' batches, lowest lane first, none empty.
 * @throws {RangeError} When `lanes` is not a positive integer, or (as a stream error) when `laneOf` returns a lane out of range.
 */
export function splitIntoLanes<T, B extends RegionBatch<T> = RegionBatch<T>>(
  lanes: number,
  laneOf: (item: T) => number,
): OperatorFunction<B, B & LaneBatch<T>> {
  if (!Number.isInteger(lanes) || lanes < 1) throw new RangeError(`splitIntoLanes: lanes must be a positive integer, got ${lanes}`);
  return mergeMap((batch: B): (B & LaneBatch<T>)[] => {
    if (lanes === 1) return batch.items.length === 0 ? [] : [{ ...batch, lane: `${batch.region}#0` }];
    const parts: T[][] = [];
    for (const item of batch.items) {
      const lane = laneOf(item);
      if (!Number.isInteger(lane) || lane < 0 || lane >= lanes) throw new RangeError(`splitIntoLanes: laneOf returned ${lane}, not a lane in [0, ${lanes})`);
      (parts[lane] ??= []).push(item);
    }
    const out: (B & LaneBatch<T>)[] = [];
    for (let lane = 0; lane < lanes; lane++) {
      const items = parts[lane];
      if (items) out.push({ ...batch, items, lane: `${batch.region}#${lane}` });
    }
    return out;
  });
}
