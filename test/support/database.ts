// A private PostgreSQL database per test suite on the machine's server, dropped on
// dispose, so runs never see each other's rows.
import { randomBytes } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { openLedger } from '../../pipeline/state/orm.ts';

export const ADMIN_DATABASE_URL = process.env.TEST_ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase extends AsyncDisposable {
  url: string;
  name: string;
}

export async function createTestDatabase(prefix = 'billstream_test'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async [Symbol.asyncDispose]() {
      const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await client.connect();
      try {
        await client.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A private database brought up to date as billstream's ledger: its ORM, and a plain client on it for what a test checks. */
export interface TestLedger extends AsyncDisposable {
  url: string;
  orm: MikroORM;
  sql: pg.Client;
}

/** The ledger, its client and its database are all gone on dispose, whatever the test left (and if opening fails half way). */
export async function createTestLedger(): Promise<TestLedger> {
  const db = await createTestDatabase();
  const opened: { orm?: MikroORM; sql?: pg.Client } = {};
  const dispose = async () => {
    await opened.sql?.end().catch(() => undefined);
    await opened.orm?.close();
    await db[Symbol.asyncDispose]();
  };
  try {
    const orm = (opened.orm = await openLedger({ databaseUrl: db.url }));
    const sql = (opened.sql = new pg.Client({ connectionString: db.url }));
    await sql.connect();
    return { url: db.url, orm, sql, [Symbol.asyncDispose]: dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}
