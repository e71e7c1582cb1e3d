import { filter } from 'rxjs';
import type { OperatorFunction } from 'rxjs';

/**
 * Passes rejected items to a side-effect sink and lets the rest continue downstream.
 *
 * This is the fork for the quarantine path. A rejected item leaves the main flow here
 * and `quarantine` records it, for example by writing it to a dead-letter subject and
 * acking it. Everything else continues, typed as `Exclude<T, R>`, so later steps never
 * have to check for a rejected item again. The sink runs synchronously, at the moment
 * the item passes. If it throws, the stream errors: losing a rejected item silently
 * would be worse.
 *
 * ```
 * source:  --a--X--b--Y--|
 *          tapRejected(isRejected, quarantine)
 * output:  --a-----b-----|
 *
 * quarantine is called with X at frame 5 and with Y at frame 11
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { of } from 'rxjs';
 * import { tapRejected } from '../operators/tapRejected.ts';
 *
 * type Outcome = { ok: true; hours: number } | { ok: false; raw: string };
 * const isRejected = (o: Outcome): o is Extract<Outcome, { ok: false }> => !o.ok;
 *
 * of<Outcome>({ ok: true, hours: 7.5 }, { ok: false, raw: 'seven' }, { ok: true, hours: 2 })
 *   .pipe(tapRejected(isRejected, (o) => console.log(`quarantined ${o.raw}`)))
 *   .subscribe((o) => console.log(o.hours)); // o: { ok: true; hours: number }
 *
 * // Output:
 * // 7.5
 * // quarantined seven
 * // 2
 * ```
 *
 * @param isRejected A type guard that picks out the rejected items.
 * @param quarantine Receives each rejected item. Called synchronously and in order.
 * @returns A function that returns an Observable of the items that were not rejected.
 */
export function tapRejected<T, R extends T>(
  isRejected: (item: T) => item is R,
  quarantine: (item: R) => void,
): OperatorFunction<T, Exclude<T, R>> {
  return filter((item: T): item is Exclude<T, R> => {
    if (isRejected(item)) {
      quarantine(item);
      return false;
    }
    return true;
  });
}
