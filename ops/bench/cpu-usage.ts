// Where the machine's CPU goes during a measurement: CPU seconds of each
// process group (billstream, nats-server, PostgreSQL's backends, the bench
// itself, the ERP sandbox), read from /proc. On two shared
// cores the throughput is bounded by their sum; this says which part to cut.
import { readFile, readdir } from 'node:fs/promises';

export type CpuGroups = Record<string, number>;

const TICKS_PER_SECOND = 100;

/** User plus system CPU seconds from a /proc `stat` line (a process's or a thread's: the same layout). */
function cpuSecondsOf(stat: string): number {
  // Fields after the command, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

async function processCpuSeconds(pid: number): Promise<number | null> {
  try {
    return cpuSecondsOf(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

async function commandOf(pid: number): Promise<string | null> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
  } catch {
    return null;
  }
}

/**
 * CPU seconds so far of one thread of a process (the main thread's id is the
 * process's): a Node.js process's total includes its GC and I/O threads, but
 * its JavaScript runs on the main thread alone, which caps it at one core.
 */
export async function threadCpuSeconds(pid: number, tid: number = pid): Promise<number> {
  try {
    return cpuSecondsOf(await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
  } catch {
    return 0;
  }
}

/**
 * A thread's time on a CPU and its time ready to run but waiting for one
 * (in a run queue), in seconds. On two cores shared with PostgreSQL and
 * nats-server, a thread whose CPU time stays well under the wall time can be
 * either: waiting for I/O (the pipeline holds it back) or waiting for a CPU (the
 * machine does). Only the second shows here.
 */
export interface ThreadSchedule { runningSeconds: number; waitingSeconds: number }

/** `/proc/<pid>/task/<tid>/schedstat`: nanoseconds on a CPU, nanoseconds waiting in a run queue, time slices. */
export function parseSchedStat(text: string): ThreadSchedule | null {
  const [running, waiting] = text.trim().split(/\s+/).map(Number);
  if (running === undefined || waiting === undefined || !Number.isFinite(running) || !Number.isFinite(waiting)) return null;
  return { runningSeconds: running / 1e9, waitingSeconds: waiting / 1e9 };
}

/** The schedule so far of one thread (the main thread's id is the process's); null where the kernel keeps no schedstat. */
export async function threadSchedule(pid: number, tid: number = pid): Promise<ThreadSchedule | null> {
  try {
    return parseSchedStat(await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * CPU seconds per process group over a measurement, from /proc samples taken
 * as it runs. A process that started after the first sample counts in full; one
 * that ended keeps what it had spent by the last sample that saw it. Compared at
 * the two ends only, an ended process was lost: a pg pool closes a backend idle
 * for 10 s, and with it went its CPU (the ERP sandbox's PostgreSQL share read
 * 9.9 CPU-s in one 1M run and 24.9 in the next).
 */
export class CpuTracker {
  readonly #groupOf: (pid: number, command: string) => string | null;
  /** Each process's CPU seconds at the first sample. */
  readonly #first = new Map<number, number>();
  /** Each process's group and CPU seconds at the last sample that saw it. */
  readonly #last = new Map<number, { group: string; seconds: number }>();
  /**
   * Each process's command line, read once (null: gone): reading it and every
   * process's CPU at each sample cost 42 ms of the bench's CPU per sample, on a
   * machine whose two cores the bench is measuring.
   */
  readonly #commands = new Map<number, string | null>();
  #sampled = false;

  /** `groupOf` names a process's group (null leaves it out); it is asked again at every sample. */
  constructor(groupOf: (pid: number, command: string) => string | null) {
    this.#groupOf = groupOf;
  }

  async sample(): Promise<void> {
    const pids = (await readdir('/proc').catch(() => [])).filter((name) => /^\d+$/.test(name)).map(Number);
    for (const pid of pids) {
      let command = this.#commands.get(pid);
      if (command === undefined) this.#commands.set(pid, (command = await commandOf(pid)));
      if (command === null) continue;
      const group = this.#groupOf(pid, command);
      if (group === null) continue;
      const seconds = await processCpuSeconds(pid);
      if (seconds === null) continue;
      if (!this.#sampled) this.#first.set(pid, seconds);
      this.#last.set(pid, { group, seconds });
    }
    this.#sampled = true;
  }

  /** CPU seconds per group from the first sample to each process's last. */
  spent(): CpuGroups {
    const spent: CpuGroups = {};
    for (const [pid, { group, seconds }] of this.#last) spent[group] = (spent[group] ?? 0) + Math.max(0, seconds - (this.#first.get(pid) ?? 0));
    return spent;
  }
}

/** A PostgreSQL server process as `pg_stat_activity` lists it. */
export interface PostgresSession { pid: number; database: string | null; applicationName: string; backendType: string }

/** Lists the server's processes: `select pid, datname, application_name, backend_type from pg_stat_activity`. */
export const POSTGRES_SESSIONS = `select pid, datname as database, application_name as "applicationName", backend_type as "backendType" from pg_stat_activity`;

/**
 * Who a PostgreSQL process works for. On the bench's one server, the ERP
 * sandbox's books share billstream's PostgreSQL, so "postgres" alone charges
 * billstream for what stands in for an external ERP:
 * - a client backend of `database` is its client's, by `application_name`
 *   (`clients` maps a name to a group; an unknown name is `other`);
 * - a background process (WAL writer, checkpointer...) or one the view does not
 *   list (the postmaster) is the `server`'s: it works for every client;
 * - a backend of another database is none of the bench's: left out (null).
 */
export function postgresClientOf(sessions: readonly PostgresSession[], database: string, clients: Readonly<Record<string, string>>): (pid: number) => string | null {
  const byPid = new Map(sessions.map((s) => [s.pid, s]));
  return (pid) => {
    const session = byPid.get(pid);
    if (!session || session.backendType !== 'client backend') return 'server';
    if (session.database !== database) return null;
    return clients[session.applicationName] ?? 'other';
  };
}
