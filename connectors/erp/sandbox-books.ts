// The sandbox ERP's books in PostgreSQL. The sandbox stands in for an external
// system, so it owns its tables and creates them at start instead of going
// through billstream's migrations. Amounts are numeric(14,2) and cross the wire
// as text; no amount ever passes through a JavaScript number.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { ValidInvoiceRequest, ValidLine } from './sandbox-validation.ts';
import type {
  ErpDocument,
  ErpInvoice,
  ErpInvoiceLine,
  ErpInvoiceSummary,
  ErpPostResult,
  ErpStats,
  ErpTransactionKind,
} from './types.ts';

const SCHEMA = `
  create sequence if not exists erp_document_seq;
  create sequence if not exists erp_invoice_seq;
  create table if not exists erp_invoice (
    id bigint primary key,
    invoice_id text not null unique,
    project_id text not null,
    customer_id text not null,
    period_end date not null,
    status text not null default 'draft',
    currency text not null,
    total numeric(14,2) not null,
    idempotency_key text not null,
    created_at timestamptz not null default now()
  );
  create index if not exists erp_invoice_project on erp_invoice (project_id, id);
  create table if not exists erp_document (
    id bigint primary key,
    document_id text not null unique,
    external_id text not null,
    kind text not null check (kind in ('charge', 'reversal', 'milestone')),
    entry_id text,
    milestone_id text,
    revision integer not null,
    project_id text not null,
    customer_id text not null,
    consultant_id text,
    role text,
    work_date date,
    hours numeric(14,2),
    rate numeric(14,2),
    amount numeric(14,2) not null,
    currency text not null,
    legal_entity text not null,
    invoice_id text references erp_invoice (invoice_id),
    idempotency_key text not null,
    created_at timestamptz not null default now()
  );
  -- The guarantee the whole pipeline leans on: one document per externalId.
  create unique index if not exists erp_document_external_id on erp_document (external_id);
  create index if not exists erp_document_project on erp_document (project_id, id);
  create table if not exists erp_idempotency (
    scope text not null,
    idempotency_key text not null,
    request_hash text not null,
    response_status integer,
    response_body jsonb,
    created_at timestamptz not null default now(),
    primary key (scope, idempotency_key)
  );
`;

/**
 * The `application_name` of the books' sessions: the sandbox stands in for an
 * external ERP, so where it shares billstream's server, its load is told apart.
 */
export const SANDBOX_APPLICATION_NAME = 'billstream-erp-sandbox';

/** A response as sent, or as stored under its Idempotency-Key and sent again. */
export interface BooksResponse {
  status: number;
  body: unknown;
  replayed: boolean;
}

export type IdempotencyScope = 'billable-transactions' | 'invoices';

