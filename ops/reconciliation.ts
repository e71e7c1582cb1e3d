// Reconciliation: PostgreSQL is the record of truth for what billstream billed;
// this compares it, document by document, with what the ERP holds. It is how an
// operator proves, after a broker crash or a power loss, that nothing was lost
// or doubled between the two.
import type { MikroORM } from '@mikro-orm/postgresql';
import { formatMoney, parseMoney } from '../pipeline/model/money.ts';

export interface ErpDocumentView { externalId: string; documentId: string; amount: string; currency?: string }

export interface ReconciliationReport {
  projects: number;
  ledgerDocuments: number;
  erpDocuments: number;
  matched: number;
  /** Posted in the ledger but absent from the ERP. */
  missingInErp: string[];
  /** In the ERP but unknown to the ledger (or not marked posted yet). */
  unknownToLedger: string[];
  /** Same externalId, different amount. */
  amountMismatches: { externalId: string; ledger: string; erp: string }[];
  /** Still waiting in the outbox (not an error while the poster runs). */
  pendingInOutbox: number;
  ledgerTotalByCurrency: Record<string, string>;
  erpTotalByCurrency: Record<string, string>;
  ok: boolean;
}

export async function reconcileWithErp(orm: MikroORM, listErpDocuments: (projectId: string) => Promise<ErpDocumentView[]>): Promise<ReconciliationReport> {
  const em = orm.em.fork();
  const ledger = await em.execute<{ external_id: string; project_id: string; amount_minor: string; currency: string; status: string }[]>(
    `select external_id, project_id, amount_minor, currency, status from erp_outbox where status in ('posted', 'pending')`);
  const projects = new Set(ledger.map((r) => r.project_id));
  const posted = new Map(ledger.filter((r) => r.status === 'posted').map((r) => [r.external_id, r]));
  const report: ReconciliationReport = {
    projects: projects.size, ledgerDocuments: posted.size, erpDocuments: 0, matched: 0, missingInErp: [], unknownToLedger: [], amountMismatches: [],
    pendingInOutbox: ledger.length - posted.size, ledgerTotalByCurrency: {}, erpTotalByCurrency: {}, ok: false,
  };
  const ledgerTotals = new Map<string, bigint>();
  for (const row of posted.values()) ledgerTotals.set(row.currency, (ledgerTotals.get(row.currency) ?? 0n) + BigInt(row.amount_minor));
  const erpTotals = new Map<string, bigint>();
  const seen = new Set<string>();
  for (const projectId of projects) {
    for (const doc of await listErpDocuments(projectId)) {
      report.erpDocuments++;
      seen.add(doc.externalId);
      const amount = parseMoney(doc.amount);
      const row = posted.get(doc.externalId);
      const currency = doc.currency ?? row?.currency ?? '???';
      erpTotals.set(currency, (erpTotals.get(currency) ?? 0n) + amount);
      if (!row) { report.unknownToLedger.push(doc.externalId); continue; }
      if (BigInt(row.amount_minor) !== amount) report.amountMismatches.push({ externalId: doc.externalId, ledger: formatMoney(BigInt(row.amount_minor)), erp: doc.amount });
      else report.matched++;
    }
  }
  for (const id of posted.keys()) if (!seen.has(id)) report.missingInErp.push(id);
  report.ledgerTotalByCurrency = Object.fromEntries([...ledgerTotals].map(([c, v]) => [c, formatMoney(v)]));
  report.erpTotalByCurrency = Object.fromEntries([...erpTotals].map(([c, v]) => [c, formatMoney(v)]));
  report.ok = report.missingInErp.length === 0 && report.unknownToLedger.length === 0 && report.amountMismatches.length === 0;
  return report;
}
