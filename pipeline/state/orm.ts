// The ORM's one configuration: entities listed explicitly, migrations checked in
// and run at start-up (never schema sync), a pool sized for actor turns.
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM, defineConfig } from '@mikro-orm/postgresql';
import pg from 'pg';
import { ENTITIES } from './entities.ts';
import { Migration20261125000000_initial } from './migrations/Migration20261125000000_initial.ts';
import { Migration20261125120000_workbench_invoicing_alerts } from './migrations/Migration20261125120000_workbench_invoicing_alerts.ts';
import { Migration20261201000000_batched_turns } from './migrations/Migration20261201000000_batched_turns.ts';
import { Migration20261201120000_outbox_lz4 } from './migrations/Migration20261201120000_outbox_lz4.ts';
import { Migration20261206000000_erp_pending_queue } from './migrations/Migration20261206000000_erp_pending_queue.ts';
import { Migration20261206120000_outbox_without_entry_index } from './migrations/Migration20261206120000_outbox_without_entry_index.ts';

export const MIGRATIONS = [Migration20261125000000_initial, Migration20261125120000_workbench_invoicing_alerts, Migration20261201000000_batched_turns, Migration20261201120000_outbox_lz4,
  Migration20261206000000_erp_pending_queue, Migration20261206120000_outbox_without_entry_index];

/** The `application_name` of the ledger's sessions. */
export const LEDGER_APPLICATION_NAME = 'billstream';

export interface LedgerOptions {
  databaseUrl: string;
  /** @default 10 */
  poolSize?: number;
}

export function ormConfig(options: LedgerOptions) {
  return defineConfig({
    clientUrl: options.databaseUrl,
    entities: ENTITIES,
    extensions: [Migrator],
    migrations: { migrationsList: MIGRATIONS, transactional: true, allOrNothing: true, silent: true, snapshot: false },
    pool: { min: 0, max: options.poolSize ?? 10 },
    // Passed to pg's Pool. JIT off for every session: the ledger's statements are
    // short, and a table without statistics (never analyzed yet) has the planner
    // overestimate their cost past jit_above_cost, so each one compiled for
    // 40–120 ms to run for 5. Sessions are `billstream` in pg_stat_activity, so a
    // DBA (and the bench, splitting the server's CPU by client) can tell them
    // apart; as with libpq, `?application_name=` in DATABASE_URL or PGAPPNAME wins
    // (the ORM reads only host, port, user, password and database from the URL).
    driverOptions: { options: '-c jit=off', ...applicationName(options.databaseUrl) },
    debug: false,
    allowGlobalContext: false,
  });
}

/** The URL's own `application_name` if it has one, else `billstream` unless PGAPPNAME names the sessions. */
function applicationName(databaseUrl: string): { application_name: string } | { fallback_application_name: string } {
  const named = new URL(databaseUrl).searchParams.get('application_name');
  return named ? { application_name: named } : { fallback_application_name: LEDGER_APPLICATION_NAME };
}

/**
 * Opens the ledger and brings its schema up to date with the checked-in
 * migrations. Several instances starting together take turns: a session-level
 * advisory lock, held on a connection of its own, serialises their migrators.
 */
export async function openLedger(options: LedgerOptions): Promise<MikroORM> {
  const orm = await MikroORM.init(ormConfig(options));
  const lock = new pg.Client({ connectionString: options.databaseUrl, ...applicationName(options.databaseUrl) });
  await lock.connect();
  try {
    await lock.query(`select pg_advisory_lock(hashtext('billstream:migrations'))`);
    await orm.migrator.up();
  } catch (err) {
    await orm.close();
    throw err;
  } finally {
    await lock.end();
  }
  return orm;
}
