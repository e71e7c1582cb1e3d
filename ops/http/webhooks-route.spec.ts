import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { RecordKind } from '../../pipeline/model/types.ts';
import { installErrorHandling } from './errors.ts';
import { zodValidatorCompiler } from './schema-validation.ts';
import { registerWebhooksRoute, signWebhook, verifyWebhookSignature, type WebhookMapping } from './webhooks-route.ts';

const SECRET = 'whsec_test_harvest';
const NOW_MS = Date.parse('2026-03-05T12:00:00Z');
const NOW_S = NOW_MS / 1000;

interface Harness extends AsyncDisposable {
  app: FastifyInstance;
  published: Array<{ kind: RecordKind; record: object; subject: string; msgId: string }>;
  mapped: unknown[];
}

async function setup(): Promise<Harness> {
  const published: Harness['published'] = [];
  const mapped: unknown[] = [];
  const app = Fastify();
  app.setValidatorCompiler(zodValidatorCompiler);
  installErrorHandling(app, { bodyLimitBytes: 1024 * 1024 });
  registerWebhooksRoute(app, {
    webhookSecret: (source) => (source === 'harvest' ? SECRET : undefined),
    async mapWebhook(_source, payload): Promise<WebhookMapping> {
      mapped.push(payload);
      const entry = payload as { id: number; updated_at: string };
      return {
        records: [{
          kind: 'time',
          record: { entryId: `harvest-${entry.id}`, projectId: 'acme-web', region: 'emea' },
          msgId: `harvest:${entry.id}:${entry.updated_at}`,
          sourceId: String(entry.id),
        }],
        skipped: [],
        invalid: [],
      };
    },
    publishIngest: async (kind, record, subject, msgId) => { published.push({ kind, record, subject, msgId }); },
    regionFor: () => 'emea',
    now: () => NOW_MS,
  });
  await app.ready();
  return { app, published, mapped, [Symbol.asyncDispose]: () => app.close() };
}

const body = JSON.stringify({ id: 636709355, updated_at: '2026-03-03T16:47:14Z', hours: 2.11 });

async function post(app: FastifyInstance, source: string, payload: string, signature: string | undefined) {
  const response = await app.inject({
    method: 'POST',
    url: `/v1/webhooks/${source}`,
    headers: { 'content-type': 'application/json', ...(signature === undefined ? {} : { 'x-billstream-signature': signature }) },
    payload,
  });
  return { status: response.statusCode, body: response.json() as Record<string, unknown> };
}

describe('POST /v1/webhooks/{source}', () => {
  it('ingests a correctly signed delivery under its idempotency key, and a replay under the same key', async () => {
    await using h = await setup();
    const signature = signWebhook(SECRET, body, NOW_S - 10);
    const first = await post(h.app, 'harvest', body, signature);
    expect(first).toEqual({ status: 202, body: { accepted: 1, skipped: [], rejected: [] } });
    expect(h.published).toEqual([{ kind: 'time', record: { entryId: 'harvest-636709355', projectId: 'acme-web', region: 'emea' }, subject: 'ingest.time.emea.acme-web', msgId: 'harvest:636709355:2026-03-03T16:47:14Z' }]);
    await post(h.app, 'harvest', body, signature);
    expect(new Set(h.published.map((p) => p.msgId)).size).toBe(1);
  });

  it.each([
    ['no signature', undefined, /no X-Billstream-Signature header/],
    ['a malformed header', 'sha256=abc', /must read t=<unix seconds>,v1=<hex HMAC-SHA256>/],
    ['a signature made with another secret', signWebhook('another-secret', body, NOW_S), /does not match the body/],
    ['a stale timestamp (301 s old)', signWebhook(SECRET, body, NOW_S - 301), /more than 300 s from now/],
    ['a timestamp from the future', signWebhook(SECRET, body, NOW_S + 400), /more than 300 s from now/],
  ])('answers 401 to %s and ingests nothing', async (_what, signature, message) => {
    await using h = await setup();
    const response = await post(h.app, 'harvest', body, signature);
    expect(response.status).toBe(401);
    expect(response.body).toMatchObject({ error: { code: 'unauthorized', message: expect.stringMatching(message) } });
    expect(h.published).toEqual([]);
    expect(h.mapped).toEqual([]);
  });

  it('answers 401 when the body was changed after signing', async () => {
    await using h = await setup();
    const signature = signWebhook(SECRET, body, NOW_S);
    const tampered = body.replace('2.11', '21.1');
    expect((await post(h.app, 'harvest', tampered, signature)).status).toBe(401);
    expect(h.published).toEqual([]);
  });

  it('answers 404 for a source without a secret', async () => {
    await using h = await setup();
    const response = await post(h.app, 'toggl', body, signWebhook('x', body, NOW_S));
    expect(response).toMatchObject({ status: 404, body: { error: { code: 'not_found', message: expect.stringContaining('WEBHOOK_SECRET_TOGGL') } } });
  });

  it('answers 400 to a signed body that is no JSON', async () => {
    await using h = await setup();
    expect((await post(h.app, 'harvest', '{nope', signWebhook(SECRET, '{nope', NOW_S))).status).toBe(400);
  });

  it('accepts a second v1 signature during secret rotation', () => {
    const header = `${signWebhook('old-secret', body, NOW_S)},v1=${signWebhook(SECRET, body, NOW_S).split('v1=')[1]}`;
    expect(verifyWebhookSignature(header, Buffer.from(body), SECRET, NOW_MS)).toEqual({ ok: true });
  });
});
