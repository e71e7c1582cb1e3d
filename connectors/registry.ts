// Every connector billstream has, by name: what `npx billstream connectors`
// lists and documents. Adding a connector is adding its spec here.
import { ErpClient } from './erp/erp-client.ts';
import { erpClientConfigSchema } from './erp/config.ts';
import { defineConnector, type ConnectorSpec } from './connector-spec.ts';
import { legacyErpConnector } from './legacy-erp/legacy-erp-connector.ts';
import { SOURCE_CONNECTORS } from './sources/source-connectors.ts';
import { masterDataConnector } from './templates/master-data-connector.ts';

export const cloudErpConnector = defineConnector({
  name: 'cloud-erp',
  kind: 'sink',
  summary: 'The cloud ERP API (CONTRACT §6): OAuth2 client credentials, idempotent postings, invoices.',
  description: `
Posts the ERP outbox's charges, reversals and milestone charges to \`POST /api/v1/billable-transactions\` and
creates invoices. Every retry of a call reuses its \`Idempotency-Key\`; 429 is waited out (\`Retry-After\`), 408,
5xx and network failures are retried with full-jitter backoff; a 422 names every refused line. See
connectors/erp/README.md for the full behaviour and the sandbox that stands in for the ERP.`,
  config: erpClientConfigSchema,
  examples: [{ baseUrl: 'https://erp.example.com', clientId: 'billstream', clientSecret: '<secret>' }],
  env: { ERP_BASE_URL: 'baseUrl', ERP_CLIENT_ID: 'clientId', ERP_CLIENT_SECRET: 'clientSecret', ERP_BATCH_SIZE: 'batchSize' },
  create: (config) => new ErpClient(config),
});

export const CONNECTORS: readonly ConnectorSpec[] = [
  SOURCE_CONNECTORS.harvest,
  SOURCE_CONNECTORS.toggl,
  SOURCE_CONNECTORS.clockify,
  SOURCE_CONNECTORS.kimai,
  masterDataConnector,
  cloudErpConnector,
  legacyErpConnector,
] as unknown as readonly ConnectorSpec[];

export function connectorByName(name: string): ConnectorSpec | undefined {
  return CONNECTORS.find((c) => c.name === name);
}
