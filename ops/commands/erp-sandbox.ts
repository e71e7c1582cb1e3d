// `billstream erp-sandbox`: the local stand-in for the cloud ERP (CONTRACT §6).
import { erpSandboxConfigFromEnv } from '../../connectors/erp/config.ts';
import { startErpSandbox } from '../../connectors/erp/sandbox.ts';
import { createDatabaseIfMissing } from '../embedded/services.ts';

export async function runErpSandbox(): Promise<number> {
  const config = erpSandboxConfigFromEnv({ ...process.env, DATABASE_URL: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/billstream' });
  await createDatabaseIfMissing(config.databaseUrl);
  const sandbox = await startErpSandbox({ ...config, host: process.env.ERP_SANDBOX_HOST ?? config.host });
  console.error(`[erp-sandbox] listening on ${sandbox.url}`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await sandbox.close();
  return 0;
}