/** Stable hash of a request body, to tell a replay from a different request reusing the key. */
export function requestHash(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

interface DocumentRow {
  seq: string;
  document_id: string;
  external_id: string;
  kind: ErpTransactionKind;
  entry_id: string | null;
  milestone_id: string | null;
  revision: number;
  project_id: string;
  customer_id: string;
  consultant_id: string | null;
  role: string | null;
  work_date: string | null;
  hours: string | null;
  rate: string | null;
  amount: string;
  currency: string;
  legal_entity: string;
  invoice_id: string | null;
  created_at: Date;
}

interface InvoiceRow {
  seq: string;
  invoice_id: string;
  project_id: string;
  customer_id: string;
  period_end: string;
  status: string;
  currency: string;
  total: string;
  line_count: number;
  created_at: Date;
}

// The id goes out as text named `seq`: named `id`, `order by id` would sort the text.
const DOCUMENT_COLUMNS = `id::text as seq, document_id, external_id, kind, entry_id, milestone_id, revision, project_id,
  customer_id, consultant_id, role, to_char(work_date, 'YYYY-MM-DD') as work_date, hours::text, rate::text,
  amount::text, currency, legal_entity, invoice_id, created_at`;

const INVOICE_COLUMNS = `i.id::text as seq, i.invoice_id, i.project_id, i.customer_id,
  to_char(i.period_end, 'YYYY-MM-DD') as period_end, i.status, i.currency, i.total::text,
  (select count(*)::int from erp_document d where d.invoice_id = i.invoice_id) as line_count, i.created_at`;

export interface PageRequest {
  limit: number;
  /** Return rows after this internal id; 0 for the first page. */
  afterId: bigint;
}

export interface PageResult<T> {
  items: T[];
  /** Internal id of the last row when more rows follow, else null. */
  lastId: bigint | null;
}

export class SandboxBooks {
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** Connects and creates the tables if they are missing. */
  static async open(databaseUrl: string): Promise<SandboxBooks> {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 10, fallback_application_name: SANDBOX_APPLICATION_NAME });
    // An idle client losing its connection must not crash the sandbox; the next
    // query gets a fresh connection or a clear error.
    pool.on('error', () => {});
    const books = new SandboxBooks(pool);
    try {
      await books.#transaction(async (client) => {
        // Two sandboxes starting on one database would race on the catalog.
        await client.query(`select pg_advisory_xact_lock(hashtext('billstream_erp_sandbox_schema'))`);
        await client.query(SCHEMA);
      });
    } catch (err) {
      await pool.end();
      throw err;
    }
    return books;
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /**
   * Creates a document per line unless its externalId already has one. The
   * unique index with `on conflict do nothing` is what keeps concurrent
   * postings of one externalId to a single document: the second insert waits
   * for the first to commit, skips, and the select that follows sees the row.
   */
  async postTransactions(idempotencyKey: string, hash: string, lines: ValidLine[]): Promise<BooksResponse> {
    return this.#idempotent('billable-transactions', idempotencyKey, hash, async (client) => {
      const firsts = new Map<string, ValidLine>();
      for (const line of lines) if (!firsts.has(line.externalId)) firsts.set(line.externalId, line);
      const unique = [...firsts.values()];
      const column = <K extends keyof ValidLine>(key: K): Array<ValidLine[K]> => unique.map((line) => line[key]);
      // One statement for the whole batch: unnest the columns instead of a round trip per line.
      const inserted = await client.query<{ external_id: string; document_id: string }>(
        `insert into erp_document (id, document_id, external_id, kind, entry_id, milestone_id, revision, project_id,
           customer_id, consultant_id, role, work_date, hours, rate, amount, currency, legal_entity, idempotency_key)
         select n, 'DOC-' || lpad(n::text, 8, '0'), external_id, kind, entry_id, milestone_id, revision, project_id,
                customer_id, consultant_id, role, work_date, hours, rate, amount, currency, legal_entity, $16
         from (
           select nextval('erp_document_seq') as n, u.*
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[],
                       $9::text[], $10::date[], $11::numeric[], $12::numeric[], $13::numeric[], $14::text[], $15::text[])
                as u(external_id, kind, entry_id, milestone_id, revision, project_id, customer_id, consultant_id, role,
                     work_date, hours, rate, amount, currency, legal_entity)
         ) s
         on conflict (external_id) do nothing
         returning external_id, document_id`,
        [
          column('externalId'),
          column('kind'),
          column('entryId'),
          column('milestoneId'),
          column('revision'),
          column('projectId'),
          column('customerId'),
          column('consultantId'),
          column('role'),
          column('workDate'),
          column('hours'),
          column('rate'),
          column('amount'),
          column('currency'),
          column('legalEntity'),
          idempotencyKey,
        ],
      );
      const documentIds = new Map(inserted.rows.map((row) => [row.external_id, row.document_id]));
      const created = new Set(documentIds.keys());
      // Only the lines booked before (a retried posting) are read back: a posting of new lines costs no lookup per line.
      const earlier = [...firsts.keys()].filter((externalId) => !created.has(externalId));
      if (earlier.length > 0) {
        const existing = await client.query<{ external_id: string; document_id: string }>(
          'select external_id, document_id from erp_document where external_id = any($1::text[])',
          [earlier],
        );
        for (const row of existing.rows) documentIds.set(row.external_id, row.document_id);
      }
      const reported = new Set<string>();
      const results: ErpPostResult[] = lines.map((line) => {
        const documentId = documentIds.get(line.externalId);
        if (documentId === undefined) throw new Error(`document for ${line.externalId} vanished inside its transaction`);
        // A line repeated within one posting is created once; its repeats are duplicates.
        const status = created.has(line.externalId) && !reported.has(line.externalId) ? 'created' : 'duplicate';
        reported.add(line.externalId);
        return { externalId: line.externalId, documentId, status };
      });
      return { status: 201, body: { results }, store: true };
    });
  }

  /**
   * Puts documents on a new draft invoice. Rows are locked in id order so two
   * invoices competing for one document serialise (the loser sees it invoiced
   * and gets 409) and never deadlock.
   */
  async createInvoice(idempotencyKey: string, hash: string, request: ValidInvoiceRequest): Promise<BooksResponse> {
    return this.#idempotent('invoices', idempotencyKey, hash, async (client) => {
      const rows = await client.query<{
        document_id: string;
        project_id: string;
        customer_id: string;
        currency: string;
        invoice_id: string | null;
      }>(
        `select document_id, project_id, customer_id, currency, invoice_id
         from erp_document where document_id = any($1::text[]) order by id for update`,
        [request.documentIds],
      );
      const found = new Set(rows.rows.map((row) => row.document_id));
      const missing = request.documentIds.filter((id) => !found.has(id));
      if (missing.length > 0) {
        return rejection(422, 'unknown_document', `no document ${missing.join(', ')}`, { documentIds: missing });
      }
      const elsewhere = rows.rows.filter((row) => row.project_id !== request.projectId).map((row) => row.document_id);
      if (elsewhere.length > 0) {
        return rejection(422, 'document_not_in_project', `documents ${elsewhere.join(', ')} do not belong to project ${request.projectId}`, {
          documentIds: elsewhere,
        });
      }
      const otherCustomer = rows.rows.filter((row) => row.customer_id !== request.customerId).map((row) => row.document_id);
      if (otherCustomer.length > 0) {
        return rejection(422, 'customer_mismatch', `documents ${otherCustomer.join(', ')} are not billed to customer ${request.customerId}`, {
          documentIds: otherCustomer,
        });
      }
      const invoiced = rows.rows.filter((row) => row.invoice_id !== null);
      if (invoiced.length > 0) {
        return rejection(
          409,
          'document_already_invoiced',
          invoiced.map((row) => `${row.document_id} is already on invoice ${row.invoice_id}`).join('; '),
          { documents: invoiced.map((row) => ({ documentId: row.document_id, invoiceId: row.invoice_id })) },
        );
      }
      const currencies = [...new Set(rows.rows.map((row) => row.currency))];
      if (currencies.length !== 1) {
        return rejection(422, 'mixed_currency', `documents are in several currencies: ${currencies.join(', ')}`, { currencies });
      }
      const invoice = await client.query<{ invoice_id: string }>(
        `insert into erp_invoice (id, invoice_id, project_id, customer_id, period_end, currency, total, idempotency_key)
         select n, 'INV-' || lpad(n::text, 6, '0'), $1, $2, $3::date, $4,
                (select sum(amount) from erp_document where document_id = any($5::text[])), $6
         from (select nextval('erp_invoice_seq') as n) s
         returning invoice_id`,
        [request.projectId, request.customerId, request.periodEnd, currencies[0], request.documentIds, idempotencyKey],
      );
      const invoiceId = invoice.rows[0]?.invoice_id;
      if (invoiceId === undefined) throw new Error('invoice insert returned no row');
      await client.query('update erp_document set invoice_id = $1 where document_id = any($2::text[])', [
        invoiceId,
        request.documentIds,
      ]);
      return { status: 201, body: { invoiceId, status: 'draft' }, store: true };
    });
  }

  async listDocuments(projectId: string, page: PageRequest): Promise<PageResult<ErpDocument>> {
    const result = await this.#pool.query<DocumentRow>(
      `select ${DOCUMENT_COLUMNS} from erp_document where project_id = $1 and id > $2 order by id limit $3`,
      [projectId, page.afterId.toString(), page.limit + 1],
    );
    return toPage(result.rows, page.limit, toDocument);
  }

  async listInvoices(projectId: string, page: PageRequest): Promise<PageResult<ErpInvoiceSummary>> {
    const result = await this.#pool.query<InvoiceRow>(
      `select ${INVOICE_COLUMNS} from erp_invoice i where i.project_id = $1 and i.id > $2 order by i.id limit $3`,
      [projectId, page.afterId.toString(), page.limit + 1],
    );
    return toPage(result.rows, page.limit, toInvoiceSummary);
  }

  async getInvoice(invoiceId: string): Promise<ErpInvoice | null> {
    const invoice = await this.#pool.query<InvoiceRow>(`select ${INVOICE_COLUMNS} from erp_invoice i where i.invoice_id = $1`, [
      invoiceId,
    ]);
    const row = invoice.rows[0];
    if (row === undefined) return null;
    const lines = await this.#pool.query<DocumentRow>(
      `select ${DOCUMENT_COLUMNS} from erp_document where invoice_id = $1 order by id`,
      [invoiceId],
    );
    return { ...toInvoiceSummary(row), lines: lines.rows.map(toInvoiceLine) };
  }

  async stats(): Promise<ErpStats> {
    const totals = await this.#pool.query<{ currency: string; documents: number; amount: string; invoiced: string }>(
      `select currency, count(*)::int as documents, sum(amount)::numeric(20,2)::text as amount,
              coalesce(sum(amount) filter (where invoice_id is not null), 0)::numeric(20,2)::text as invoiced
       from erp_document group by currency order by currency`,
    );
    const invoices = await this.#pool.query<{ count: number }>('select count(*)::int as count from erp_invoice');
    return {
      documents: totals.rows.reduce((sum, row) => sum + row.documents, 0),
      invoices: invoices.rows[0]?.count ?? 0,
      totalsByCurrency: totals.rows,
    };
  }

  /**
   * Runs `work` under an Idempotency-Key, in one transaction with the key's
   * claim: a second request with the key waits on the claim's row, then replays
   * the stored answer (same body) or is refused (different body). Only
   * successes are stored; a refused request rolls back, so its key stays free
   * and retrying it gets the same refusal from the same books.
   */
  async #idempotent(
    scope: IdempotencyScope,
    key: string,
    hash: string,
    work: (client: pg.PoolClient) => Promise<{ status: number; body: unknown; store: boolean }>,
  ): Promise<BooksResponse> {
    const client = await this.#pool.connect();
    try {
      await client.query('begin');
      const claim = await client.query(
        `insert into erp_idempotency (scope, idempotency_key, request_hash) values ($1, $2, $3)
         on conflict (scope, idempotency_key) do nothing`,
        [scope, key, hash],
      );
      if (claim.rowCount === 0) {
        const stored = await client.query<{ request_hash: string; response_status: number; response_body: unknown }>(
          'select request_hash, response_status, response_body from erp_idempotency where scope = $1 and idempotency_key = $2',
          [scope, key],
        );
        await client.query('commit');
        const row = stored.rows[0];
        if (row === undefined) throw new Error(`idempotency key ${key} vanished`);
        if (row.request_hash !== hash) {
          return {
            status: 409,
            body: errorBody('idempotency_key_reused', `Idempotency-Key ${key} was already used with a different request body`, {
              idempotencyKey: key,
            }),
            replayed: false,
          };
        }
        return { status: row.response_status, body: row.response_body, replayed: true };
      }
      const outcome = await work(client);
      if (outcome.store) {
        await client.query(
          'update erp_idempotency set response_status = $3, response_body = $4 where scope = $1 and idempotency_key = $2',
          [scope, key, outcome.status, JSON.stringify(outcome.body)],
        );
        await client.query('commit');
      } else {
        await client.query('rollback');
      }
      return { status: outcome.status, body: outcome.body, replayed: false };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async #transaction(work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('begin');
      await work(client);
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }
}

