import type { Counter } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createTestLedger } from '../test/support/database.ts';
import { BillstreamMetrics } from './metrics.ts';

describe('BillstreamMetrics.observeRelayed', () => {
  it('counts relayed messages by subject family, however the families follow each other', async () => {
    await using ledger = await createTestLedger();
    const metrics = new BillstreamMetrics({ orm: ledger.orm, activeActors: () => 0, consumers: () => Promise.resolve([]) }, { processMetrics: false });
    metrics.observeRelayed([
      { subject: 'enriched.time.amer.p-1' }, { subject: 'enriched.time.emea.p-2' }, { subject: 'billing.posted.amer.p-1' },
      { subject: 'enriched.time.amer.p-3' }, { subject: 'exceptions.rate_missing.amer.p-1' }, { subject: 'enrichedx.time.amer.p-1' },
    ]);
    metrics.observeRelayed([{ subject: 'billing.posted.emea.p-2' }, { subject: 'billing.posted.emea.p-2' }]);
    const published = metrics.registry.getSingleMetric('billstream_nats_published_total') as Counter<'family'>;
    const byFamily = Object.fromEntries((await published.get()).values.map((v) => [v.labels.family, v.value]));
    expect(byFamily).toEqual({ enriched: 3, billing: 3, exceptions: 1, enrichedx: 1 });
  });
});
