import { describe, expect, it } from 'vitest';
import type { ErpPostedLine } from '../../pipeline/erp-poster.ts';
import { connectToPrivateNats, type PrivateNats } from '../../test/support/nats-server.ts';
import { KV_BUCKETS, openBucket } from '../kv-store.ts';
import { startLegacyErpRouting } from './legacy-erp-connector.ts';
import { putRoutingRules, routeLine } from './routing.ts';

function setup(): Promise<PrivateNats> {
  return connectToPrivateNats('billstream-routing-');
}

/** The cloud ERP as the poster sees it: records every line it books, one document per externalId. */
class RecordingCloud {
  readonly booked = new Map<string, string>();
  readonly keys: string[] = [];

  async postTransactions(transactions: Record<string, unknown>[], key: string): Promise<ErpPostedLine[]> {
    this.keys.push(key);
    return transactions.map((t) => {
      const id = String(t.externalId);
      const existing = this.booked.get(id);
      if (existing) return { externalId: id, documentId: existing, status: 'duplicate' };
      const documentId = `DOC-${this.booked.size + 1}`;
      this.booked.set(id, documentId);
      return { externalId: id, documentId, status: 'created' };
    });
  }
}

function charge(entryId: string, workDate: string, legalEntity = 'ACME-DE', projectId = 'acme-web'): Record<string, unknown> {
  return {
    externalId: `${entryId}:1:charge`, kind: 'charge', entryId, revision: 1, projectId, customerId: 'acme', consultantId: 'kim-allen',
    role: 'senior', workDate, hours: '1.00', rate: '100.00', amount: '100.00', currency: 'EUR', legalEntity,
  };
}

function reversal(of: Record<string, unknown>): Record<string, unknown> {
  return { ...of, externalId: `${String(of.entryId)}:1:reversal`, kind: 'reversal', hours: '-1.00', amount: '-100.00' };
}

const REGIONS: Record<string, string> = { 'acme-web': 'emea', 'acme-us': 'amer' };

describe('routing charges between the legacy and the cloud ERP', () => {
  it('routes by legal entity, region and cutover; a routing change at the cutover date sends later charges to the cloud ERP and none to both', async () => {
    await using env = await setup();
    const kv = await openBucket(env.nc, KV_BUCKETS.templates, { history: 16 });
    // Before the cutover: everything of ACME-DE in EMEA still goes to the legacy ERP.
    await putRoutingRules(kv, { version: 1, rules: [{ legalEntity: 'ACME-DE', region: 'emea', cutover: '9999-12-31' }] });
    const cloud = new RecordingCloud();
    const routing = await startLegacyErpRouting({ directory: env.dir }, { nats: env.nc, cloud, regionOf: (line) => REGIONS[String(line.projectId)] });
    try {
      const early = [charge('e-1', '2026-02-26'), charge('e-2', '2026-03-02'), charge('e-3', '2026-02-26', 'ACME-US', 'acme-us'), charge('e-4', '2026-02-26', 'ACME-DE', 'acme-us')];
      const first = await routing.port.postTransactions(early, 'billstream-batch-1');
      expect(first.map((r) => [r.externalId, r.documentId.startsWith('legacy:') ? 'legacy' : 'cloud'])).toEqual([
        ['e-1:1:charge', 'legacy'], ['e-2:1:charge', 'legacy'], ['e-3:1:charge', 'cloud'], ['e-4:1:charge', 'cloud'],
      ]);
      expect(first[0]?.documentId).toMatch(/^legacy:billstream-\d{8}T\d{6}Z-[0-9a-f]{8}:1$/);

      // The cutover date: charges of work from 2026-03-01 on go to the cloud ERP from now on.
      await putRoutingRules(kv, { version: 2, rules: [{ legalEntity: 'ACME-DE', region: 'emea', cutover: '2026-03-01' }] });
      await routing.rules?.waitForVersion(2);
      const late = [charge('e-5', '2026-02-27'), charge('e-6', '2026-03-01'), charge('e-7', '2026-03-03'), reversal(early[1] as Record<string, unknown>)];
      const second = await routing.port.postTransactions(late, 'billstream-batch-2');
      expect(second.map((r) => [r.externalId, r.documentId.startsWith('legacy:') ? 'legacy' : 'cloud'])).toEqual([
        ['e-5:1:charge', 'legacy'],
        ['e-6:1:charge', 'cloud'],
        ['e-7:1:charge', 'cloud'],
        // Its charge (work of 2026-03-02) was booked in the legacy ERP before the change: the reversal follows it.
        ['e-2:1:reversal', 'legacy'],
      ]);

      // A retry of the whole posting changes nothing anywhere.
      const retried = await routing.port.postTransactions(late, 'billstream-batch-2');
      expect(retried.map((r) => r.documentId)).toEqual(second.map((r) => r.documentId));
      expect(retried.every((r) => r.status === 'duplicate')).toBe(true);

      const legacyIds = new Set([...early, ...late].map((l) => String(l.externalId)).filter((id) => routing.sink.documentIdOf(id) !== undefined));
      const cloudIds = new Set(cloud.booked.keys());
      expect([...legacyIds].filter((id) => cloudIds.has(id))).toEqual([]);
      expect([...legacyIds].sort()).toEqual(['e-1:1:charge', 'e-2:1:charge', 'e-2:1:reversal', 'e-5:1:charge']);
      expect([...cloudIds].sort()).toEqual(['e-3:1:charge', 'e-4:1:charge', 'e-6:1:charge', 'e-7:1:charge']);
      // Split postings give the cloud part a key of its own lines; the legacy batch keeps the poster's.
      expect(cloud.keys.every((k) => k.startsWith('billstream-batch-') && k.includes('-cloud-'))).toBe(true);
      expect(routing.health()).toMatchObject({ ok: true });
    } finally {
      await routing.stop();
    }
  });

  it('sends everything to the cloud when no rule matches or there are no rules', () => {
    expect(routeLine(null, charge('e', '2020-01-01'), 'emea')).toEqual({ destination: 'cloud', rule: null });
    const rules = { version: 1, rules: [{ legalEntity: 'ACME-DE', cutover: '2026-03-01' }] };
    expect(routeLine(rules, charge('e', '2026-02-28'), undefined)).toEqual({ destination: 'legacy', rule: 0 });
    expect(routeLine(rules, { ...charge('e', '2026-02-28'), workDate: undefined }, 'emea')).toEqual({ destination: 'cloud', rule: null });
    expect(routeLine(rules, charge('e', '2026-02-28', 'OTHER'), 'emea')).toEqual({ destination: 'cloud', rule: null });
  });
});
