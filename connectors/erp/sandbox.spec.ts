// The sandbox's HTTP surface as CONTRACT §6 states it, spoken to without the client.
import pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { createTestDatabase } from '../../test/support/database.ts';
import { charge, setupErp } from './erp-fixture.ts';
import { startErpSandbox } from './sandbox.ts';

async function call(
  url: string,
  init: { method?: string; token?: string; key?: string; body?: unknown } = {},
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.key) headers['idempotency-key'] = init.key;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

describe('ERP sandbox', () => {
  it('issues Bearer tokens to the configured client only, with their lifetime', async () => {
    await using erp = await setupErp({ clientId: 'billstream', clientSecret: 's3cret', tokenTtlSeconds: 120 });
    const ok = await fetch(
      `${erp.sandbox.url}/oauth/token`,
      form({ grant_type: 'client_credentials', client_id: 'billstream', client_secret: 's3cret' }),
    );
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 120 });

    const wrongSecret = await fetch(
      `${erp.sandbox.url}/oauth/token`,
      form({ grant_type: 'client_credentials', client_id: 'billstream', client_secret: 'guess' }),
    );
    expect(wrongSecret.status).toBe(401);
    expect(await wrongSecret.json()).toMatchObject({ error: 'invalid_client' });

    const otherClient = await fetch(
      `${erp.sandbox.url}/oauth/token`,
      form({ grant_type: 'client_credentials', client_id: 'intruder', client_secret: 's3cret' }),
    );
    expect(otherClient.status).toBe(401);

    const wrongGrant = await fetch(`${erp.sandbox.url}/oauth/token`, form({ grant_type: 'password', client_id: 'billstream' }));
    expect(wrongGrant.status).toBe(400);
    expect(await wrongGrant.json()).toMatchObject({ error: 'unsupported_grant_type' });
  });

  it('accepts any client when none is configured', async () => {
    await using erp = await setupErp();
    const response = await fetch(
      `${erp.sandbox.url}/oauth/token`,
      form({ grant_type: 'client_credentials', client_id: 'anyone', client_secret: 'anything' }),
    );
    expect(response.status).toBe(200);
  });

  it('answers 401 to API calls without a valid token, and once the token expires', async () => {
    await using erp = await setupErp({ tokenTtlSeconds: 0.2 });
    const url = `${erp.sandbox.url}/api/v1/billable-transactions?projectId=P-1`;
    expect((await call(url)).status).toBe(401);
    const bogus = await call(url, { token: 'bogus' });
    expect(bogus.status).toBe(401);
    expect(bogus.headers.get('www-authenticate')).toMatch(/invalid_token/);
    expect(bogus.body).toMatchObject({ error: { code: 'invalid_token' } });

    const token = await erp.token();
    expect((await call(url, { token })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await call(url, { token })).status).toBe(401);
  });

  it('posts transactions idempotently and lists them with their documents', async () => {
    await using erp = await setupErp();
    const token = await erp.token();
    const url = `${erp.sandbox.url}/api/v1/billable-transactions`;
    const body = { transactions: [charge('E1'), charge('E1'), charge('E2')] };

    const first = await call(url, { token, key: 'k1', body });
    expect(first.status).toBe(201);
    const results = first.body.results as Array<{ externalId: string; documentId: string; status: string }>;
    expect(results.map((r) => r.status)).toEqual(['created', 'duplicate', 'created']);
    expect(results[0]?.documentId).toBe(results[1]?.documentId);

    const replay = await call(url, { token, key: 'k1', body });
    expect(replay.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(first.body);

    const reused = await call(url, { token, key: 'k1', body: { transactions: [charge('E3')] } });
    expect(reused.status).toBe(409);
    expect(reused.body).toMatchObject({ error: { code: 'idempotency_key_reused' } });

    const missingKey = await call(url, { token, body });
    expect(missingKey.status).toBe(400);
    expect(missingKey.body).toMatchObject({ error: { code: 'idempotency_key_required' } });

    const list = await call(`${url}?projectId=P-1`, { token });
    expect(list.body).toMatchObject({
      nextCursor: null,
      items: [
        {
          externalId: 'charge:E1:1',
          kind: 'charge',
          entryId: 'E1',
          milestoneId: null,
          revision: 1,
          hours: '7.50',
          rate: '150.00',
          amount: '1125.00',
          currency: 'USD',
          workDate: '2025-03-03',
          documentId: results[0]?.documentId,
          invoiceId: null,
        },
        { externalId: 'charge:E2:1', documentId: results[2]?.documentId },
      ],
    });

    // A line booked by an earlier posting is a duplicate with its first document; a new one beside it is created.
    const again = await call(url, { token, key: 'k2', body: { transactions: [charge('E2'), charge('E4')] } });
    expect(again.status).toBe(201);
    const againResults = again.body.results as Array<{ externalId: string; documentId: string; status: string }>;
    expect(againResults.map((r) => [r.externalId, r.status])).toEqual([[charge('E2').externalId, 'duplicate'], [charge('E4').externalId, 'created']]);
    expect(againResults[0]?.documentId).toBe(results[2]?.documentId);
    expect(new Set(againResults.map((r) => r.documentId)).size).toBe(2);
  });

  it('refuses the whole posting with 422 when any line is invalid', async () => {
    await using erp = await setupErp();
    const token = await erp.token();
    const url = `${erp.sandbox.url}/api/v1/billable-transactions`;
    const response = await call(url, {
      token,
      key: 'k1',
      body: { transactions: [charge('ok'), charge('bad', { amount: '1125', workDate: '2025-02-30' })] },
    });
    expect(response.status).toBe(422);
    expect(response.body.errors).toEqual([
      expect.objectContaining({ externalId: 'charge:bad:1', field: 'workDate', code: 'invalid_field' }),
      expect.objectContaining({ externalId: 'charge:bad:1', field: 'amount', code: 'invalid_amount' }),
    ]);
    const list = await call(`${url}?projectId=P-1`, { token });
    expect(list.body.items).toEqual([]);

    // The key was not consumed by the refusal: the corrected batch goes through under it.
    const fixed = await call(url, { token, key: 'k1', body: { transactions: [charge('ok')] } });
    expect(fixed.status).toBe(201);
  });

  it('pages lists with limit and cursor', async () => {
    await using erp = await setupErp();
    const token = await erp.token();
    const url = `${erp.sandbox.url}/api/v1/billable-transactions`;
    await call(url, { token, key: 'k', body: { transactions: ['a', 'b', 'c', 'd', 'e'].map((id) => charge(id)) } });

    const seen: string[] = [];
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const page = await call(`${url}?projectId=P-1&limit=2&cursor=${cursor}`, { token });
      seen.push(...(page.body.items as Array<{ externalId: string }>).map((d) => d.externalId));
      cursor = page.body.nextCursor as string | null;
      pages += 1;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e'].map((id) => `charge:${id}:1`));

    expect((await call(`${url}?projectId=P-1&limit=0`, { token })).status).toBe(400);
    expect((await call(`${url}?projectId=P-1&cursor=garbage!`, { token })).status).toBe(400);
    expect((await call(`${url}?projectId=bad%20id`, { token })).status).toBe(400);
  });

  it('invoices documents once: another invoice over them is a 409', async () => {
    await using erp = await setupErp();
    const token = await erp.token();
    const posted = await call(`${erp.sandbox.url}/api/v1/billable-transactions`, {
      token,
      key: 'k',
      body: { transactions: [charge('E1'), charge('E2', { projectId: 'P-2' })] },
    });
    const [d1, d2] = (posted.body.results as Array<{ documentId: string }>).map((r) => r.documentId);
    const url = `${erp.sandbox.url}/api/v1/invoices`;
    const request = { projectId: 'P-1', customerId: 'C-1', periodEnd: '2025-03-31', documentIds: [d1] };

    const created = await call(url, { token, key: 'inv-1', body: request });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ invoiceId: expect.stringMatching(/^INV-/), status: 'draft' });

    const conflict = await call(url, { token, key: 'inv-2', body: request });
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({
      error: { code: 'document_already_invoiced', details: { documents: [{ documentId: d1, invoiceId: created.body.invoiceId }] } },
    });

    const foreign = await call(url, { token, key: 'inv-3', body: { ...request, documentIds: [d2] } });
    expect(foreign.status).toBe(422);
    expect(foreign.body).toMatchObject({ error: { code: 'document_not_in_project' } });

    const invalid = await call(url, { token, key: 'inv-4', body: { projectId: 'P-1', documentIds: [] } });
    expect(invalid.status).toBe(422);
    expect(invalid.body).toMatchObject({ error: { code: 'invalid_invoice' } });

    const invoice = await call(`${url}/${created.body.invoiceId as string}`, { token });
    expect(invoice.body).toMatchObject({ total: '1125.00', lines: [{ documentId: d1, amount: '1125.00' }] });
    expect((await call(`${url}/INV-404`, { token })).status).toBe(404);
  });

  it('injects faults on request and reports its books', async () => {
    await using erp = await setupErp();
    const token = await erp.token();
    const url = `${erp.sandbox.url}/api/v1/billable-transactions`;

    const set = await call(`${erp.sandbox.url}/admin/faults`, { body: { errorRate: 1 } });
    expect(set.body).toEqual({ rateLimitPerSecond: 0, errorRate: 1, latencyMs: 0 });
    const failing = await call(url, { token, key: 'k', body: { transactions: [charge('E1')] } });
    expect(failing.status).toBe(503);

    await call(`${erp.sandbox.url}/admin/faults`, { body: { errorRate: null, rateLimitPerSecond: 1 } });
    // The limit counts per wall-clock second: with the clock running, two calls
    // straddling a second's edge both pass. Date alone stands still here.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Math.floor(Date.now() / 1000) * 1000 + 500);
      expect((await call(`${url}?projectId=P-1`, { token })).status).toBe(200);
      const limited = await call(`${url}?projectId=P-1`, { token });
      expect(limited.status).toBe(429);
      expect(limited.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    } finally {
      vi.useRealTimers();
    }

    expect((await call(`${erp.sandbox.url}/admin/faults`, { body: { errorRate: 2 } })).status).toBe(400);
    await call(`${erp.sandbox.url}/admin/faults`, { body: { rateLimitPerSecond: 0 } });

    await call(url, {
      token,
      key: 'k2',
      body: { transactions: [charge('E1'), charge('E2', { currency: 'EUR', rate: '100.00', amount: '750.00' })] },
    });
    const stats = await call(`${erp.sandbox.url}/admin/stats`);
    expect(stats.body).toEqual({
      documents: 2,
      invoices: 0,
      totalsByCurrency: [
        { currency: 'EUR', documents: 1, amount: '750.00', invoiced: '0.00' },
        { currency: 'USD', documents: 1, amount: '1125.00', invoiced: '0.00' },
      ],
    });
  });

  it('two sandboxes may start on one fresh database at once', async () => {
    await using db = await createTestDatabase('billstream_erp');
    const [a, b] = await Promise.all([
      startErpSandbox({ databaseUrl: db.url, port: 0 }),
      startErpSandbox({ databaseUrl: db.url, port: 0 }),
    ]);
    expect(a.port).not.toBe(b.port);
    await Promise.all([a.close(), b.close()]);
  });

  it('names its books\' sessions in pg_stat_activity, apart from billstream\'s', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client();
    await client.postTransactions([charge('e-named')], 'named-1');
    const sql = new pg.Client({ connectionString: erp.databaseUrl });
    await sql.connect();
    try {
      const { rows } = await sql.query<{ name: string }>(
        `select distinct application_name as name from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`);
      expect(rows.map((r) => r.name)).toEqual(['billstream-erp-sandbox']);
    } finally {
      await sql.end();
    }
  });
});
