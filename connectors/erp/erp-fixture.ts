// Test support for the ERP specs: a sandbox on a private database, and clients
// bound to it, all released by one `await using`, even when a test fails.
import { createTestDatabase } from '../../test/support/database.ts';
import { ErpClient } from './erp-client.ts';
import type { ErpClientOptions, ErpRequestEvent } from './erp-client.ts';
import type { ErpClientConfigInput } from './config.ts';
import { startErpSandbox } from './sandbox.ts';
import type { ErpSandbox, ErpSandboxOptions } from './sandbox.ts';
import type { ErpTimeTransaction } from './types.ts';

export interface ErpFixture extends AsyncDisposable {
  sandbox: ErpSandbox;
  databaseUrl: string;
  /** A started client with test-sized backoffs; `events` collects its requests. */
  client(config?: ErpClientConfigInput, options?: ErpClientOptions): Promise<{ client: ErpClient; events: ErpRequestEvent[] }>;
  /** Fetches a token from the sandbox with its own client, for raw HTTP tests. */
  token(): Promise<string>;
}

/** Backoffs small enough that retry tests take milliseconds, not seconds. */
export const FAST_RETRIES = { initialBackoffMs: 5, maxBackoffMs: 40, maxAttempts: 8, requestTimeoutMs: 5_000 } as const;

export async function setupErp(options: Partial<Omit<ErpSandboxOptions, 'databaseUrl'>> = {}): Promise<ErpFixture> {
  const db = await createTestDatabase('billstream_erp');
  let sandbox: ErpSandbox;
  try {
    sandbox = await startErpSandbox({ ...options, databaseUrl: db.url, port: 0, host: '127.0.0.1' });
  } catch (err) {
    await db[Symbol.asyncDispose]();
    throw err;
  }
  const clients: ErpClient[] = [];
  return {
    sandbox,
    databaseUrl: db.url,
    async client(config = {}, clientOptions = {}) {
      const events: ErpRequestEvent[] = [];
      const client = new ErpClient(
        { ...FAST_RETRIES, clientId: options.clientId, clientSecret: options.clientSecret, ...config, baseUrl: sandbox.url },
        {
          ...clientOptions,
          onRequest: (event) => {
            events.push(event);
            clientOptions.onRequest?.(event);
          },
        },
      );
      clients.push(client);
      await client.start();
      return { client, events };
    },
    async token() {
      const response = await fetch(`${sandbox.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: options.clientId ?? 'test',
          client_secret: options.clientSecret ?? '',
        }).toString(),
      });
      const body = (await response.json()) as { access_token: string };
      return body.access_token;
    },
    async [Symbol.asyncDispose]() {
      try {
        await Promise.allSettled(clients.map((client) => client.stop()));
        await sandbox.close();
      } finally {
        await db[Symbol.asyncDispose]();
      }
    },
  };
}

/** A valid charge of 7.50 h at 150.00 (= 1125.00) unless told otherwise. */
export function charge(entryId: string, overrides: Partial<ErpTimeTransaction> = {}): ErpTimeTransaction {
  const revision = overrides.revision ?? 1;
  return {
    externalId: `charge:${entryId}:${revision}`,
    kind: 'charge',
    entryId,
    revision,
    projectId: 'P-1',
    customerId: 'C-1',
    consultantId: 'K-1',
    role: 'senior',
    workDate: '2025-03-03',
    hours: '7.50',
    rate: '150.00',
    amount: '1125.00',
    currency: 'USD',
    legalEntity: 'US01',
    ...overrides,
  };
}
