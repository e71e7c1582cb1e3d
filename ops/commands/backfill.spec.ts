import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { STREAMS } from '../../connectors/nats/topology.ts';
import { fixture } from '../../connectors/sources/fixtures/load.ts';
import { startFixtureServer } from '../../connectors/sources/fixtures/fixture-server.ts';
import { openTemplateBucket, TemplateStore } from '../../connectors/templates/template-store.ts';
import { startNatsServer } from '../../test/support/nats-server.ts';
import { renderProgress, runBackfill } from './backfill.ts';

const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
  vi.restoreAllMocks();
});

describe('billstream backfill', () => {
  it('renders a bar with an ETA when the total is known, a count and rate otherwise', () => {
    expect(renderProgress({ done: 50, doneAtStart: 0, total: 200, elapsedMs: 10_000, width: 10 })).toBe('[###-------]  25%  50/200 entries  5.0/s  ETA 30s');
    expect(renderProgress({ done: 150, doneAtStart: 100, total: 200, elapsedMs: 10_000, width: 10 })).toBe('[########--]  75%  150/200 entries  5.0/s  ETA 10s');
    expect(renderProgress({ done: 42, doneAtStart: 0, elapsedMs: 2000 })).toBe('42 entries  21/s  2s elapsed');
  });

  it('reads a Harvest date range into ingest, and a second run publishes nothing new', async () => {
    await using nats = await startNatsServer();
    const page = fixture<{ time_entries: Array<Record<string, unknown>>; links: Record<string, unknown> }>('harvest-time-entries.json');
    await using harvest = await startFixtureServer((url) => {
      expect(url.searchParams.get('from')).toBe('2026-03-01');
      expect(url.searchParams.get('to')).toBe('2026-03-31');
      return { body: { ...page, links: { ...page.links, next: null } } };
    });
    const nc = await connect({ servers: nats.url });
    try {
      await new TemplateStore(await openTemplateBucket(nc)).put(fixture('templates/harvest.json'));
      process.env.NATS_URL = nats.url;
      process.env.DATABASE_URL = 'postgres://billstream@127.0.0.1:1/none';
      process.env.HARVEST_BASE_URL = `${harvest.origin}/v2`;
      process.env.HARVEST_TOKEN = 'token';
      process.env.HARVEST_ACCOUNT_ID = '4711';
      const lines: string[] = [];
      vi.spyOn(console, 'error').mockImplementation((line: unknown) => { lines.push(String(line)); });
      vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

      expect(await runBackfill(['--source', 'harvest', '--from', '2026-03-01', '--to', '2026-03-31'])).toBe(0);
      expect(lines.join('\n')).toMatch(/complete: 4 entries read in 1 pages, 2 published, 1 skipped, 1 not mapped/);
      expect(lines.join('\n')).toMatch(/636708725: projectId: "project\.id" "14308069" is not in the lookup table/);
      const jsm = await jetstreamManager(nc);
      const subjects = async () => (await jsm.streams.info(STREAMS.ingest, { subjects_filter: 'ingest.>' })).state;
      expect((await subjects()).messages).toBe(2);
      expect(Object.keys((await subjects()).subjects ?? {})).toEqual(['ingest.time.emea.acme-web']);

      expect(await runBackfill(['--source', 'harvest', '--from', '2026-03-01', '--to', '2026-03-31'])).toBe(0);
      // Same idempotency keys: JetStream kept one message each.
      expect((await subjects()).messages).toBe(2);
    } finally {
      await nc.close();
    }
  });

  it('refuses arguments it cannot use', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(await runBackfill(['--source', 'paychex', '--from', '2026-01-01'])).toBe(2);
    expect(await runBackfill(['--source', 'harvest', '--from', '2026-02-30'])).toBe(2);
    expect(await runBackfill(['--source', 'harvest', '--from', '2026-03-01', '--to', '2026-02-01'])).toBe(2);
    expect(await runBackfill(['--source', 'harvest', '--file', 'x.csv'])).toBe(2);
  });
});
