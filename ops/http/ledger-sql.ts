// Small SQL pieces the read routes share. Raw SQL returns timestamptz as
// PostgreSQL text ("2026-11-25 10:00:00.123456+00") and bigint as strings;
// these turn them into the contract's forms (ISO-8601 UTC instants, decimal strings).
import { formatHours, formatMoney } from '../../pipeline/model/money.ts';

/** A timestamptz column as an ISO-8601 UTC instant with milliseconds, e.g. "2026-11-25T10:00:00.123Z". */
export function instantSql(column: string): string {
  return `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/** Bigint cents as the wire decimal, keeping null. */
export function moneyOrNull(minor: string | number | bigint | null): string | null {
  return minor === null ? null : formatMoney(BigInt(minor));
}

/** Bigint hundredths of an hour as the wire decimal, keeping null. */
export function hoursOrNull(hundredths: string | number | bigint | null): string | null {
  return hundredths === null ? null : formatHours(BigInt(hundredths));
}
