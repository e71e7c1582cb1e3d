import { from, Observable, Subscription } from 'rxjs';
import type { OperatorFunction } from 'rxjs';

export interface SerialPerKeyOptions<T = unknown> {
  /** How many keys may run a turn at the same time. A positive integer, or Infinity. */
  maxConcurrentKeys: number;
  /** How many queued items one turn is handed at most. A positive integer. */
  maxBatch: number;
  /**
   * What one item weighs (say, the entries in a batch): a turn is also handed no
   * more items than add up to `maxWeight`, but always at least one. @default () => 1
   */
  weightOf?: (item: T) => number;
  /** The most weight one turn is handed (with `weightOf`). A positive number. @default Infinity */
  maxWeight?: number;
}

/**
 * Runs `work` for each key in turns, in arrival order, one turn per key at a time and several keys in parallel.
 *
 * These are the mailbox semantics of a per-project actor. All items of one key are
 * processed strictly in arrival order, and two turns of the same key never overlap,
 * so a turn can read, decide and write the key's state without racing itself.
 * Different keys are independent and run in parallel, up to `maxConcurrentKeys`.
 * Items that arrive for a key while its turn runs, or while it waits for a free
 * slot, queue in its mailbox. The next turn gets them all at once (at most
 * `maxBatch`, and no more than `maxWeight` by `weightOf`), so a busy key catches
 * up in fewer, larger transactions. Keys waiting
 * for a slot are served first come, first served. A key that still has mail after
 * its turn goes to the back of that line, so one busy key cannot starve the others.
 * A turn is over when the Promise settles or the Observable completes. Every value
 * it produces is emitted downstream. An error from `work` or `keyOf` errors the
 * output and cancels the running turns. The output completes after the source has
 * completed and every mailbox has been worked off.
 *
 * The mailboxes are unbounded. Bound the input upstream instead, for example with
 * the consumer's max-ack-pending: acking happens after a turn commits, so the server
 * stops delivering while too much work is open.
 *
 * ```
 * source:   -a-b-cx-d-------|            a, b, c, d have key P; x has key Q
 *           serialPerKey(keyOf, work, { maxConcurrentKeys: 2, maxBatch: 10 })
 * P turns:  -[a---][bc--][d---]          (work takes 6 ms)
 * Q turns:  ------[x---]
 * output:   -------A----XB-----(D|)
 *
 * A = work(P, [a]), X = work(Q, [x]), B = work(P, [b, c]), D = work(P, [d])
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { of } from 'rxjs';
 * import { serialPerKey } from '../operators/serialPerKey.ts';
 *
 * const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
 *
 * of({ project: 'p1', n: 1 }, { project: 'p1', n: 2 }, { project: 'p2', n: 3 }, { project: 'p1', n: 4 })
 *   .pipe(serialPerKey(
 *     (entry) => entry.project,
 *     async (project, entries) => {
 *       await sleep(10);
 *       return `${project}: ${entries.map((e) => e.n).join(',')}`;
 *     },
 *     { maxConcurrentKeys: 8, maxBatch: 100 },
 *   ))
 *   .subscribe((line) => console.log(line));
 *
 * // Output:
 * // p1: 1
 * // p2: 3
 * // p1: 2,4
 * ```
 *
 * @param keyOf Returns the key whose mailbox an item goes to, for example its project id.
 * @param work Runs one turn for a key with the items taken from its mailbox, oldest first.
 * @param options `maxConcurrentKeys` and `maxBatch`; optionally `weightOf` and `maxWeight`.
 * @returns A function that returns an Observable of everything the turns produce.
 * @throws {RangeError} When `maxConcurrentKeys`, `maxBatch` or `maxWeight` is out of range.
 */
