// The ops HTTP server of CONTRACT §5: ingest over HTTP, the entry lifecycle, the
// exception queue, health and metrics. It reads the ledger through the ORM and
// publishes through an injected function, so it needs no NATS of its own and
// tests run it against a database alone.
import type { MikroORM } from '@mikro-orm/postgresql';
import Fastify, { type FastifyInstance } from 'fastify';
import type { RecordKind } from '../../pipeline/model/types.ts';
import { registerEntriesRoute } from './entries-route.ts';
import { installErrorHandling } from './errors.ts';
import { registerExceptionsRoute } from './exceptions-route.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { registerIngestRoute } from './ingest-route.ts';
import { zodValidatorCompiler } from './schema-validation.ts';

export interface OpsServerDeps {
  orm: MikroORM;
  /** Publishes one validated record to ingest.<kind>.<region>.<key> with its Nats-Msg-Id; resolves when JetStream acked it. */
  publishIngest(kind: RecordKind, record: object, subject: string, msgId: string): Promise<void>;
  /** Region token for a record that has none of its own (time and milestone records are routed by their project's region). */
  regionFor(kind: RecordKind, record: Record<string, unknown>): string;
  readiness(): Promise<{ ready: boolean; checks: Record<string, boolean> }>;
  /** INGEST_TOKEN: when set (non-empty), ingest requires `Authorization: Bearer <token>`. */
  ingestToken?: string;
  /** Prometheus text for /metrics; a private registry with the process's default metrics when absent. */
  metricsText?: () => Promise<string>;
}

export interface OpsServerOptions {
  /** Largest request body accepted, in bytes. @default 16 MiB */
  bodyLimitBytes?: number;
  /** Most records one ingest request may hold. @default 10000 */
  maxRecordsPerRequest?: number;
  /** Ingest publishes awaiting their JetStream ack at once. @default 64 */
  publishConcurrency?: number;
  /** Fastify's request log. @default false */
  logger?: boolean;
}

export function defaultOpsServerOptions(): Required<OpsServerOptions> {
  return { bodyLimitBytes: 16 * 1024 * 1024, maxRecordsPerRequest: 10_000, publishConcurrency: 64, logger: false };
}

/**
 * Builds (does not start) the ops server; call `listen` on the result. Routes
 * are registered but the instance is not yet `ready`, so a caller may add more.
 */
export async function buildOpsServer(deps: OpsServerDeps, options?: OpsServerOptions): Promise<FastifyInstance> {
  const defaults = defaultOpsServerOptions();
  const settings: Required<OpsServerOptions> = {
    bodyLimitBytes: options?.bodyLimitBytes ?? defaults.bodyLimitBytes,
    maxRecordsPerRequest: options?.maxRecordsPerRequest ?? defaults.maxRecordsPerRequest,
    publishConcurrency: options?.publishConcurrency ?? defaults.publishConcurrency,
    logger: options?.logger ?? defaults.logger,
  };
  for (const [name, value] of Object.entries({ bodyLimitBytes: settings.bodyLimitBytes, maxRecordsPerRequest: settings.maxRecordsPerRequest, publishConcurrency: settings.publishConcurrency })) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`ops server option ${name} must be an integer of at least 1, got ${value}`);
  }

  const app = Fastify({ logger: settings.logger, bodyLimit: settings.bodyLimitBytes });
  app.setValidatorCompiler(zodValidatorCompiler);
  installErrorHandling(app, { bodyLimitBytes: settings.bodyLimitBytes });

  registerHealthRoutes(app, deps);
  registerIngestRoute(app, deps, { maxRecordsPerRequest: settings.maxRecordsPerRequest, publishConcurrency: settings.publishConcurrency });
  registerEntriesRoute(app, deps.orm);
  registerExceptionsRoute(app, deps.orm);

  return app;
}
