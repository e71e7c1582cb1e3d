// The ERP lines of a time entry (CONTRACT §3.8, §6) as pure functions: the
// charge of a decided revision and the reversal of an earlier charge. The
// project actor builds its lines here, and so does the bench's naive pipeline,
// so the two post the same lines.
import type { EnrichmentOutcome } from './billing-rules.ts';
import { formatHours, formatMoney } from './money.ts';
import type { ProjectRecord, TimeRecord } from './types.ts';

/** What a charge needs of a revision's enrichment. */
export type ChargeEnrichment = Pick<Extract<EnrichmentOutcome, { kind: 'enriched' }>, 'amountMinor' | 'rateMinor' | 'currency' | 'role'>;

export function chargeOf(entry: TimeRecord, project: ProjectRecord, enrichment: ChargeEnrichment, hours: bigint): Record<string, string | number> {
  // Keys in the order the ERP poster sends them (canonicalLine), so a line posted from memory is not copied to reorder it.
  return {
    amount: formatMoney(enrichment.amountMinor ?? 0n), consultantId: entry.consultantId, currency: enrichment.currency, customerId: project.customerId,
    entryId: entry.entryId, externalId: `${entry.entryId}:${entry.revision}:charge`, hours: formatHours(hours), kind: 'charge',
    legalEntity: project.legalEntity, projectId: project.projectId, rate: formatMoney(enrichment.rateMinor ?? 0n), revision: entry.revision,
    role: enrichment.role, workDate: entry.workDate,
  };
}

/** The reversal of a charge negates its hours and amount, so an entry's documents sum to what it is billed now. */
export function reversalOf(charge: Record<string, string | number>): Record<string, string | number> {
  const negate = (text: string | number) => (String(text).startsWith('-') ? String(text).slice(1) : String(text) === '0.00' ? '0.00' : `-${String(text)}`);
  return {
    ...charge,
    externalId: `${String(charge.entryId)}:${String(charge.revision)}:reversal`,
    kind: 'reversal',
    hours: negate(charge.hours ?? '0.00'),
    amount: negate(charge.amount ?? '0.00'),
  };
}
