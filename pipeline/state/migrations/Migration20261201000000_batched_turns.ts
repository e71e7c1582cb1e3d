import { Migration } from '@mikro-orm/migrations';

/**
 * Schema for turns that decide a whole regional batch of projects in one
 * transaction (issue 5, week-close scale):
 *
 * - `entry_billing` goes: an entry's billing position (latest decided revision,
 *   the revision charged and its amount) is what its `entry_revision` rows say,
 *   and the charged line is the `erp_outbox` row of its externalId. Keeping a
 *   copy cost one more upserted row (and a jsonb copy of the line) per entry.
 * - The NATS outbox keeps one row per transaction, holding all its messages, in
 *   place of one row per message: a batch of a thousand entries inserts and later
 *   deletes one row instead of a thousand. A view under the old name lists the
 *   messages one per row for people and tests reading the outbox.
 * - Counters are sharded by connection: every concurrent turn used to update the
 *   same `duplicates` row, which serialised their commits on its row lock. The
 *   view under the old name sums the shards.
 */
export class Migration20261201000000_batched_turns extends Migration {
  override name = 'Migration20261201000000_batched_turns';

  override up(): void {
    this.addSql('drop table entry_billing');

    // The messages as JSON text, stored uncompressed: PostgreSQL never looks
    // inside them, so parsing them into jsonb or compressing them (a batch's
    // messages are far past the TOAST threshold) would be work for nothing.
    this.addSql(`create table nats_outbox_batch (
      id bigserial primary key,
      messages text not null,
      message_count int not null,
      created_at timestamptz not null default now())`);
    this.addSql('alter table nats_outbox_batch alter column messages set storage external');
    this.addSql(`insert into nats_outbox_batch (messages, message_count, created_at)
      select jsonb_agg(jsonb_build_object('subject', subject, 'msg_id', msg_id, 'payload', payload, 'headers', headers) order by id)::text, count(*), min(created_at)
      from nats_outbox having count(*) > 0`);
    this.addSql('drop table nats_outbox');
    this.addSql(`create view nats_outbox as
      select b.id as batch_id, m.position::int as position, m.message->>'subject' as subject, m.message->>'msg_id' as msg_id,
             m.message->'payload' as payload, m.message->'headers' as headers, b.created_at
      from nats_outbox_batch b cross join lateral jsonb_array_elements(b.messages::jsonb) with ordinality as m(message, position)`);

    this.addSql('alter table pipeline_counter rename to pipeline_counter_shard');
    this.addSql('alter table pipeline_counter_shard add column shard int not null default 0');
    this.addSql('alter table pipeline_counter_shard drop constraint pipeline_counter_pkey');
    this.addSql('alter table pipeline_counter_shard add primary key (name, shard)');
    this.addSql('create view pipeline_counter as select name, sum(value)::bigint as value from pipeline_counter_shard group by name');
  }

  override down(): void {
    this.addSql('drop view pipeline_counter');
    this.addSql(`create table pipeline_counter (name text primary key, value bigint not null default 0)`);
    this.addSql('insert into pipeline_counter (name, value) select name, sum(value) from pipeline_counter_shard group by name');
    this.addSql('drop table pipeline_counter_shard');

    this.addSql('drop view nats_outbox');
    this.addSql(`create table nats_outbox (
      id bigserial primary key, subject text not null, msg_id text not null, payload jsonb not null, headers jsonb,
      created_at timestamptz not null default now())`);
    this.addSql(`insert into nats_outbox (subject, msg_id, payload, headers, created_at)
      select m->>'subject', m->>'msg_id', m->'payload', m->'headers', b.created_at
      from nats_outbox_batch b cross join lateral jsonb_array_elements(b.messages::jsonb) with ordinality as x(m, position) order by b.id, x.position`);
    this.addSql('drop table nats_outbox_batch');

    this.addSql(`create table entry_billing (
      entry_id text primary key, project_id text not null, latest_revision int not null, charged_revision int,
      charged_hours_hundredths bigint not null default 0, charged_amount_minor bigint not null default 0,
      charge_external_id text, charged_transaction jsonb, updated_at timestamptz not null default now())`);
    this.addSql('create index entry_billing_project_idx on entry_billing (project_id)');
    this.addSql(`insert into entry_billing (entry_id, project_id, latest_revision, charged_revision, charged_hours_hundredths, charged_amount_minor, charge_external_id, charged_transaction)
      select r.entry_id, (array_agg(r.project_id order by r.revision desc))[1], max(r.revision),
             max(r.revision) filter (where r.stage = 'charged'),
             coalesce(max(r.hours_hundredths) filter (where r.stage = 'charged'), 0), coalesce(max(r.amount_minor) filter (where r.stage = 'charged'), 0),
             max(o.external_id), (array_agg(o.transaction) filter (where o.external_id is not null))[1]
      from entry_revision r left join erp_outbox o on r.stage = 'charged' and o.external_id = r.entry_id || ':' || r.revision || ':charge'
      where r.stage <> 'waiting' group by r.entry_id`);
  }
}
