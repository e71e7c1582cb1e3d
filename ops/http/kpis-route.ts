// GET /v1/kpis (CONTRACT §5): the numbers finance and SREs watch, computed from
// the ledger's stored state, never from in-process counters, so they survive
// restarts and agree across instances:
//   - approval-to-posting cycle time per region, p50 and p95
//     (entry_revision.approved_at → erp_outbox.posted_at of its charge);
//   - unbilled approved hours by age since approval: approved time that is on
//     no invoice yet (waiting, in exception, held, or charged and not invoiced);
//   - open exceptions by code;
//   - entry revisions decided per second over the last minute.
// The /metrics KPI gauges are fed from the same function.
import type { MikroORM } from '@mikro-orm/postgresql';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { formatHours } from '../../pipeline/model/money.ts';
import { EXCEPTION_CODES } from '../../pipeline/model/types.ts';
import { errorBodySchema } from './errors.ts';

/** Age buckets of unbilled approved time, in days since approval: [0, 1), [1, 3), [3, 7), [7, ∞). */
export const AGE_BUCKETS = [
  { bucket: 'lt_1d', label: 'less than 1 day' },
  { bucket: '1d_3d', label: '1 to 3 days' },
  { bucket: '3d_7d', label: '3 to 7 days' },
  { bucket: 'gt_7d', label: 'more than 7 days' },
] as const;
export type AgeBucket = (typeof AGE_BUCKETS)[number]['bucket'];

/** The window throughput is measured over. */
export const THROUGHPUT_WINDOW_SECONDS = 60;

export const kpisSchema = z.object({
  generatedAt: z.string(),
  postingCycleTime: z.array(z.object({
    region: z.string(),
    p50Seconds: z.number().describe('Median seconds from approval to the ERP accepting the charge'),
    p95Seconds: z.number(),
    charges: z.number().int().describe('Posted charges measured'),
  })).describe('Approval-to-posting cycle time per region, over every posted charge of an approved entry'),
  unbilledApprovedHours: z.object({
    total: z.string().describe('Hours, two decimals'),
    entries: z.number().int(),
    buckets: z.array(z.object({
      bucket: z.enum(AGE_BUCKETS.map((b) => b.bucket) as [AgeBucket, ...AgeBucket[]]),
      label: z.string(),
      hours: z.string(),
      entries: z.number().int(),
    })),
  }).describe('Approved time on no invoice yet (waiting, in exception, held, or charged and not invoiced), by days since approval'),
  exceptionsOpen: z.object({
    total: z.number().int(),
    byCode: z.record(z.string(), z.number().int()),
  }),
  throughput: z.object({
    windowSeconds: z.number().int(),
    entriesDecided: z.number().int().describe('Entry revisions decided by their project actor in the window'),
    entriesPerSecond: z.number(),
  }),
}).describe('Key performance indicators from the ledger');
export type Kpis = z.infer<typeof kpisSchema>;

const kpisQuery = z.object({
  since: z.iso.datetime({ offset: true, error: 'must be an ISO-8601 instant, e.g. 2026-11-01T00:00:00Z' }).optional()
    .describe('Only charges posted from this instant on count towards the cycle time'),
});

/** Seconds rounded to milliseconds: percentile_cont's doubles carry noise beyond that. */
function seconds(value: number | string | null): number {
  return value === null ? 0 : Math.round(Number(value) * 1000) / 1000;
}

export async function readKpis(orm: MikroORM, options: { since?: string } = {}): Promise<Kpis> {
  const em = orm.em.fork();
  const [cycle, unbilled, exceptions, throughput, [clock]] = await Promise.all([
    em.execute<{ region: string; p50: number | null; p95: number | null; n: number }[]>(
      `select r.region,
              percentile_cont(0.5) within group (order by extract(epoch from (o.posted_at - r.approved_at))::double precision) as p50,
              percentile_cont(0.95) within group (order by extract(epoch from (o.posted_at - r.approved_at))::double precision) as p95,
              count(*)::int as n
         from erp_outbox o join entry_revision r on r.entry_id = o.entry_id and r.revision = o.revision
        where o.kind = 'charge' and o.status = 'posted' and r.approved_at is not null ${options.since ? 'and o.posted_at >= ?::timestamptz' : ''}
        group by r.region order by r.region`,
      options.since ? [options.since] : []),
    em.execute<{ bucket: AgeBucket; hours: string; n: number }[]>(
      `with unbilled as (
         select r.hours_hundredths, now() - coalesce(r.approved_at, r.first_seen_at) as age
           from entry_revision r where r.status = 'approved' and r.stage in ('waiting', 'exception', 'held')
         union all
         select r.hours_hundredths, now() - coalesce(r.approved_at, r.first_seen_at) as age
           from entry_revision r join erp_outbox o on o.entry_id = r.entry_id and o.revision = r.revision and o.kind = 'charge'
          where r.stage = 'charged' and o.invoice_id is null)
       select case when age < interval '1 day' then 'lt_1d' when age < interval '3 days' then '1d_3d'
                   when age < interval '7 days' then '3d_7d' else 'gt_7d' end as bucket,
              sum(hours_hundredths)::text as hours, count(*)::int as n
         from unbilled group by 1`),
    em.execute<{ code: string; n: number }[]>(`select code, count(*)::int as n from billing_exception where status = 'open' group by code`),
    em.execute<{ n: number }[]>(`select count(*)::int as n from entry_revision where decided_at > now() - (? * interval '1 second')`, [THROUGHPUT_WINDOW_SECONDS]),
    em.execute<{ now: string }[]>(`select to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as now`),
  ]);

  const byBucket = new Map(unbilled.map((b) => [b.bucket, b]));
  const buckets = AGE_BUCKETS.map(({ bucket, label }) => {
    const row = byBucket.get(bucket);
    return { bucket, label, hours: formatHours(BigInt(row?.hours ?? 0)), entries: row?.n ?? 0 };
  });
  const byCode: Record<string, number> = Object.fromEntries(EXCEPTION_CODES.map((code) => [code, 0]));
  for (const row of exceptions) byCode[row.code] = row.n;
  const decided = throughput[0]?.n ?? 0;
  return {
    generatedAt: clock?.now ?? new Date().toISOString(),
    postingCycleTime: cycle.map((r) => ({ region: r.region, p50Seconds: seconds(r.p50), p95Seconds: seconds(r.p95), charges: r.n })),
    unbilledApprovedHours: {
      total: formatHours(unbilled.reduce((sum, b) => sum + BigInt(b.hours), 0n)),
      entries: unbilled.reduce((sum, b) => sum + b.n, 0),
      buckets,
    },
    exceptionsOpen: { total: exceptions.reduce((sum, r) => sum + r.n, 0), byCode },
    throughput: { windowSeconds: THROUGHPUT_WINDOW_SECONDS, entriesDecided: decided, entriesPerSecond: Math.round((decided / THROUGHPUT_WINDOW_SECONDS) * 1000) / 1000 },
  };
}

export function registerKpisRoute(app: FastifyInstance, orm: MikroORM): void {
  app.get<{ Querystring: z.infer<typeof kpisQuery> }>('/v1/kpis', {
    schema: {
      summary: 'Key performance indicators',
      description: 'Approval-to-posting cycle time (p50, p95) per region, unbilled approved hours by age bucket, open exceptions by code, and throughput, all from the ledger.',
      tags: ['ops'],
      querystring: kpisQuery,
      response: { 200: kpisSchema, 400: errorBodySchema },
    },
  }, async (request) => readKpis(orm, request.query.since === undefined ? {} : { since: request.query.since }));
}
