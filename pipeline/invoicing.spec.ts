// Invoicing against a real ledger and a scripted ERP port: what a close does
// when the ERP answers, refuses, or already holds the period's invoice.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { MikroORM } from '@mikro-orm/postgresql';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/support/database.ts';
import { Invoicing, InvoiceStatusPoller, type ErpInvoiceRequest, type ErpInvoiceView, type InvoicingErpPort } from './invoicing.ts';
import { openLedger } from './state/orm.ts';

/** An ERP that books invoices in memory, refuses when told to, and lets a test move an invoice's status. */
class ScriptedErp implements InvoicingErpPort {
  readonly invoices = new Map<string, ErpInvoiceView & { projectId: string; key: string }>();
  readonly requests: { request: ErpInvoiceRequest; key: string }[] = [];
  refuse: ((request: ErpInvoiceRequest) => Error | null) | null = null;

  async createInvoice(request: ErpInvoiceRequest, key: string): Promise<{ invoiceId: string; status: string }> {
    this.requests.push({ request, key });
    const refusal = this.refuse?.(request);
    if (refusal) throw refusal;
    const existing = [...this.invoices.values()].find((i) => i.key === key);
    if (existing) return { invoiceId: existing.invoiceId, status: 'draft' };
    const invoiceId = `INV-${this.invoices.size + 1}`;
    this.invoices.set(invoiceId, {
      invoiceId, projectId: request.projectId, key, status: 'draft', periodEnd: request.periodEnd, total: '0.00', currency: 'USD',
      lines: request.documentIds.map((documentId) => ({ documentId, kind: 'charge', amount: '0.00' })),
    });
    return { invoiceId, status: 'draft' };
  }

  async getInvoice(invoiceId: string): Promise<ErpInvoiceView> {
    const invoice = this.invoices.get(invoiceId);
    if (!invoice) throw new Error(`no invoice ${invoiceId}`);
    return invoice;
  }

  async listInvoices(projectId: string): Promise<{ invoiceId: string; periodEnd: string; status: string }[]> {
    return [...this.invoices.values()].filter((i) => i.projectId === projectId);
  }
}

