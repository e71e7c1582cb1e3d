// Runs async work over many items with a fixed number in flight, so a request
// of 10,000 records keeps at most `concurrency` publishes (and their promises,
// buffers and acks) open at once instead of 10,000.

/**
 * Calls `work` for every item, at most `concurrency` at a time, in item order
 * of start. After the first failure no further item is started; the ones in
 * flight are awaited, then the first error is thrown.
 *
 * @param concurrency at least 1
 * @returns how many items completed
 */
export async function forEachBounded<T>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<number> {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be an integer of at least 1, got ${concurrency}`);
  let next = 0;
  let completed = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      const index = next++;
      try {
        await work(items[index] as T, index);
        completed++;
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
  return completed;
}
