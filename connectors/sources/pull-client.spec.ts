import { connect, type NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { startNatsServer, type TestNatsServer } from '../../test/support/nats-server.ts';
import { isConnectorUnavailable } from '../connector-errors.ts';
import { parseConnectorConfig } from '../connector-spec.ts';
import { fixture, fixtureIds } from './fixtures/load.ts';
import { startFixtureServer, type FixtureReply } from './fixtures/fixture-server.ts';
import { clockifyConnector, harvestConnector, kimaiConnector, openSourcePull, togglConnector } from './source-connectors.ts';

interface Published {
  kind: string;
  record: Record<string, unknown>;
  msgId: string;
}

interface Setup extends AsyncDisposable {
  nats: TestNatsServer;
  nc: NatsConnection;
  published: Published[];
  publish(kind: string, record: Record<string, unknown>, msgId: string): Promise<void>;
}

async function setup(): Promise<Setup> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const published: Published[] = [];
  return {
    nats, nc, published,
    async publish(kind, record, msgId) {
      published.push({ kind, record, msgId });
    },
    async [Symbol.asyncDispose]() {
      await nc.close();
      await nats[Symbol.asyncDispose]();
    },
  };
}

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const harvestTemplate = fixture<{ time_entries: Array<Record<string, unknown>> }>('harvest-time-entries.json').time_entries[0] as Record<string, unknown>;

/** Six Harvest entries, updated a minute apart, served two per page through cursor links. */
function harvestEntries(): Array<Record<string, unknown>> {
  return Array.from({ length: 6 }, (_, i) => ({
    ...harvestTemplate,
    id: 900_000 + i,
    is_running: false,
    updated_at: `2026-03-0${2 + Math.floor(i / 2)}T10:0${i}:00Z`,
  }));
}

function harvestPage(origin: string, url: URL, entries: Array<Record<string, unknown>>): FixtureReply {
  const page = Number((url.searchParams.get('cursor') ?? 'p1').slice(1));
  const slice = entries.slice((page - 1) * 2, page * 2);
  const next = page * 2 < entries.length ? `${origin}/v2/time_entries?cursor=p${page + 1}&per_page=2&ref=next_cursor` : null;
  return { body: { time_entries: slice, per_page: 2, total_entries: entries.length, total_pages: 3, page, links: { next } } };
}

const harvestConfig = (origin: string, extra: Record<string, unknown> = {}) =>
  parseConnectorConfig(harvestConnector, {
    connection: { baseUrl: `${origin}/v2` },
    auth: { type: 'token', token: 'secret-token' },
    accountId: '4711',
    perPage: 2,
    rateLimit: { ratePerSecond: 200, burst: 10 },
    retry: { attempts: 4, initialBackoffMs: 10, maxBackoffMs: 50 },
    ...extra,
  });