export function errorBody(code: string, message: string, details: unknown = null): { error: { code: string; message: string; details: unknown } } {
  return { error: { code, message, details } };
}

function rejection(status: number, code: string, message: string, details: unknown): { status: number; body: unknown; store: false } {
  return { status, body: errorBody(code, message, details), store: false };
}

function toPage<R extends { seq: string }, T>(rows: R[], limit: number, map: (row: R) => T): PageResult<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept.at(-1);
  return { items: kept.map(map), lastId: more && last ? BigInt(last.seq) : null };
}

function toDocument(row: DocumentRow): ErpDocument {
  return {
    documentId: row.document_id,
    externalId: row.external_id,
    kind: row.kind,
    entryId: row.entry_id,
    milestoneId: row.milestone_id,
    revision: row.revision,
    projectId: row.project_id,
    customerId: row.customer_id,
    consultantId: row.consultant_id,
    role: row.role,
    workDate: row.work_date,
    hours: row.hours,
    rate: row.rate,
    amount: row.amount,
    currency: row.currency,
    legalEntity: row.legal_entity,
    invoiceId: row.invoice_id,
    createdAt: row.created_at.toISOString(),
  };
}

function toInvoiceLine(row: DocumentRow): ErpInvoiceLine {
  return {
    documentId: row.document_id,
    externalId: row.external_id,
    kind: row.kind,
    entryId: row.entry_id,
    milestoneId: row.milestone_id,
    revision: row.revision,
    workDate: row.work_date,
    hours: row.hours,
    rate: row.rate,
    amount: row.amount,
  };
}

function toInvoiceSummary(row: InvoiceRow): ErpInvoiceSummary {
  return {
    invoiceId: row.invoice_id,
    projectId: row.project_id,
    customerId: row.customer_id,
    periodEnd: row.period_end,
    status: row.status,
    currency: row.currency,
    total: row.total,
    lineCount: row.line_count,
    createdAt: row.created_at.toISOString(),
  };
}
