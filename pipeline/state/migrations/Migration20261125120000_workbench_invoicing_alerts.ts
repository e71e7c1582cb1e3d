import { Migration } from '@mikro-orm/migrations';

/**
 * The exception workbench's audit trail, invoices, and posting-SLA alerts.
 * Hand-written like the initial schema: partial indexes (the one firing alert
 * per region, uninvoiced posted charges) are what make these tables cheap to
 * query on every close, poll and check.
 */
export class Migration20261125120000_workbench_invoicing_alerts extends Migration {
  override name = 'Migration20261125120000_workbench_invoicing_alerts';

  override up(): void {
    // Who did what to an exception, when, and the exception as it was before and
    // after: an append-only trail a finance auditor can read back.
    this.addSql(`create table exception_audit (
      id bigserial primary key,
      exception_id text not null references billing_exception (id),
      action text not null,
      actor text not null,
      reason text,
      at timestamptz not null default now(),
      before jsonb not null,
      after jsonb not null)`);
    this.addSql(`create index exception_audit_exception_idx on exception_audit (exception_id, id)`);

    // One invoice per project and period: the unique key is what makes a second
    // close of the same period create nothing.
    this.addSql(`create table invoice (
      invoice_id text primary key,
      project_id text not null,
      region text not null,
      customer_id text not null,
      period_end date not null,
      status text not null,
      total_minor bigint not null,
      charged_minor bigint not null default 0,
      reversed_minor bigint not null default 0,
      currency char(3) not null,
      document_count int not null,
      idempotency_key text not null,
      created_at timestamptz not null default now(),
      status_changed_at timestamptz not null default now(),
      status_checked_at timestamptz,
      unique (project_id, period_end))`);
    this.addSql(`create index invoice_open_idx on invoice (status_checked_at nulls first) where status not in ('paid', 'void', 'cancelled')`);
    // The close's question, "what is posted and not yet invoiced", without a scan of every posted row.
    this.addSql(`create index erp_outbox_uninvoiced_idx on erp_outbox (project_id, work_date) where status = 'posted' and invoice_id is null`);
    this.addSql(`create index erp_outbox_invoice_idx on erp_outbox (invoice_id) where invoice_id is not null`);

    // KPIs from stored state: throughput counts the revisions decided in the last minute.
    this.addSql(`create index entry_revision_decided_idx on entry_revision (decided_at)`);

    // Posting-SLA alerts: at most one firing per region, cleared (never deleted)
    // when the region's overdue entries have posted.
    this.addSql(`create table posting_sla_alert (
      id bigserial primary key,
      region text not null,
      status text not null,
      sla_minutes numeric not null,
      overdue_entries int not null,
      overdue_hours_hundredths bigint not null,
      oldest_approved_at timestamptz,
      sample_entry_ids jsonb not null default '[]'::jsonb,
      raised_at timestamptz not null default now(),
      checked_at timestamptz not null default now(),
      cleared_at timestamptz)`);
    this.addSql(`create unique index posting_sla_alert_firing_idx on posting_sla_alert (region) where status = 'firing'`);
  }

  override down(): void {
    this.addSql('drop table if exists posting_sla_alert');
    this.addSql('drop index if exists entry_revision_decided_idx');
    this.addSql('drop index if exists erp_outbox_invoice_idx');
    this.addSql('drop index if exists erp_outbox_uninvoiced_idx');
    this.addSql('drop table if exists invoice');
    this.addSql('drop table if exists exception_audit');
  }
}
