// A whole billstream for an integration test: a private nats-server, a private
// database, the ERP sandbox on that database, and the runtime wired to them.
// Everything is real; everything is removed on dispose.
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { startErpSandbox, type ErpSandbox } from '../../connectors/erp/sandbox.ts';
import { ensureTopology } from '../../connectors/nats/topology.ts';
import { RECORD_KINDS } from '../../pipeline/model/types.ts';
import { loadConfig, type BillstreamConfig } from '../../ops/config.ts';
import { startRuntime, type Runtime } from '../../ops/runtime.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { startNatsServer, type TestNatsServer } from './nats-server.ts';

export interface Harness extends AsyncDisposable {
  nats: TestNatsServer;
  db: TestDatabase;
  erp: ErpSandbox;
  runtime: Runtime | null;
  config: BillstreamConfig;
  client: NatsConnection;
  js: JetStreamClient;
  sql: pg.Pool;
  /** Publishes a record (object) or raw text to a subject, with an optional Nats-Msg-Id. */
  publish(subject: string, record: unknown, msgId?: string): Promise<void>;
  startRuntime(): Promise<Runtime>;
  stopRuntime(): Promise<void>;
  /** Polls until `check` returns a truthy value (or throws after timeoutMs). */
  waitFor<T>(check: () => Promise<T | null | undefined | false>, timeoutMs?: number, what?: string): Promise<T>;
  erpDocuments(projectId?: string): Promise<{ external_id: string; kind: string; amount: string; hours: string | null; entry_id: string | null; revision: number | null }[]>;
}

export async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
  const nats = await startNatsServer();
  const db = await createTestDatabase();
  const erp = await startErpSandbox({ databaseUrl: db.url, port: 0 });
  const config = loadConfig({
    NATS_URL: nats.url, DATABASE_URL: db.url, ERP_BASE_URL: erp.url, HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', REFERENCE_GRACE_SECONDS: '30', ...env,
  });
  const client = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const js = jetstream(client);
  // Producers may publish before billstream first starts; the streams are there for them.
  await ensureTopology(await jetstreamManager(client), RECORD_KINDS);
  const sql = new pg.Pool({ connectionString: db.url, max: 2 });
  const encoder = new TextEncoder();

  const harness: Harness = {
    nats, db, erp, config, client, js, sql, runtime: null,
    async publish(subject, record, msgId) {
      const h = natsHeaders();
      const data = typeof record === 'string' ? encoder.encode(record) : encoder.encode(JSON.stringify(record));
      await js.publish(subject, data, { msgID: msgId, headers: h });
    },
    async startRuntime() {
      harness.runtime = await startRuntime(config, { log: () => undefined });
      return harness.runtime;
    },
    async stopRuntime() {
      await harness.runtime?.stop();
      harness.runtime = null;
    },
    async waitFor(check, timeoutMs = 30_000, what = 'condition') {
      const deadline = Date.now() + timeoutMs;
      let last: unknown;
      for (;;) {
        try {
          const value = await check();
          if (value) return value;
          last = undefined;
        } catch (err) {
          last = err;
        }
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async erpDocuments(projectId) {
      const { rows } = await sql.query(
        `select external_id, kind, amount::text as amount, hours::text as hours, entry_id, revision from erp_document ${projectId ? 'where project_id = $1' : ''} order by external_id`,
        projectId ? [projectId] : []);
      return rows;
    },
    async [Symbol.asyncDispose]() {
      await harness.stopRuntime().catch(() => undefined);
      await client.close().catch(() => undefined);
      await sql.end().catch(() => undefined);
      await erp.close().catch(() => undefined);
      await nats[Symbol.asyncDispose]();
      await db[Symbol.asyncDispose]();
    },
  };
  return harness;
}
