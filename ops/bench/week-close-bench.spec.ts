import { describe, expect, it } from 'vitest';
import { weekCloseChart, type WeekCloseBenchResult } from './week-close-bench.ts';

/** A 1M run's figures, as far as the chart reads them. */
const run = {
  entries: 1_000_000,
  brokerLimit: { messages: 1_041_686, seconds: 13.5, perSecond: 77_068, cpuSeconds: {} },
  naive: { entries: 10_000, seconds: 15.5, perSecond: 644 },
  billstream: { perSecond: 9_394, peakRssMiB: 502 },
  ratios: { toBrokerLimit: 9_394 / 77_068, toNaive: 9_394 / 644 },
  latencyAtHalfLoad: { p99Ms: 455 },
} as unknown as WeekCloseBenchResult;

describe('weekCloseChart', () => {
  it('draws the three rates as bars scaled to the largest, the naive one still visible', () => {
    const svg = weekCloseChart(run);
    expect(svg).toContain('width="420" height="28" fill="#8a8f98"');
    expect(svg).toContain('>77,068/s<');
    expect(svg).toContain('width="51" height="28" fill="#2f6fdf"');
    expect(svg).toContain('>9,394/s<');
    expect(svg).toContain('width="4" height="28" fill="#d9822b"');
    expect(svg).toContain('>644/s<');
  });

  it('says under the bars what each target came to, a miss as plainly as a hit', () => {
    const svg = weekCloseChart(run);
    expect(svg).toContain('billstream / broker limit 0.122 (target ≥ 0.5: missed)');
    expect(svg).toContain('billstream / naive 14.6× (target ≥ 10×: met)');
    expect(svg).toContain('p99 at half load 455 ms (target under 2,000 ms: met), peak RSS 502 MiB (target under 512 MiB: met)');
  });

  it('is well-formed: no bare < or & in its text', () => {
    const text = weekCloseChart(run).replace(/<\/?[a-z][^>]*>/g, '');
    expect(text).not.toMatch(/[<&]/);
  });
});