export function serialPerKey<T, R>(
  keyOf: (item: T) => string,
  work: (key: string, items: T[]) => Promise<R> | Observable<R>,
  options: SerialPerKeyOptions<T>,
): OperatorFunction<T, R> {
  const { maxConcurrentKeys, maxBatch, weightOf, maxWeight = Infinity } = options;
  if (!(Number.isInteger(maxConcurrentKeys) || maxConcurrentKeys === Infinity) || maxConcurrentKeys < 1) {
    throw new RangeError(
      `serialPerKey: options.maxConcurrentKeys must be a positive integer or Infinity, got ${maxConcurrentKeys}`,
    );
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(`serialPerKey: options.maxBatch must be a positive integer, got ${maxBatch}`);
  }
  if (Number.isNaN(maxWeight) || maxWeight <= 0) {
    throw new RangeError(`serialPerKey: options.maxWeight must be a number > 0, got ${maxWeight}`);
  }

  /** How many of the mailbox's first items one turn takes: at most maxBatch, and no more than maxWeight (at least one). */
  const turnSize = (mailbox: readonly T[]): number => {
    if (weightOf === undefined || maxWeight === Infinity) return Math.min(maxBatch, mailbox.length);
    let weight = 0;
    let count = 0;
    while (count < mailbox.length && count < maxBatch) {
      weight += weightOf(mailbox[count] as T);
      if (count > 0 && weight > maxWeight) break;
      count++;
    }
    return count;
  };

  return (source) =>
    new Observable<R>((subscriber) => {
      // Invariant: a key with mail is either running or waiting in `ready`.
      const mailboxes = new Map<string, T[]>();
      const running = new Set<string>();
      // A Set iterates in insertion order, so it is the FIFO line of keys waiting for a
      // slot. It is read through one kept iterator (replaced once it has run out), so
      // the holes taken keys leave in the Set's table are stepped over once, not on
      // every turn (see dedupeByKey).
      const ready = new Set<string>();
      let readyInOrder = ready.values();
      const turns = new Set<Subscription>();
      let sourceDone = false;
      let pumping = false;

      const completeIfDrained = (): void => {
        if (sourceDone && running.size === 0 && ready.size === 0) subscriber.complete();
      };

      const startTurn = (key: string): void => {
        const mailbox = mailboxes.get(key) ?? [];
        let items: T[];
        try {
          items = mailbox.splice(0, turnSize(mailbox));
        } catch (err) {
          subscriber.error(err);
          return;
        }
        if (mailbox.length === 0) mailboxes.delete(key);
        running.add(key);
        let output: Observable<R>;
        try {
          output = from(work(key, items));
        } catch (err) {
          subscriber.error(err);
          return;
        }
        // Registered before subscribing: a synchronous turn completes inside subscribe().
        const turn = new Subscription();
        turns.add(turn);
        turn.add(
          output.subscribe({
            next: (result) => subscriber.next(result),
            error: (err: unknown) => subscriber.error(err),
            complete: () => {
              turns.delete(turn);
              running.delete(key);
              if (mailboxes.has(key)) ready.add(key);
              pump();
            },
          }),
        );
      };

      const pump = (): void => {
        // A turn that completes synchronously calls pump() again; the outer loop picks up where it left.
        if (pumping) return;
        pumping = true;
        try {
          while (!subscriber.closed && running.size < maxConcurrentKeys && ready.size > 0) {
            let next = readyInOrder.next();
            if (next.done) next = (readyInOrder = ready.values()).next();
            if (next.done) break;
            ready.delete(next.value);
            startTurn(next.value);
          }
        } finally {
          pumping = false;
        }
        completeIfDrained();
      };

      const sourceSubscription = source.subscribe({
        next: (item) => {
          let key: string;
          try {
            key = keyOf(item);
          } catch (err) {
            subscriber.error(err);
            return;
          }
          const mailbox = mailboxes.get(key);
          if (mailbox === undefined) mailboxes.set(key, [item]);
          else mailbox.push(item);
          if (!running.has(key)) ready.add(key);
          pump();
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          sourceDone = true;
          completeIfDrained();
        },
      });

      return () => {
        sourceSubscription.unsubscribe();
        for (const turn of turns) turn.unsubscribe();
        turns.clear();
        mailboxes.clear();
        running.clear();
        ready.clear();
      };
    });
}
