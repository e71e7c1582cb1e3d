// Liveness, readiness and metrics (CONTRACT §5): what an orchestrator and a
// Prometheus scraper ask of a running billstream.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { z } from 'zod';
import type { ResponseDoc } from './openapi.ts';

export interface HealthDeps {
  readiness(): Promise<{ ready: boolean; checks: Record<string, boolean> }>;
  metricsText?: () => Promise<string>;
}

/** The Prometheus text exposition format, version 0.0.4. */
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function registerHealthRoutes(app: FastifyInstance, deps: HealthDeps): void {
  // Liveness answers from the event loop alone: a slow database must make the
  // process unready, not get it restarted.
  app.get('/healthz', {
    schema: { summary: 'Liveness', tags: ['ops'], response: { 200: z.object({ status: z.literal('ok') }) } },
  }, async () => ({ status: 'ok' }));

  const readiness = z.object({ status: z.enum(['ready', 'not_ready']), checks: z.record(z.string(), z.boolean()).describe('Each dependency checked: NATS, PostgreSQL, the ingest consumers') });
  app.get('/readyz', {
    schema: { summary: 'Readiness', description: '503 while any dependency is unavailable.', tags: ['ops'], response: { 200: readiness, 503: readiness } },
  }, async (request, reply) => {
    let state: { ready: boolean; checks: Record<string, boolean> };
    try {
      state = await deps.readiness();
    } catch (err) {
      request.log.warn({ err }, 'readiness check failed');
      state = { ready: false, checks: {} };
    }
    return reply.code(state.ready ? 200 : 503).send({ status: state.ready ? 'ready' : 'not_ready', checks: state.checks });
  });

  let metricsText = deps.metricsText;
  if (metricsText === undefined) {
    // A private registry: the process-wide default one may already carry the
    // default metrics (another server in the same process, a test), and
    // registering them twice throws.
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'billstream_' });
    metricsText = () => registry.metrics();
  }
  const text = metricsText;
  app.get('/metrics', {
    schema: {
      summary: 'Prometheus metrics',
      description: 'Text exposition format 0.0.4: stage message counters, consumer pending and ack-pending, ERP request latency and errors, outbox depth, active actors, exceptions, posting SLA, and the KPI gauges.',
      tags: ['ops'],
      response: { 200: { description: 'Prometheus text', mediaType: PROMETHEUS_CONTENT_TYPE } satisfies ResponseDoc },
    },
  }, async (_request, reply) => reply.type(PROMETHEUS_CONTENT_TYPE).send(await text()));
}
