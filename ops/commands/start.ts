// `billstream start`: the long-running pipeline. SIGTERM or SIGINT drains it:
// intake stops, turns in flight commit and ack, the outboxes flush, then exit.
//
// It runs with a heap budget (BILLSTREAM_HEAP_MIB, default 320). The pipeline's
// live data is bounded (in-flight messages, one turn per lane, the dedupe
// window), but V8 sizes its heap from the allocation rate, not the live set: a
// week close left the heap at several times what was alive (a snapshot mid-drain
// held 110 MiB while the process was resident at 550). A limit makes V8 collect
// before it grows; it can only be set when the process starts, so
// `billstream start` without one starts itself again with it.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { createDatabaseIfMissing } from '../embedded/services.ts';
import { ConfigError, DEFAULT_HEAP_MIB, loadConfig } from '../config.ts';
import { startRuntime } from '../runtime.ts';

/** The V8 flags `billstream start` runs with: what the benchmark's measured process is started with too. */
export function startNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const text = env.BILLSTREAM_HEAP_MIB;
  const mib = text === undefined || text === '' ? DEFAULT_HEAP_MIB : Number(text);
  if (!Number.isInteger(mib) || mib < 0 || (mib > 0 && mib < 64)) {
    throw new ConfigError(`invalid configuration:\n  BILLSTREAM_HEAP_MIB: must be 0 (V8's own limit) or a whole number of MiB of at least 64, got '${text}'`);
  }
  if (mib === 0) return [];
  // A young generation of V8's default size for this heap promotes a turn's
  // short-lived objects to the old generation before they die; 32 MiB
  // semi-spaces let them die young. Measured with `bench weekclose --entries
  // 100000`, two runs each: peak RSS 366–383 MiB against 436–439, same rate.
  // 64 MiB spent 5% less CPU at 1M entries but did not raise the rate, and
  // peak RSS rose from 427 to 496–499 MiB, against a 512 MiB target.
  // Half of billstream's CPU is collection, most of it the concurrent marking of
  // a mark-compact about every second: V8 let the old generation grow ~1.4x past
  // what survived before marking again. Growing it 2x marks half as often:
  // billstream's CPU at 1M entries 187.8 CPU-s against 215.7, peak RSS 454 MiB
  // against 440 (`bench weekclose`, one run each; at 100k 16.1–18.1 CPU-s
  // against 18.7–19.6). 3x spent no less at 100k.
  return [`--max-old-space-size=${mib}`, `--max-semi-space-size=${semiSpaceMiB(mib)}`, '--heap-growing-percent=100'];
}

/**
 * The environment `billstream start` runs with beside its flags (as does the
 * benchmark's measured process). glibc's malloc gives each thread that allocates
 * an arena of its own, up to eight per core, and keeps what is freed in each:
 * V8's collector threads and libuv's pool are such threads. Two arenas are
 * enough for them. Measured with `bench weekclose` (1M entries, same code, one
 * after another): peak RSS 454 and 471 MiB with two arenas, 463–503 MiB (490 on
 * average) in six runs without, billstream's CPU per entry 92 µs in both of a
 * back-to-back pair.
 * A MALLOC_ARENA_MAX already set is kept.
 */
export function startNodeEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return { MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX || '2' };
}

/** A tenth of the heap budget, at most 32 MiB. */
function semiSpaceMiB(heapMiB: number): number {
  return Math.max(1, Math.min(32, Math.floor(heapMiB / 10)));
}

function hasHeapLimit(): boolean {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((flag) => flag.startsWith('--max-old-space-size'));
}

/**
 * `billstream start` as configured: in this process when it already has a heap
 * limit (or none is wanted), else in a child started with one, which gets the
 * signals and whose exit code is this process's.
 */
export async function runStartCommand(): Promise<number> {
  const flags = startNodeFlags();
  if (flags.length === 0 || hasHeapLimit()) return runStart();
  const started = startChild({ flags, execArgv: process.execArgv, argv: process.argv, env: process.env, pid: process.pid });
  const child = spawn(process.execPath, started.args, { stdio: 'inherit', env: started.env });
  const forward = (signal: NodeJS.Signals) => { child.kill(signal); };
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 1)));
  });
}

/** How `runStartCommand` starts its child: this process's command again, behind the flags, in the environment `startNodeEnv` adds to. */
export function startChild(self: { flags: string[]; execArgv: string[]; argv: string[]; env: NodeJS.ProcessEnv; pid: number }): { args: string[]; env: NodeJS.ProcessEnv } {
  return {
    args: [...self.flags, ...self.execArgv, ...self.argv.slice(1)],
    env: { ...self.env, ...startNodeEnv(self.env), [SUPERVISOR_PID]: String(self.pid) },
  };
}

/** Set for the child `runStartCommand` starts: the pid of the process that started it. */
const SUPERVISOR_PID = 'BILLSTREAM_SUPERVISOR_PID';

/** Resolves if the process that started this one is gone (killed without a chance to pass a signal on). */
function supervisorGone(): Promise<void> | null {
  const supervisor = Number(process.env[SUPERVISOR_PID]);
  if (!supervisor) return null;
  return new Promise((resolve) => {
    const timer = setInterval(() => { if (process.ppid !== supervisor) { clearInterval(timer); resolve(); } }, 1000);
    timer.unref();
  });
}

export async function runStart(): Promise<number> {
  const config = loadConfig();
  await createDatabaseIfMissing(config.DATABASE_URL);
  const runtime = await startRuntime(config, { log: (line) => console.error(`[billstream] ${line}`) });
  console.error(`[billstream] running: NATS ${config.NATS_URL}, ops server ${runtime.httpUrl ?? 'off'}, ERP ${config.ERP_BASE_URL}`);
  const failure = await new Promise<unknown>((resolve) => {
    const onSignal = (signal: string) => {
      console.error(`[billstream] ${signal}: draining`);
      resolve(null);
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
    void supervisorGone()?.then(() => onSignal('the process that started billstream is gone'));
    // A pipeline that stopped consuming must not keep its consumers and leases:
    // exiting lets the supervisor start it again and the other instances take over.
    void runtime.failed.then((err) => {
      console.error(`[billstream] the pipeline stopped on an error, exiting: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      resolve(err ?? new Error('the pipeline stopped'));
    });
  });
  await runtime.stop();
  console.error('[billstream] stopped');
  return failure === null ? 0 : 1;
}