interface Ledger extends AsyncDisposable {
  orm: MikroORM;
  sql<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

async function ledger(): Promise<Ledger> {
  const db: TestDatabase = await createTestDatabase();
  const orm = await openLedger({ databaseUrl: db.url, poolSize: 4 });
  return {
    orm,
    sql: (text, params = []) => orm.em.fork().execute(text, params),
    async [Symbol.asyncDispose]() {
      await orm.close();
      await db[Symbol.asyncDispose]();
      await rm(join(orm.config.get('baseDir'), `.snapshot-${db.name}.json`), { force: true });
    },
  };
}

async function posted(l: Ledger, projectId: string, externalId: string, kind: string, amountMinor: number, workDate: string, currency = 'USD'): Promise<void> {
  await l.sql(
    `insert into erp_outbox (external_id, kind, project_id, region, entry_id, revision, work_date, amount_minor, currency, transaction, status, document_id, posted_at)
     values (?, ?, ?, 'amer', ?, 1, ?, ?, ?, ?::jsonb, 'posted', ?, now())`,
    [externalId, kind, projectId, externalId.split(':')[0], workDate, amountMinor, currency, JSON.stringify({ customerId: `cust-${projectId}` }), `DOC-${externalId}`]);
}

describe('Invoicing.close', () => {
  it('invoices documents up to the period end only, nets reversals, and creates nothing the second time', async () => {
    await using l = await ledger();
    const erp = new ScriptedErp();
    await posted(l, 'p-1', 'e-1:1:charge', 'charge', 120000, '2026-11-20');
    await posted(l, 'p-1', 'e-1:1:reversal', 'reversal', -120000, '2026-11-20');
    await posted(l, 'p-1', 'e-1:2:charge', 'charge', 90000, '2026-11-20');
    await posted(l, 'p-1', 'e-late:1:charge', 'charge', 50000, '2026-12-02');
    const invoicing = new Invoicing(l.orm, erp);

    const first = await invoicing.close('2026-11-30');
    expect(first.failed).toEqual([]);
    expect(first.invoices.map((i) => [i.projectId, i.total, i.charged, i.reversed, i.documentCount, i.outcome])).toEqual([['p-1', '900.00', '2100.00', '1200.00', 3, 'created']]);
    expect(erp.requests).toEqual([{ key: 'invoice:p-1:2026-11-30', request: { projectId: 'p-1', customerId: 'cust-p-1', periodEnd: '2026-11-30', documentIds: ['DOC-e-1:1:charge', 'DOC-e-1:1:reversal', 'DOC-e-1:2:charge'] } }]);

    const second = await invoicing.close('2026-11-30');
    expect(second.invoices.map((i) => [i.invoiceId, i.outcome])).toEqual([[first.invoices[0]?.invoiceId, 'existing']]);
    expect(erp.requests).toHaveLength(1);
    expect(await l.sql(`select external_id from erp_outbox where invoice_id is null`)).toEqual([{ external_id: 'e-late:1:charge' }]);
    const [message] = await l.sql<{ subject: string; payload: { status: string; amounts: { total: string } } }>(`select subject, payload from nats_outbox`);
    expect(message).toMatchObject({ subject: 'invoice.status.amer.p-1', payload: { status: 'draft', amounts: { total: '900.00' } } });
  });

  it('adopts the ERP\'s invoice for the period when the ledger lost it, and lists a refused project without stopping the others', async () => {
    await using l = await ledger();
    const erp = new ScriptedErp();
    await posted(l, 'p-1', 'a:1:charge', 'charge', 10000, '2026-11-20');
    await posted(l, 'p-2', 'b:1:charge', 'charge', 20000, '2026-11-20');
    // The ERP made p-1's invoice, but the ledger's transaction never committed; since then the request changed.
    erp.invoices.set('INV-9', { invoiceId: 'INV-9', projectId: 'p-1', key: 'invoice:p-1:2026-11-30', status: 'draft', periodEnd: '2026-11-30', total: '100.00', currency: 'USD', lines: [{ documentId: 'DOC-a:1:charge', kind: 'charge', amount: '100.00' }] });
    erp.refuse = (request) => (request.projectId === 'p-1' ? new Error('idempotency_key_reused') : request.projectId === 'p-2' ? new Error('ERP unavailable') : null);

    const report = await new Invoicing(l.orm, erp).close('2026-11-30');
    expect(report.invoices.map((i) => [i.projectId, i.invoiceId, i.total, i.outcome])).toEqual([['p-1', 'INV-9', '100.00', 'adopted']]);
    expect(report.failed).toEqual([{ projectId: 'p-2', error: 'Error: ERP unavailable' }]);
    expect(await l.sql(`select external_id, invoice_id from erp_outbox order by external_id`)).toEqual([
      { external_id: 'a:1:charge', invoice_id: 'INV-9' }, { external_id: 'b:1:charge', invoice_id: null },
    ]);

    erp.refuse = null;
    const retry = await new Invoicing(l.orm, erp).close('2026-11-30');
    expect(retry.invoices.map((i) => [i.projectId, i.outcome])).toEqual([['p-1', 'existing'], ['p-2', 'created']]);
  });

  it('refuses to invoice a project whose documents are in two currencies', async () => {
    await using l = await ledger();
    await posted(l, 'p-1', 'a:1:charge', 'charge', 10000, '2026-11-20', 'USD');
    await posted(l, 'p-1', 'b:1:charge', 'charge', 10000, '2026-11-20', 'EUR');
    const report = await new Invoicing(l.orm, new ScriptedErp()).close('2026-11-30');
    expect(report.invoices).toEqual([]);
    expect(report.failed[0]?.error).toMatch(/InvoicingError: project p-1 has posted documents in USD and EUR/);
  });
});

describe('InvoiceStatusPoller', () => {
  it('stores and announces a status the ERP changed, once, and leaves unchanged invoices alone', async () => {
    await using l = await ledger();
    const erp = new ScriptedErp();
    await posted(l, 'p-1', 'a:1:charge', 'charge', 10000, '2026-11-20');
    await posted(l, 'p-2', 'b:1:charge', 'charge', 20000, '2026-11-20');
    await new Invoicing(l.orm, erp).close('2026-11-30');
    await l.sql(`delete from nats_outbox_batch`);
    const changed: string[] = [];
    const poller = new InvoiceStatusPoller(l.orm, erp, { onChange: (invoice) => changed.push(`${invoice.invoiceId}:${invoice.status}`) });

    (erp.invoices.get('INV-1') as ErpInvoiceView).status = 'issued';
    expect(await poller.pollOnce()).toBe(1);
    expect(await poller.pollOnce()).toBe(0);
    expect(changed).toEqual(['INV-1:issued']);
    expect(await l.sql(`select invoice_id, status from invoice order by invoice_id`)).toEqual([{ invoice_id: 'INV-1', status: 'issued' }, { invoice_id: 'INV-2', status: 'draft' }]);
    expect(await l.sql(`select subject, msg_id from nats_outbox`)).toEqual([{ subject: 'invoice.status.amer.p-1', msg_id: 'invoice:INV-1:issued' }]);
  });
});
