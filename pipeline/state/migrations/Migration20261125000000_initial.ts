import { Migration } from '@mikro-orm/migrations';

/**
 * The billing ledger's first schema. Written by hand rather than generated: the
 * hot tables carry partial indexes (open outbox rows, waiting entries) that the
 * entity metadata cannot express, and money columns are bigint cents by design.
 */
export class Migration20261125000000_initial extends Migration {
  override name = 'Migration20261125000000_initial';

  override up(): void {
    // Reference data: the latest revision of each record wins; `record` keeps the
    // full canonical JSON so the in-memory view reloads without loss.
    this.addSql(`create table consultant (
      consultant_id text primary key,
      home_region text not null,
      cost_rate_minor bigint not null,
      currency char(3) not null,
      revision int not null default 1,
      record jsonb not null,
      updated_at timestamptz not null default now())`);
    this.addSql(`create table project (
      project_id text primary key,
      customer_id text not null,
      contract_id text not null,
      region text not null,
      currency char(3) not null,
      billing_model text not null,
      status text not null,
      legal_entity text not null,
      not_to_exceed_minor bigint,
      revision int not null default 1,
      record jsonb not null,
      updated_at timestamptz not null default now())`);
    this.addSql(`create index project_contract_idx on project (contract_id)`);
    this.addSql(`create table assignment (
      assignment_id text primary key,
      consultant_id text not null,
      project_id text not null,
      task_id text not null,
      role text not null,
      billable boolean not null,
      start_date date not null,
      end_date date not null,
      revision int not null,
      record jsonb not null,
      span_context text,
      updated_at timestamptz not null default now())`);
    this.addSql(`create index assignment_project_idx on assignment (project_id)`);
    this.addSql(`create table ratecard (
      ratecard_id text primary key,
      contract_id text not null,
      role text not null,
      rate_minor bigint not null,
      currency char(3) not null,
      effective_from date not null,
      effective_to date,
      revision int not null default 1,
      record jsonb not null,
      updated_at timestamptz not null default now())`);
    this.addSql(`create index ratecard_contract_idx on ratecard (contract_id, role)`);

    // One row per (entry, revision) ever seen: the dedupe record, the lifecycle
    // and the parking lot for entries waiting on reference data, in one place.
    this.addSql(`create table entry_revision (
      entry_id text not null,
      revision int not null,
      project_id text not null,
      region text not null,
      status text not null,
      stage text not null,
      waiting_for text,
      billable boolean,
      role text,
      rate_minor bigint,
      amount_minor bigint,
      currency char(3),
      hours_hundredths bigint not null,
      work_date date not null,
      record jsonb not null,
      exception_code text,
      trace_id text,
      trace_parent text,
      first_seen_at timestamptz not null default now(),
      approved_at timestamptz,
      enriched_at timestamptz,
      decided_at timestamptz,
      primary key (entry_id, revision))`);
    this.addSql(`create index entry_revision_waiting_idx on entry_revision (project_id, first_seen_at) where stage = 'waiting'`);

    // The current billing position of each entry, owned by its project's actor.
    this.addSql(`create table entry_billing (
      entry_id text primary key,
      project_id text not null,
      latest_revision int not null,
      charged_revision int,
      charged_hours_hundredths bigint not null default 0,
      charged_amount_minor bigint not null default 0,
      charge_external_id text,
      charged_transaction jsonb,
      updated_at timestamptz not null default now())`);
    this.addSql(`create index entry_billing_project_idx on entry_billing (project_id)`);

    this.addSql(`create table project_billing (
      project_id text primary key,
      charged_minor bigint not null default 0,
      reversed_minor bigint not null default 0,
      held_minor bigint not null default 0,
      turns bigint not null default 0,
      updated_at timestamptz not null default now())`);

    this.addSql(`create table milestone (
      milestone_id text primary key,
      project_id text not null,
      amount_minor bigint not null,
      currency char(3) not null,
      status text not null,
      stage text not null,
      record jsonb not null,
      updated_at timestamptz not null default now())`);

    // Documents to post to the ERP; externalId is the ERP's idempotency anchor, so
    // a row can be posted any number of times and still make one document.
    this.addSql(`create table erp_outbox (
      id bigserial primary key,
      external_id text not null unique,
      kind text not null,
      project_id text not null,
      region text not null,
      entry_id text,
      milestone_id text,
      revision int,
      work_date date,
      hours_hundredths bigint not null default 0,
      amount_minor bigint not null,
      currency char(3) not null,
      transaction jsonb not null,
      status text not null default 'pending',
      attempts int not null default 0,
      next_attempt_at timestamptz not null default now(),
      last_error text,
      document_id text,
      invoice_id text,
      trace_parent text,
      created_at timestamptz not null default now(),
      posted_at timestamptz)`);
    this.addSql(`create index erp_outbox_pending_idx on erp_outbox (next_attempt_at, id) where status = 'pending'`);
    this.addSql(`create index erp_outbox_project_idx on erp_outbox (project_id, status)`);
    this.addSql(`create index erp_outbox_entry_idx on erp_outbox (entry_id)`);

    // Messages to publish on NATS after the transaction that produced them commits.
    this.addSql(`create table nats_outbox (
      id bigserial primary key,
      subject text not null,
      msg_id text not null,
      payload jsonb not null,
      headers jsonb,
      created_at timestamptz not null default now())`);

    this.addSql(`create table billing_exception (
      id text primary key,
      code text not null,
      status text not null default 'open',
      record_kind text not null,
      entry_id text,
      revision int,
      project_id text,
      region text not null,
      message text not null,
      errors jsonb,
      record jsonb,
      raw text,
      attempts int not null default 1,
      first_seen_at timestamptz not null default now(),
      last_seen_at timestamptz not null default now(),
      resolved_at timestamptz,
      resolved_by text,
      resolution_note text)`);
    this.addSql(`create index billing_exception_queue_idx on billing_exception (status, code, project_id)`);
    this.addSql(`create index billing_exception_entry_idx on billing_exception (entry_id)`);

    this.addSql(`create table pipeline_counter (
      name text primary key,
      value bigint not null default 0)`);
  }

  override down(): void {
    for (const table of ['pipeline_counter', 'billing_exception', 'nats_outbox', 'erp_outbox', 'milestone', 'project_billing',
      'entry_billing', 'entry_revision', 'ratecard', 'assignment', 'project', 'consultant']) {
      this.addSql(`drop table if exists ${table}`);
    }
  }
}
