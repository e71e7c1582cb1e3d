// The connectors inside a running billstream, on real NATS, PostgreSQL and the
// ERP sandbox: the legacy ERP routing wired by LEGACY_ERP_DIR, and time
// entries pushed through POST /v1/webhooks/{source} and mapped by a template in KV.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KV_BUCKETS, openBucket } from '../connectors/kv-store.ts';
import type { LegacyManifest } from '../connectors/legacy-erp/file-sink.ts';
import { putRoutingRules } from '../connectors/legacy-erp/routing.ts';
import { openTemplateBucket, TemplateStore } from '../connectors/templates/template-store.ts';
import { signWebhook } from '../ops/http/webhooks-route.ts';
import { startHarness, type Harness } from './support/billstream.ts';
import { assignment, consultant, entry, project, ratecards, subjects } from './support/fixtures.ts';

let h: Harness;
let legacyDir: string;
const SECRET = 'harvest-webhook-secret';

async function legacyLines(): Promise<Array<{ externalId: string; documentId: string; amount: string }>> {
  const lines: Array<{ externalId: string; documentId: string; amount: string }> = [];
  for (const file of await readdir(legacyDir)) {
    if (!file.endsWith('.manifest.json')) continue;
    const manifest = JSON.parse(await readFile(join(legacyDir, file), 'utf8')) as LegacyManifest;
    const csv = (await readFile(join(legacyDir, manifest.file), 'utf8')).trim().split('\r\n').slice(1);
    for (const row of csv) {
      const [documentId = '', externalId = '', , , , , , , , , , , , amount = ''] = row.split(',');
      lines.push({ externalId, documentId, amount });
    }
  }
  return lines;
}

describe('connectors in a running billstream', () => {
  beforeAll(async () => {
    legacyDir = await mkdtemp(join(tmpdir(), 'billstream-legacy-erp-'));
    h = await startHarness({ LEGACY_ERP_DIR: legacyDir, WEBHOOK_SECRET_HARVEST: SECRET, REFERENCE_GRACE_SECONDS: '30' });
    // Until 2026-11-15 the US entity still books in its legacy ERP.
    await putRoutingRules(await openBucket(h.client, KV_BUCKETS.templates, { history: 16 }), { version: 1, rules: [{ legalEntity: 'le-us', cutover: '2026-11-15' }] });
    await new TemplateStore(await openTemplateBucket(h.client)).put({
      name: 'harvest', version: 1, kind: 'time', source: 'harvest',
      fields: {
        projectId: { path: 'project.id', lookup: { 501: 'p-1' } },
        consultantId: { path: 'user.id', lookup: { 77: 'c-1' } },
        taskId: { path: 'task.id', lookup: { 9: 't-1' } },
      },
    });
    await h.startRuntime();
    await h.publish(subjects.project(), project);
    await h.publish(subjects.consultant(), consultant);
    for (const card of ratecards) await h.publish(subjects.ratecard(), card);
    await h.publish(subjects.assignment(), assignment);
  });
  afterAll(async () => {
    await h?.[Symbol.asyncDispose]();
    if (legacyDir) await rm(legacyDir, { recursive: true, force: true });
  });

  it('books work before the cutover in the legacy ERP\'s batch files and later work in the cloud ERP, none in both', async () => {
    await h.publish(subjects.time(), entry({ entryId: 'e-legacy', workDate: '2026-11-10', hours: 2 }));
    await h.publish(subjects.time(), entry({ entryId: 'e-cloud', workDate: '2026-11-20', hours: 3 }));
    const legacy = await h.waitFor(async () => {
      const lines = await legacyLines();
      return lines.some((l) => l.externalId === 'e-legacy:1:charge') ? lines : null;
    }, 30_000, 'the legacy batch');
    const cloud = await h.waitFor(async () => {
      const docs = await h.erpDocuments('p-1');
      return docs.some((d) => d.external_id === 'e-cloud:1:charge') ? docs : null;
    }, 30_000, 'the cloud charge');
    expect(legacy.find((l) => l.externalId === 'e-legacy:1:charge')).toMatchObject({ amount: '300.00', documentId: expect.stringMatching(/^legacy:/) });
    expect(cloud.map((d) => d.external_id)).not.toContain('e-legacy:1:charge');
    expect(legacy.map((l) => l.externalId)).not.toContain('e-cloud:1:charge');
    // The ledger holds the legacy documentId, as it would the cloud ERP's. The batch
    // file is written during the post, before the poster's transaction marks the row
    // posted, so the ledger is read once that transaction has committed.
    const posted = await h.waitFor(async () => {
      const { rows } = await h.sql.query<{ document_id: string }>(`select document_id from erp_outbox where external_id = 'e-legacy:1:charge' and status = 'posted'`);
      return rows[0];
    }, 30_000, 'the legacy charge marked posted in the ledger');
    expect(posted.document_id).toBe(legacy.find((l) => l.externalId === 'e-legacy:1:charge')?.documentId);
  });

  it('ingests a signed Harvest webhook through its template and charges it, and refuses a stale one', async () => {
    const harvestEntry = {
      id: 4242, spent_date: '2026-11-18', hours: 1.25, is_closed: true, is_running: false, updated_at: '2026-11-19T08:00:00Z',
      user: { id: 77 }, project: { id: 501 }, task: { id: 9 }, notes: 'Pushed by Harvest',
    };
    const body = JSON.stringify(harvestEntry);
    const url = `${h.runtime?.httpUrl ?? ''}/v1/webhooks/harvest`;
    const stale = await fetch(url, {
      method: 'POST', body, headers: { 'content-type': 'application/json', 'x-billstream-signature': signWebhook(SECRET, body, Math.floor(Date.now() / 1000) - 600) },
    });
    expect(stale.status).toBe(401);

    const response = await fetch(url, {
      method: 'POST', body, headers: { 'content-type': 'application/json', 'x-billstream-signature': signWebhook(SECRET, body, Math.floor(Date.now() / 1000)) },
    });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ accepted: 1, skipped: [], rejected: [] });
    const docs = await h.waitFor(async () => {
      const found = (await h.erpDocuments('p-1')).filter((d) => d.entry_id === 'harvest-4242');
      return found.length > 0 ? found : null;
    }, 30_000, 'the webhook entry charged');
    // 1.25 h × 160.00 (the card from 2026-11-16)
    expect(docs.map((d) => [d.kind, d.amount])).toEqual([['charge', '200.00']]);
  });
});
