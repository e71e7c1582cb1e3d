import { connect, type NatsConnection } from '@nats-io/transport-node';
import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { fixture } from '../connectors/sources/fixtures/load.ts';
import { openTemplateBucket, TemplateStore } from '../connectors/templates/template-store.ts';
import { startNatsServer } from '../test/support/nats-server.ts';
import { ingestSubject, startConnectorHost, type ConnectorHost } from './connector-host.ts';
import { installErrorHandling } from './http/errors.ts';
import { zodValidatorCompiler } from './http/schema-validation.ts';
import { registerWebhooksRoute, signWebhook } from './http/webhooks-route.ts';

interface Setup extends AsyncDisposable {
  nc: NatsConnection;
  host: ConnectorHost;
  app: FastifyInstance;
  published: Array<{ record: Record<string, unknown>; subject: string; msgId: string }>;
  send(source: string, payload: unknown, options?: { secret?: string; at?: number }): Promise<{ status: number; body: Record<string, unknown> }>;
}

const SECRETS = { WEBHOOK_SECRET_TOGGL: 'toggl-secret', WEBHOOK_SECRET_CLOCKIFY: 'clockify-secret' };

async function setup(): Promise<Setup> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const store = new TemplateStore(await openTemplateBucket(nc));
  await store.put(fixture('templates/toggl.json'));
  await store.put(fixture('templates/clockify.json'));
  const host = await startConnectorHost({ nc, log: () => undefined, env: SECRETS });
  const published: Setup['published'] = [];
  const app = Fastify();
  app.setValidatorCompiler(zodValidatorCompiler);
  installErrorHandling(app, { bodyLimitBytes: 1024 * 1024 });
  registerWebhooksRoute(app, {
    ...host.webhooks,
    publishIngest: async (_kind, record, subject, msgId) => { published.push({ record: record as Record<string, unknown>, subject, msgId }); },
    regionFor: () => { throw new Error('no project view in this test'); },
  });
  await app.ready();
  return {
    nc, host, app, published,
    async send(source, payload, options = {}) {
      const text = JSON.stringify(payload);
      const secret = options.secret ?? (SECRETS as Record<string, string>)[`WEBHOOK_SECRET_${source.toUpperCase()}`] ?? '';
      const response = await app.inject({
        method: 'POST', url: `/v1/webhooks/${source}`, payload: text,
        headers: { 'content-type': 'application/json', 'x-billstream-signature': signWebhook(secret, text, options.at ?? Math.floor(Date.now() / 1000)) },
      });
      return { status: response.statusCode, body: response.json() as Record<string, unknown> };
    },
    async [Symbol.asyncDispose]() {
      await app.close();
      await host.stop();
      await nc.close();
      await nats[Symbol.asyncDispose]();
    },
  };
}

const toggl = fixture<Array<Record<string, unknown>>>('toggl-time-entries.json');
const clockify = fixture<Array<Record<string, unknown>>>('clockify-time-entries.json');

describe('webhooks through the connector host', () => {
  it('maps a Toggl webhook envelope with the template in KV, and a deleted event to a rejected revision', async () => {
    await using env = await setup();
    const created = { event_id: 1, created_at: '2026-03-03T01:02:04Z', metadata: { action: 'created', model: 'time_entry' }, payload: toggl[0] };
    expect(await env.send('toggl', created)).toEqual({ status: 202, body: { accepted: 1, skipped: [], rejected: [] } });
    expect(env.published[0]).toMatchObject({ subject: 'ingest.time.emea.acme-web', msgId: 'toggl:3340000001:2026-03-03T01:02:03Z', record: { entryId: 'toggl-3340000001', status: 'approved', hours: '1.50' } });

    const deleted = { event_id: 2, created_at: '2026-03-06T09:00:00Z', metadata: { action: 'deleted', model: 'time_entry' }, payload: toggl[0] };
    await env.send('toggl', deleted);
    expect(env.published[1]).toMatchObject({ msgId: 'toggl:3340000001:2026-03-06T09:00:00Z:deleted', record: { status: 'rejected' } });
    expect(Number(env.published[1]?.record.revision)).toBeGreaterThan(Number(env.published[0]?.record.revision));

    // A running entry and one without a project are answered, not ingested.
    const answer = await env.send('toggl', [toggl[1], toggl[4]]);
    expect(answer.body).toMatchObject({ accepted: 0, skipped: [{ sourceId: '3340000002' }], rejected: [{ sourceId: '3340000005' }] });
  });

  it('gives a replayed Clockify delivery the same revision and key, and a changed one a higher revision', async () => {
    await using env = await setup();
    await env.send('clockify', clockify[0]);
    await env.send('clockify', clockify[0]);
    expect(env.published).toHaveLength(2);
    expect(env.published[1]?.msgId).toBe(env.published[0]?.msgId);
    expect(env.published[1]?.record.revision).toBe(env.published[0]?.record.revision);

    await env.send('clockify', { ...clockify[0], description: 'Sprint planning and review' });
    expect(env.published[2]?.msgId).not.toBe(env.published[0]?.msgId);
    expect(Number(env.published[2]?.record.revision)).toBeGreaterThan(Number(env.published[0]?.record.revision));
  });

  it('ingests nothing for a stale or forged delivery', async () => {
    await using env = await setup();
    expect((await env.send('toggl', toggl[0], { at: Math.floor(Date.now() / 1000) - 3600 })).status).toBe(401);
    expect((await env.send('toggl', toggl[0], { secret: 'guess' })).status).toBe(401);
    expect(env.published).toEqual([]);
  });

  it('routes records under their own region, global kinds under global, others by their project', () => {
    expect(ingestSubject('time', { projectId: 'p-1', region: 'amer' }, () => 'emea')).toBe('ingest.time.amer.p-1');
    expect(ingestSubject('ratecard', { contractId: 'C-1' }, () => undefined)).toBe('ingest.ratecard.global.C-1');
    expect(ingestSubject('assignment', { projectId: 'p-1' }, () => 'emea')).toBe('ingest.assignment.emea.p-1');
    expect(() => ingestSubject('time', { projectId: 'p-1' }, () => undefined)).toThrow(/map a "region" in the template/);
  });
});