describe('pull clients', () => {
  it('a pull killed mid-run resumes at the first page it had not published, and the next run is incremental', async () => {
    await using env = await setup();
    const entries = harvestEntries();
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => { release = resolve; });
    let holdPage2 = true;
    await using server = await startFixtureServer((url, _req, origin) => {
      const reply = harvestPage(origin, url, entries);
      return holdPage2 && url.searchParams.get('cursor') === 'p2' ? { ...reply, hold: held } : reply;
    });
    const ids = fixtureIds('harvest');
    const deps = { nats: env.nc, publish: env.publish, template: () => ids };

    const first = await openSourcePull('harvest', harvestConfig(server.origin), deps);
    const running = first.run();
    await waitFor(() => server.requests.some((r) => r.url.includes('cursor=p2')));
    await first.stop(); // the kill: page 2 is in flight
    const interrupted = await running;
    expect(interrupted).toMatchObject({ complete: false, pages: 1, published: 2 });
    release();
    holdPage2 = false;

    const before = server.requests.length;
    const second = await openSourcePull('harvest', harvestConfig(server.origin), deps);
    const resumed = await second.run();
    expect(resumed).toMatchObject({ complete: true, resumed: true, pages: 3, published: 6, entries: 6, total: 6 });
    expect(server.requests[before]?.url).toContain('cursor=p2');
    expect(server.requests[before]?.headers['harvest-account-id']).toBe('4711');
    expect(server.requests[before]?.headers.authorization).toBe('Bearer secret-token');
    expect(env.published.map((p) => p.msgId).sort()).toEqual(entries.map((e) => `harvest:${String(e.id)}:${String(e.updated_at)}`).sort());
    expect(resumed.watermark).toBe('2026-03-04T10:05:00Z');

    const third = await openSourcePull('harvest', harvestConfig(server.origin), deps);
    const firstOfThird = server.requests.length;
    await third.run();
    expect(new URL(server.requests[firstOfThird]?.url ?? '', server.origin).searchParams.get('updated_since')).toBe('2026-03-04T10:05:00Z');
  });

  it('waits out a 429 for as long as Retry-After says', async () => {
    await using env = await setup();
    const entries = harvestEntries().slice(0, 2);
    let throttled = 0;
    await using server = await startFixtureServer((url, _req, origin) => {
      if (throttled++ === 0) return { status: 429, headers: { 'retry-after': '1' }, body: { message: 'Too Many Requests' } };
      return harvestPage(origin, url, entries);
    });
    const ids = fixtureIds('harvest');
    const pull = await openSourcePull('harvest', harvestConfig(server.origin), { nats: env.nc, publish: env.publish, template: () => ids });
    const started = performance.now();
    const result = await pull.run();
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);
    expect(result).toMatchObject({ complete: true, published: 2 });
    expect(server.requests).toHaveLength(2);
  });

  it('gives up on a Retry-After beyond its limit, keeping the cursor, and the next client picks up there', async () => {
    await using env = await setup();
    const entries = harvestEntries();
    let refuse = true;
    await using server = await startFixtureServer((url, _req, origin) => {
      if (refuse && url.searchParams.get('cursor') === 'p3') return { status: 429, headers: { 'retry-after': '3600' } };
      return harvestPage(origin, url, entries);
    });
    const ids = fixtureIds('harvest');
    const deps = { nats: env.nc, publish: env.publish, template: () => ids };
    const first = await openSourcePull('harvest', harvestConfig(server.origin, { retry: { maxRetryAfterMs: 1000 } }), deps);
    const failure = await first.run().catch((err: unknown) => err);
    expect(isConnectorUnavailable(failure)).toBe(true);
    expect(env.published).toHaveLength(4);

    refuse = false;
    const before = server.requests.length;
    const second = await openSourcePull('harvest', harvestConfig(server.origin), deps);
    expect(await second.run()).toMatchObject({ complete: true, resumed: true, published: 6 });
    expect(server.requests[before]?.url).toContain('cursor=p3');
  });

  it('keeps revisions of unchanged Kimai records across runs and raises them for changed ones (revision ledger in KV)', async () => {
    await using env = await setup();
    const sheets = fixture<Array<Record<string, unknown>>>('kimai-timesheets.json').filter((s) => s.end !== null && s.project === 2);
    await using server = await startFixtureServer((url) => {
      const page = Number(url.searchParams.get('page') ?? '1');
      const size = Number(url.searchParams.get('size') ?? '250');
      const totalPages = Math.ceil(sheets.length / size);
      if (page > totalPages) return { status: 404, body: { code: 404, message: 'Not Found' } };
      return {
        headers: { 'x-page': String(page), 'x-total-count': String(sheets.length), 'x-total-pages': String(totalPages), 'x-per-page': String(size) },
        body: sheets.slice((page - 1) * size, page * size),
      };
    });
    const ids = fixtureIds('kimai');
    const config = parseConnectorConfig(kimaiConnector, {
      connection: { baseUrl: `${server.origin}/api` }, auth: { type: 'token', token: 'k' }, pageSize: 1, rateLimit: { ratePerSecond: 200, burst: 10 },
    });
    const deps = { nats: env.nc, publish: env.publish, template: () => ids };

    const run1 = await (await openSourcePull('kimai', config, deps)).run();
    expect(run1).toMatchObject({ complete: true, pages: 2, published: 2, total: 2 });
    const firstKeys = env.published.map((p) => p.msgId);

    const run2 = await (await openSourcePull('kimai', config, deps)).run();
    expect(run2.published).toBe(2);
    expect(env.published.slice(2).map((p) => p.msgId)).toEqual(firstKeys);
    expect(env.published.slice(2).map((p) => p.record.revision)).toEqual(env.published.slice(0, 2).map((p) => p.record.revision));
    expect(server.requests.some((r) => new URL(r.url, server.origin).searchParams.has('modified_after'))).toBe(true);

    (sheets[0] as Record<string, unknown>).description = 'Workshop, extended';
    await (await openSourcePull('kimai', config, deps)).run();
    const changed = env.published.slice(4).find((p) => p.record.entryId === 'kimai-101');
    const original = env.published.find((p) => p.record.entryId === 'kimai-101');
    expect(changed?.msgId).not.toBe(original?.msgId);
    expect(Number(changed?.record.revision)).toBeGreaterThan(Number(original?.record.revision));
  });
  it('pages Clockify per user with its X-Api-Key, over the lookback window', async () => {
    await using env = await setup();
    const entries = fixture<Array<Record<string, unknown>>>('clockify-time-entries.json');
    const byUser: Record<string, Array<Record<string, unknown>>> = { u1: [entries[0], entries[3], entries[1]] as Array<Record<string, unknown>>, u2: [] };
    await using server = await startFixtureServer((url) => {
      const user = url.pathname.split('/')[6] as string;
      const page = Number(url.searchParams.get('page'));
      const size = Number(url.searchParams.get('page-size'));
      return { body: (byUser[user] ?? []).slice((page - 1) * size, page * size) };
    });
    const config = parseConnectorConfig(clockifyConnector, {
      connection: { baseUrl: `${server.origin}/api/v1` }, auth: { type: 'token', token: 'ck', header: 'X-Api-Key', scheme: '' },
      workspaceId: 'ws1', userIds: ['u1', 'u2'], pageSize: 2, rateLimit: { ratePerSecond: 200, burst: 10 },
    });
    const ids = fixtureIds('clockify');
    const result = await (await openSourcePull('clockify', config, { nats: env.nc, publish: env.publish, template: () => ids })).run();
    expect(result).toMatchObject({ complete: true, pages: 3, entries: 3, published: 2, skipped: 1 });
    expect(server.requests.map((r) => new URL(r.url, server.origin)).map((u) => `${u.pathname} page ${u.searchParams.get('page')}`)).toEqual([
      '/api/v1/workspaces/ws1/user/u1/time-entries page 1',
      '/api/v1/workspaces/ws1/user/u1/time-entries page 2',
      '/api/v1/workspaces/ws1/user/u2/time-entries page 1',
    ]);
    expect(server.requests[0]?.headers['x-api-key']).toBe('ck');
    expect(server.requests[0]?.headers.authorization).toBeUndefined();
    const start = Date.parse(new URL(server.requests[0]?.url ?? '', server.origin).searchParams.get('start') ?? '');
    expect(Date.now() - start).toBeGreaterThan(13 * 86_400_000);
  });

  it('asks Toggl for what changed since the last run, deleted entries included', async () => {
    await using env = await setup();
    const entries = fixture<Array<Record<string, unknown>>>('toggl-time-entries.json');
    await using server = await startFixtureServer(() => ({ body: entries }));
    const config = parseConnectorConfig(togglConnector, {
      connection: { baseUrl: `${server.origin}/api/v9` }, auth: { type: 'basic', username: 'tok', password: 'api_token' }, rateLimit: { ratePerSecond: 200, burst: 10 },
    });
    const ids = fixtureIds('toggl');
    const deps = { nats: env.nc, publish: env.publish, template: () => ids };
    const first = await (await openSourcePull('toggl', config, deps)).run();
    expect(first).toMatchObject({ complete: true, published: 3, skipped: 1, watermark: '2026-03-05T12:00:01Z' });
    expect(first.invalid.map((i) => i.sourceId)).toEqual(['3340000005']);
    await (await openSourcePull('toggl', config, deps)).run();
    expect(new URL(server.requests[1]?.url ?? '', server.origin).searchParams.get('since')).toBe(String(Date.parse('2026-03-05T12:00:01Z') / 1000));
  });
});
