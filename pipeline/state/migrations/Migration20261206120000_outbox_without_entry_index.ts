import { Migration } from '@mikro-orm/migrations';

/**
 * The ERP outbox loses its index by entry_id.
 *
 * An entry's lines are its revisions' charges and reversals, whose externalIds
 * (`<entryId>:<revision>:charge|reversal`) the unique index already finds; the
 * lifecycle route looks them up that way. Entry ids arrive in no particular
 * order, so each line's insert went to a random page of this index: at a
 * million lines it was the index PostgreSQL's 128 MB of shared buffers missed
 * most (136,000 blocks read back in one week close), and every page it dirtied
 * after a checkpoint was written to the WAL whole.
 */
export class Migration20261206120000_outbox_without_entry_index extends Migration {
  override name = 'Migration20261206120000_outbox_without_entry_index';

  override up(): void {
    this.addSql('drop index erp_outbox_entry_idx');
  }

  override down(): void {
    this.addSql('create index erp_outbox_entry_idx on erp_outbox (entry_id)');
  }
}
