import { map } from 'rxjs';
import type { OperatorFunction } from 'rxjs';

/**
 * Combines each item with the reference snapshot that is current when the item passes.
 *
 * Reference data (rate cards, assignments, projects) changes at its own pace. The
 * items do not wait for it, and it is not a second stream to join: enrichment reads
 * whatever `context()` returns at the moment each item arrives, for example the value
 * of a `BehaviorSubject` fed by a KV watcher. An item is enriched against the
 * reference data of its own arrival time, never against a later version. `enrich`
 * runs synchronously and should be pure. If it throws, the stream errors. Items
 * that cannot be enriched should be returned as a rejected outcome instead, for
 * quarantine.
 *
 * ```
 * source:   --a-----b-----c--|
 * context:  r1------r2--------      (a snapshot that changes between b and c)
 *           enrichWith(context, enrich)
 * output:   --A-----B-----C--|
 *
 * A = enrich(a, r1), B = enrich(b, r2), C = enrich(c, r2)
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { BehaviorSubject, of } from 'rxjs';
 * import { enrichWith } from '../operators/enrichWith.ts';
 *
 * const rates = new BehaviorSubject(new Map([['ada', 120_00]]));
 *
 * of({ consultant: 'ada', minutes: 90 })
 *   .pipe(enrichWith(() => rates.value, (entry, rateByConsultant) => ({
 *     ...entry,
 *     hourlyRateMinor: rateByConsultant.get(entry.consultant),
 *   })))
 *   .subscribe((x) => console.log(x));
 *
 * // Output:
 * // { consultant: 'ada', minutes: 90, hourlyRateMinor: 12000 }
 * ```
 *
 * @param context Returns the current reference snapshot. Called once per item.
 * @param enrich Combines one item with the snapshot. Synchronous and pure.
 * @returns A function that returns an Observable of the enriched items, one per source item, in
 * order.
 */
export function enrichWith<T, C, O>(
  context: () => C,
  enrich: (item: T, context: C) => O,
): OperatorFunction<T, O> {
  return map((item) => enrich(item, context()));
}
