import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectToPrivateNats, type PrivateNats } from '../../test/support/nats-server.ts';
import { startConnector } from '../connector-spec.ts';
import { putJson } from '../kv-store.ts';
import { masterDataConnector } from './master-data-connector.ts';
import { isTemplateVersionError, openTemplateBucket, TemplateRegistry, TemplateStore, templateKey } from './template-store.ts';

function setup(): Promise<PrivateNats> {
  return connectToPrivateNats('billstream-templates-');
}

const consultants = (version: number, currency: string) => ({
  name: 'consultants',
  version,
  kind: 'consultant',
  fields: {
    consultantId: { path: 'login' },
    homeRegion: { path: 'office', lookup: { Berlin: 'emea', Boston: 'amer' } },
    costRate: { path: 'cost', money: { decimal: ',' } },
    currency: { const: currency },
  },
});

async function waitFor<T>(check: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('templates in KV', () => {
  it('a template edited in KV changes the mapping of the next file without a restart', async () => {
    await using env = await setup();
    const store = new TemplateStore(await openTemplateBucket(env.nc));
    await store.put(consultants(1, 'EUR'));
    const file = join(env.dir, 'consultants.csv');
    await writeFile(file, 'login,office,cost\nkim-allen,Berlin,"80,00"\n');

    const published: Array<{ kind: string; record: Record<string, unknown>; msgId: string }> = [];
    const importer = await startConnector(masterDataConnector, { template: 'consultants', file, pollIntervalSeconds: 0.1 }, {
      nats: env.nc,
      log: () => undefined,
      publish: async (kind, record, msgId) => { published.push({ kind, record, msgId }); },
    });
    try {
      await waitFor(() => published.find((p) => p.record.consultantId === 'kim-allen'));
      expect(published[0]?.record).toEqual({ consultantId: 'kim-allen', homeRegion: 'emea', costRate: '80.00', currency: 'EUR' });

      // The template changes in KV while the importer runs; the next file is mapped with version 2.
      await store.put(consultants(2, 'USD'));
      await writeFile(file, 'login,office,cost\npat-jones,Boston,"95,50"\n');
      const pat = await waitFor(() => published.find((p) => p.record.consultantId === 'pat-jones' && p.record.currency === 'USD'));
      expect(pat.record).toEqual({ consultantId: 'pat-jones', homeRegion: 'amer', costRate: '95.50', currency: 'USD' });
      expect(importer.health()).toMatchObject({ ok: true });
    } finally {
      await importer.stop();
    }
  });

  it('refuses a change that does not raise the version, and keeps the previous version when KV holds no template', async () => {
    await using env = await setup();
    const kv = await openTemplateBucket(env.nc);
    const store = new TemplateStore(kv);
    expect(await store.put(consultants(1, 'EUR'))).toMatchObject({ changed: true });
    expect(await store.put(consultants(1, 'EUR'))).toMatchObject({ changed: false });
    const refused = await store.put(consultants(1, 'USD')).catch((err: unknown) => err);
    expect(isTemplateVersionError(refused)).toBe(true);
    expect((refused as Error).message).toBe('template consultants is at version 1 in billstream_templates; a change must raise the version (given 1)');

    const registry = new TemplateRegistry(kv);
    await registry.start();
    try {
      expect(registry.get('consultants')?.version).toBe(1);
      const changes: string[] = [];
      registry.onChange((c) => { if (c.error) changes.push(c.error); });
      await putJson(kv, templateKey('consultants'), { name: 'consultants', version: 2, kind: 'nonsense', fields: {} });
      await waitFor(() => changes[0]);
      expect(registry.get('consultants')?.version).toBe(1);
      expect(registry.errorOf('consultants')).toMatch(/kind/);

      await store.put(consultants(3, 'CHF'));
      expect((await registry.waitForVersion('consultants', 3)).fields.currency).toEqual({ const: 'CHF' });
      expect(await store.list()).toEqual(['consultants']);
    } finally {
      await registry.stop();
    }
  });
});
