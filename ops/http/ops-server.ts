// The ops HTTP server of CONTRACT §5: ingest over HTTP, the entry lifecycle, the
// exception workbench, billing close and project billing, KPIs, health and
// metrics, and the OpenAPI document of all of them at /openapi.json. It reads
// the ledger through the ORM and reaches NATS, the pipeline and the ERP through
// injected functions, so it holds no connection of its own and tests run it
// against a database alone.
import type { MikroORM } from '@mikro-orm/postgresql';
import Fastify, { type FastifyInstance } from 'fastify';
import type { CloseReport } from '../../pipeline/invoicing.ts';
import { recordSchemas } from '../../pipeline/model/records.ts';
import type { RecordKind } from '../../pipeline/model/types.ts';
import { registerBillingRoutes } from './billing-route.ts';
import { registerEntriesRoute } from './entries-route.ts';
import { installErrorHandling } from './errors.ts';
import { registerExceptionsRoute } from './exceptions-route.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { registerIngestRoute } from './ingest-route.ts';
import { registerKpisRoute } from './kpis-route.ts';
import { registerWebhooksRoute, type WebhookDeps } from './webhooks-route.ts';
import { installOpenApi } from './openapi.ts';
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
  /** Re-runs a stored time-entry revision through enrichment and its project's actor (an exception replay); false when it is not stored. */
  reevaluate(entryId: string, revision: number): Promise<boolean>;
  /** Invoices a period (POST /v1/billing/close): pipeline/invoicing.ts's close with the ERP wired in. */
  closeBillingPeriod(periodEnd: string): Promise<CloseReport>;
  /** Called after a replay put rejected ERP documents back to pending (wakes the poster). */
  onRequeued?: () => void;
  /** OPS_TOKEN: when set (non-empty), replay, dismiss and close require `Authorization: Bearer <token>`. */
  opsToken?: string;
  /** Observes each answered ingest request (metrics). */
  onIngested?: (kind: RecordKind, accepted: number, rejected: number) => void;
  /** POST /v1/webhooks/{source}: the secrets and the mapping of time-capture sources (ops/connector-host.ts); the route is off without them. */
  webhooks?: Pick<WebhookDeps, 'webhookSecret' | 'mapWebhook'>;
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
  installOpenApi(app, {
    title: 'billstream ops API',
    version: '1',
    description: 'Ingest, entry lifecycle, exception workbench, billing close, KPIs, health and metrics of billstream (CONTRACT §5). '
      + 'Errors answer {error: {code, message, details}}; list routes answer {items, nextCursor} and take limit and cursor.',
  }, {
    ConsultantRecord: recordSchemas.consultant, ProjectRecord: recordSchemas.project, AssignmentRecord: recordSchemas.assignment,
    RatecardRecord: recordSchemas.ratecard, TimeRecord: recordSchemas.time, MilestoneRecord: recordSchemas.milestone,
  });

  registerHealthRoutes(app, deps);
  registerIngestRoute(app, deps, { maxRecordsPerRequest: settings.maxRecordsPerRequest, publishConcurrency: settings.publishConcurrency });
  registerEntriesRoute(app, deps.orm);
  registerExceptionsRoute(app, deps);
  registerBillingRoutes(app, deps);
  registerKpisRoute(app, deps.orm);
  if (deps.webhooks) registerWebhooksRoute(app, { ...deps.webhooks, publishIngest: deps.publishIngest, regionFor: deps.regionFor });

  return app;
}
