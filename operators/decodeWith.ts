import { map } from 'rxjs';
import type { OperatorFunction } from 'rxjs';

/** What a decoder returns: the decoded value, or why the input is not one. */
export type DecodeResult<O, E> = { ok: true; value: O } | { ok: false; error: E };

/** An item after decoding. It keeps its input so a rejected item can be quarantined exactly as it arrived. */
export type Decoded<I, O, E> = { ok: true; input: I; value: O } | { ok: false; input: I; error: E };

/**
 * Decodes each item, turning bad input into a rejected outcome instead of a stream error.
 *
 * An error notification ends the stream, so one malformed message would stop every
 * message behind it. Dropping the message is no better: it is never acked, so it comes
 * back on redelivery, and nobody sees why it failed. `decodeWith` keeps the stream
 * alive and the bad input visible. Each item comes out, in order, as
 * `{ ok: true, input, value }` or `{ ok: false, input, error }`, so rejected items can
 * go to quarantine with their raw input (see `tapRejected`). If `decode` throws instead
 * of returning `{ ok: false }`, `onThrow` turns the exception into an `error` value.
 *
 * ```
 * source:  --a--x--b--y--|
 *          decodeWith(decode, onThrow)
 * output:  --A--X--B--Y--|
 *
 * a, b decode: A, B = { ok: true,  input, value }
 * x is rejected by decode: X = { ok: false, input, error }
 * y makes decode throw:    Y = { ok: false, input, error: onThrow(exception, y) }
 * ```
 *
 * ## Example
 *
 * ```ts
 * import { of } from 'rxjs';
 * import { decodeWith } from '../operators/decodeWith.ts';
 *
 * const parseHours = (raw: string) => {
 *   const hours = Number(raw);
 *   return Number.isFinite(hours)
 *     ? { ok: true as const, value: hours }
 *     : { ok: false as const, error: `hours: not a number: ${raw}` };
 * };
 *
 * of('7.5', 'seven', '2')
 *   .pipe(decodeWith(parseHours, (exception) => `hours: decoder threw: ${String(exception)}`))
 *   .subscribe((d) => console.log(d.ok ? d.value : `${d.input} -> ${d.error}`));
 *
 * // Output:
 * // 7.5
 * // seven -> hours: not a number: seven
 * // 2
 * ```
 *
 * @param decode Decodes one input. Should be pure. It reports bad input by returning
 * `{ ok: false, error }`.
 * @param onThrow Turns an exception thrown by `decode` into an error value. It receives the
 * input so the error can name the record.
 * @returns A function that returns an Observable with exactly one `Decoded` outcome per source
 * item, in source order. It errors only if the source errors or `onThrow` itself throws.
 */
export function decodeWith<I, O, E>(
  decode: (input: I) => DecodeResult<O, E>,
  onThrow: (exception: unknown, input: I) => E,
): OperatorFunction<I, Decoded<I, O, E>> {
  return map((input): Decoded<I, O, E> => {
    let result: DecodeResult<O, E>;
    try {
      result = decode(input);
    } catch (exception) {
      return { ok: false, input, error: onThrow(exception, input) };
    }
    return result.ok ? { ok: true, input, value: result.value } : { ok: false, input, error: result.error };
  });
}
