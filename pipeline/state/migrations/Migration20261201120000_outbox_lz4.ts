import { Migration } from '@mikro-orm/migrations';

/**
 * The NATS outbox's messages are compressed with lz4 where the server has it.
 *
 * Each outbox row is written once and deleted as soon as its messages are
 * published, so what it costs is writing it: a thousand-entry turn's row is
 * about 700 KB of JSON. Stored uncompressed, a week close of a million entries
 * wrote 989 MB of it (heap, TOAST and WAL); lz4 shrinks a row about 7× and,
 * writing less, inserts it faster too (9.3 and 7.5 ms against 12.4 and 10.5 ms
 * per 700 KB row, two rounds of 100 on this machine's PostgreSQL 15; pglz,
 * PostgreSQL's default, compresses as well but inserts slower than no
 * compression at all). A server built without lz4 keeps the column as it was.
 */
export class Migration20261201120000_outbox_lz4 extends Migration {
  override name = 'Migration20261201120000_outbox_lz4';

  override up(): void {
    this.addSql(`do $$
      begin
        alter table nats_outbox_batch alter column messages set compression lz4;
        alter table nats_outbox_batch alter column messages set storage extended;
      exception when feature_not_supported then
        raise notice 'this PostgreSQL has no lz4: the NATS outbox stays uncompressed';
      end $$`);
  }

  override down(): void {
    this.addSql('alter table nats_outbox_batch alter column messages set compression default');
    this.addSql('alter table nats_outbox_batch alter column messages set storage external');
  }
}
