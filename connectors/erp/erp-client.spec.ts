import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ErpClient } from './erp-client.ts';
import {
  ErpAuthError,
  ErpClientNotRunningError,
  ErpConflictError,
  ErpNotFoundError,
  ErpRejectedError,
  ErpUnavailableError,
  isErpAuthFailed,
  isErpConfigInvalid,
  isErpRejected,
  isErpUnavailable,
} from './errors.ts';
import { charge, setupErp } from './erp-fixture.ts';
import type { ErpTransaction } from './types.ts';

const tokenRequests = (events: Array<{ route: string }>) => events.filter((e) => e.route === '/oauth/token').length;

describe('ErpClient against the sandbox', () => {
  it('fetches a token on first use, reuses it, and renews it before it expires', async () => {
    await using erp = await setupErp({ tokenTtlSeconds: 1 });
    const { client, events } = await erp.client();
    expect(tokenRequests(events)).toBe(0);

    await client.postTransactions([charge('E1')], 'k1');
    await client.postTransactions([charge('E2')], 'k2');
    expect(tokenRequests(events)).toBe(1);

    await sleep(850); // past 80% of the 1 s lifetime, before it ends
    await client.postTransactions([charge('E3')], 'k3');
    expect(tokenRequests(events)).toBe(2);
    expect(events.some((e) => e.status === 401)).toBe(false);
  });

  it('renews the token once when the ERP refuses it, and succeeds', async () => {
    await using erp = await setupErp();
    const { client, events } = await erp.client();
    await client.postTransactions([charge('E1')], 'k1');
    erp.sandbox.revokeTokens();

    const results = await client.postTransactions([charge('E2')], 'k2');
    expect(results[0]?.status).toBe('created');
    expect(events.map((e) => `${e.route} ${e.status}`)).toEqual([
      '/oauth/token 200',
      '/api/v1/billable-transactions 201',
      '/api/v1/billable-transactions 401',
      '/oauth/token 200',
      '/api/v1/billable-transactions 201',
    ]);
  });

  it('a wrong client secret is refused with 401 and no retry', async () => {
    await using erp = await setupErp({ clientId: 'billstream', clientSecret: 's3cret' });
    const { client, events } = await erp.client({ clientSecret: 'wrong' });

    const failure = await client.postTransactions([charge('E1')], 'k1').catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ErpAuthError);
    expect(isErpAuthFailed(failure)).toBe(true);
    expect((failure as ErpAuthError).status).toBe(401);
    expect((failure as Error).message).toMatch(/invalid_client/);
    expect(events).toHaveLength(1);
    expect(client.health().ok).toBe(false);

    const { client: rightClient } = await erp.client({ clientSecret: 's3cret' });
    await expect(rightClient.postTransactions([charge('E1')], 'k1')).resolves.toHaveLength(1);
  });

  it('posting one externalId twice keeps one document, the second answer being duplicate', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client();

    const first = await client.postTransactions([charge('E1'), charge('E2')], 'batch-1');
    const second = await client.postTransactions([charge('E2'), charge('E3')], 'batch-2');

    expect(first.map((r) => r.status)).toEqual(['created', 'created']);
    expect(second.map((r) => r.status)).toEqual(['duplicate', 'created']);
    expect(second[0]?.documentId).toBe(first[1]?.documentId);
    const documents = await client.listTransactions('P-1');
    expect(documents.map((d) => d.externalId)).toEqual(['charge:E1:1', 'charge:E2:1', 'charge:E3:1']);
  });

  it('concurrent postings of the same externalIds create one document each', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client();
    const { client: other } = await erp.client();

    for (let round = 0; round < 5; round += 1) {
      const lines = ['A', 'B', 'C', 'D'].map((id) => charge(`E${round}${id}`));
      const [left, right] = await Promise.all([
        client.postTransactions(lines, `left-${round}`),
        other.postTransactions([...lines].reverse(), `right-${round}`),
      ]);
      for (const line of lines) {
        const answers = [...left, ...right].filter((r) => r.externalId === line.externalId);
        expect(answers.map((a) => a.status).sort()).toEqual(['created', 'duplicate']);
        expect(new Set(answers.map((a) => a.documentId)).size).toBe(1);
      }
    }
    const documents = await client.listTransactions('P-1');
    expect(documents).toHaveLength(20);
    expect(new Set(documents.map((d) => d.externalId)).size).toBe(20);
  });

  it('the same Idempotency-Key replays the stored answer; a different body under it is a conflict', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client();
    const batch = [charge('E1'), charge('E2')];

    const first = await client.postTransactions(batch, 'batch-1');
    const replay = await client.postTransactions(batch, 'batch-1');
    expect(replay).toEqual(first);
    expect(replay.map((r) => r.status)).toEqual(['created', 'created']);

    const reused = await client.postTransactions([charge('E3')], 'batch-1').catch((err: unknown) => err);
    expect(reused).toBeInstanceOf(ErpConflictError);
    expect((reused as ErpConflictError).erpCode).toBe('idempotency_key_reused');
    expect(await client.listTransactions('P-1')).toHaveLength(2);
  });

  it('a rate-limited ERP is waited out (Retry-After) and every line is posted once', async () => {
    await using erp = await setupErp();
    const { client, events } = await erp.client();
    await client.postTransactions([charge('warm-up')], 'warm-up'); // token fetched before the limit applies
    erp.sandbox.setFaults({ rateLimitPerSecond: 1 });
    const recovered = sleep(300).then(() => erp.sandbox.setFaults({ rateLimitPerSecond: null }));

    const batches = [0, 1, 2].map((b) => [0, 1, 2].map((i) => charge(`E${b}-${i}`)));
    const results = await Promise.all(batches.map((batch, b) => client.postTransactions(batch, `batch-${b}`)));
    await recovered;

    expect(events.some((e) => e.status === 429)).toBe(true);
    expect(results.flat().every((r) => r.status === 'created')).toBe(true);
    const documents = await client.listTransactions('P-1');
    expect(documents).toHaveLength(10);
    expect(new Set(documents.map((d) => d.externalId)).size).toBe(10);
  });

  it('an ERP failing every request for a while is retried until it recovers, without duplicates', async () => {
    await using erp = await setupErp();
    const { client, events } = await erp.client({ maxAttempts: 100 });
    erp.sandbox.setFaults({ errorRate: 1 });
    const recovered = sleep(250).then(() => erp.sandbox.setFaults({ errorRate: 0 }));

    const batch = [charge('E1'), charge('E2'), charge('E3')];
    const results = await client.postTransactions(batch, 'batch-1');
    await recovered;

    expect(events.filter((e) => e.status === 503).length).toBeGreaterThan(1);
    expect(results.map((r) => r.status)).toEqual(['created', 'created', 'created']);
    expect(await client.listTransactions('P-1')).toHaveLength(3);
    expect(client.health().ok).toBe(true);
  });

  it('a response lost to a timeout is replayed under its Idempotency-Key, not booked twice', async () => {
    await using erp = await setupErp();
    const { client, events } = await erp.client({ requestTimeoutMs: 150, maxAttempts: 100 });
    await client.postTransactions([charge('warm-up')], 'warm-up');
    erp.sandbox.setFaults({ latencyMs: 300 }); // the books are written, the answer comes too late
    const recovered = sleep(400).then(() => erp.sandbox.setFaults({ latencyMs: 0 }));

    const results = await client.postTransactions([charge('E1'), charge('E2')], 'batch-1');
    await recovered;

    expect(events.some((e) => e.error === 'timeout')).toBe(true);
    expect(results.map((r) => r.status)).toEqual(['created', 'created']);
    const documents = await client.listTransactions('P-1');
    expect(documents.map((d) => d.externalId)).toEqual(['charge:warm-up:1', 'charge:E1:1', 'charge:E2:1']);
  });

  it('gives up after maxAttempts with ErpUnavailableError and reports unhealthy', async () => {
    await using erp = await setupErp();
    const { client, events } = await erp.client({ maxAttempts: 3 });
    erp.sandbox.setFaults({ errorRate: 1 });

    const failure = await client.postTransactions([charge('E1')], 'batch-1').catch((err: unknown) => err);
    expect(isErpUnavailable(failure)).toBe(true);
    expect(failure).toMatchObject({ name: 'ErpUnavailableError', attempts: 3, lastStatus: 503 });
    expect(events.filter((e) => e.route === '/api/v1/billable-transactions').map((e) => e.status)).toEqual([503, 503, 503]);
    expect(client.health()).toMatchObject({ ok: false });

    erp.sandbox.setFaults({ errorRate: null });
    await client.postTransactions([charge('E1')], 'batch-1');
    expect(client.health().ok).toBe(true);
  });

  it('a 422 names every refused line with its reason, and none of the batch is created', async () => {
    await using erp = await setupErp();
    const { client, events } = await erp.client();
    const batch = [
      charge('good'),
      charge('mismatch', { amount: '1000.00' }),
      charge('one-decimal', { hours: '7.5' }),
      { ...charge('odd-kind'), kind: 'refund' },
      { externalId: 'bare', kind: 'charge', revision: 1 },
    ] as unknown as ErpTransaction[];

    const failure = await client.postTransactions(batch, 'batch-1').catch((err: unknown) => err);
    expect(isErpRejected(failure)).toBe(true);
    const rejected = failure as ErpRejectedError;
    const codes = rejected.byExternalId();
    expect(codes.has('charge:good:1')).toBe(false);
    expect(codes.get('charge:mismatch:1')?.map((e) => e.code)).toEqual(['amount_mismatch']);
    expect(codes.get('charge:mismatch:1')?.[0]?.message).toMatch(/7\.50 × 150\.00 = 1125\.00/);
    expect(codes.get('charge:one-decimal:1')).toMatchObject([{ code: 'invalid_amount', field: 'hours' }]);
    expect(codes.get('charge:odd-kind:1')).toMatchObject([{ code: 'unknown_kind', field: 'kind' }]);
    expect(codes.get('bare')?.filter((e) => e.code === 'missing_field').map((e) => e.field)).toEqual(
      expect.arrayContaining(['entryId', 'projectId', 'customerId', 'hours', 'rate', 'amount', 'currency']),
    );
    expect(events.filter((e) => e.status === 422)).toHaveLength(1); // not retried
    expect(await client.listTransactions('P-1')).toHaveLength(0);
    expect(client.health().ok).toBe(true);
  });

  it('creating an invoice twice under one key gives one invoice with the right lines and total', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client();
    const posted = await client.postTransactions(
      [
        charge('E1'),
        charge('E2', { hours: '3.33', rate: '99.99', amount: '332.97' }),
        charge('E1', { externalId: 'reversal:E1:1', kind: 'reversal', hours: '-7.50', amount: '-1125.00' }),
        charge('E1', { revision: 2, hours: '8.00', amount: '1200.00' }),
      ],
      'batch-1',
    );
    const documentIds = posted.map((r) => r.documentId);
    const request = { projectId: 'P-1', customerId: 'C-1', periodEnd: '2025-03-31', documentIds };

    const first = await client.createInvoice(request, 'close:P-1:2025-03-31');
    const again = await client.createInvoice(request, 'close:P-1:2025-03-31');
    expect(first.status).toBe('draft');
    expect(again).toEqual(first);

    const invoices = await client.listInvoices('P-1');
    expect(invoices).toHaveLength(1);
    expect(invoices[0]).toMatchObject({ invoiceId: first.invoiceId, total: '1532.97', lineCount: 4, currency: 'USD' });
    const invoice = await client.getInvoice(first.invoiceId);
    expect(invoice.total).toBe('1532.97');
    expect(invoice.lines.map((l) => [l.externalId, l.kind, l.hours, l.amount])).toEqual([
      ['charge:E1:1', 'charge', '7.50', '1125.00'],
      ['charge:E2:1', 'charge', '3.33', '332.97'],
      ['reversal:E1:1', 'reversal', '-7.50', '-1125.00'],
      ['charge:E1:2', 'charge', '8.00', '1200.00'],
    ]);
    const documents = await client.listTransactions('P-1');
    expect(documents.every((d) => d.invoiceId === first.invoiceId)).toBe(true);

    const twice = await client.createInvoice({ ...request, documentIds: [documentIds[0] ?? ''] }, 'other-key').catch((e: unknown) => e);
    expect(twice).toBeInstanceOf(ErpConflictError);
    expect((twice as ErpConflictError).erpCode).toBe('document_already_invoiced');
    await expect(client.getInvoice('INV-999999')).rejects.toBeInstanceOf(ErpNotFoundError);
  });

  it('an invoice over an unknown document is rejected', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client();
    const failure = await client
      .createInvoice({ projectId: 'P-1', customerId: 'C-1', periodEnd: '2025-03-31', documentIds: ['DOC-nope'] }, 'k')
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ErpRejectedError);
    expect((failure as ErpRejectedError).errors).toMatchObject([{ externalId: null, code: 'unknown_document' }]);
  });

  it('milestone charges are posted and listed with their milestoneId', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client();
    const [result] = await client.postTransactions(
      [
        {
          externalId: 'milestone:M-1',
          kind: 'milestone',
          milestoneId: 'M-1',
          revision: 1,
          projectId: 'P-9',
          customerId: 'C-1',
          amount: '25000.00',
          currency: 'EUR',
          legalEntity: 'DE01',
        },
      ],
      'm-1',
    );
    expect(result?.status).toBe('created');
    const [document] = await client.listTransactions('P-9');
    expect(document).toMatchObject({ kind: 'milestone', milestoneId: 'M-1', entryId: null, hours: null, amount: '25000.00' });
  });

  it('lists every document across pages', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client({ batchSize: 1000 });
    const lines = Array.from({ length: 1001 }, (_, i) => charge(`E${i}`));
    await client.postTransactions(lines.slice(0, 1000), 'b1');
    await client.postTransactions(lines.slice(1000), 'b2');
    const documents = await client.listTransactions('P-1');
    expect(documents).toHaveLength(1001);
    expect(documents.at(-1)?.externalId).toBe('charge:E1000:1');
  });

  it('stop() ends a call waiting to retry, and later calls are refused', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client({ initialBackoffMs: 5_000, maxBackoffMs: 5_000, maxAttempts: 5 });
    await client.postTransactions([charge('warm-up')], 'warm-up');
    erp.sandbox.setFaults({ errorRate: 1 });

    const pending = client.postTransactions([charge('E1')], 'batch-1').catch((err: unknown) => err);
    await sleep(100);
    const started = performance.now();
    await client.stop();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await pending).toBeInstanceOf(ErpClientNotRunningError);
    await expect(client.listTransactions('P-1')).rejects.toBeInstanceOf(ErpClientNotRunningError);
    expect(client.health()).toEqual({ ok: false, detail: 'ERP client stopped' });
  });

  it('refuses a batch larger than batchSize and an invalid config', async () => {
    await using erp = await setupErp();
    const { client } = await erp.client({ batchSize: 2 });
    await expect(client.postTransactions([charge('a'), charge('b'), charge('c')], 'k')).rejects.toMatchObject({
      name: 'ErpBatchTooLargeError',
    });
    let failure: unknown;
    try {
      new ErpClient({ baseUrl: 'not a url', initialBackoffMs: -1 });
    } catch (err) {
      failure = err;
    }
    expect(isErpConfigInvalid(failure)).toBe(true);
    expect((failure as Error).message).toMatch(/baseUrl/);
    expect((failure as Error).message).toMatch(/initialBackoffMs/);
  });
});

describe('ErpClient without an ERP', () => {
  it('an unreachable ERP ends in ErpUnavailableError carrying the network failure', async () => {
    const client = new ErpClient({ baseUrl: 'http://127.0.0.1:9', maxAttempts: 2, initialBackoffMs: 1, maxBackoffMs: 2 });
    await client.start();
    const failure = await client.listTransactions('P-1').catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ErpUnavailableError);
    expect(failure).toMatchObject({ attempts: 2, lastStatus: null });
    expect((failure as Error).message).toMatch(/ECONNREFUSED|fetch failed/);
    await client.stop();
  });

  it('is not usable before start()', async () => {
    const client = new ErpClient();
    expect(client.health()).toEqual({ ok: false, detail: 'ERP client not started' });
    await expect(client.listInvoices('P-1')).rejects.toBeInstanceOf(ErpClientNotRunningError);
  });
});
