// `billstream reconcile`: the ledger against the ERP, document by document.
import { ErpClient } from '../../connectors/erp/erp-client.ts';
import { loadConfig } from '../config.ts';
import { reconcileWithErp } from '../reconciliation.ts';
import { openLedger } from '../../pipeline/state/orm.ts';

export async function runReconcile(): Promise<number> {
  const config = loadConfig();
  const orm = await openLedger({ databaseUrl: config.DATABASE_URL, poolSize: 2 });
  const erp = new ErpClient({ baseUrl: config.ERP_BASE_URL, clientId: config.ERP_CLIENT_ID, clientSecret: config.ERP_CLIENT_SECRET });
  await erp.start();
  try {
    const report = await reconcileWithErp(orm, (projectId) => erp.listTransactions(projectId));
    console.log(JSON.stringify(report, null, 2));
    return report.ok ? 0 : 1;
  } finally {
    await erp.stop();
    await orm.close();
  }
}
