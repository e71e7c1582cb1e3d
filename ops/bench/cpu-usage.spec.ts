import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CpuTracker, parseSchedStat, postgresClientOf, threadSchedule, type PostgresSession } from './cpu-usage.ts';

describe('CpuTracker', () => {
  it('keeps the CPU of a process that ended between its samples', async () => {
    // Burns 300 ms of CPU, says so, and exits 200 ms later.
    const child = spawn(process.execPath, ['-e', `const t = Date.now(); while (Date.now() - t < 300); process.stdout.write('burnt'); setTimeout(() => {}, 200);`]);
    const tracker = new CpuTracker((pid) => (pid === child.pid ? 'child' : null));
    await tracker.sample();
    await once(child.stdout, 'data');
    await tracker.sample();
    await once(child, 'exit');
    await tracker.sample();
    expect(tracker.spent().child).toBeGreaterThanOrEqual(0.25);
  });

  it('counts only what was spent after its first sample', async () => {
    const tracker = new CpuTracker((pid) => (pid === process.pid ? 'self' : null));
    await tracker.sample();
    const t = Date.now();
    while (Date.now() - t < 200);
    await tracker.sample();
    const spent = tracker.spent().self ?? 0;
    expect(spent).toBeGreaterThanOrEqual(0.15);
    // The test process ran for a while before the first sample; none of that counts.
    expect(spent).toBeLessThan(process.cpuUsage().user / 1e6);
  });
});

describe('postgresClientOf', () => {
  const sessions: PostgresSession[] = [
    { pid: 10, database: 'billstream_bench', applicationName: 'billstream', backendType: 'client backend' },
    { pid: 11, database: 'billstream_bench', applicationName: 'billstream-erp-sandbox', backendType: 'client backend' },
    { pid: 12, database: 'billstream_bench', applicationName: 'psql', backendType: 'client backend' },
    { pid: 13, database: 'test', applicationName: 'billstream', backendType: 'client backend' },
    { pid: 14, database: null, applicationName: '', backendType: 'walwriter' },
  ];
  const clientOf = postgresClientOf(sessions, 'billstream_bench', { billstream: 'billstream', 'billstream-erp-sandbox': 'ERP sandbox' });

  it('names a backend of the measured database by its application_name, an unknown one other', () => {
    expect([10, 11, 12].map(clientOf)).toEqual(['billstream', 'ERP sandbox', 'other']);
  });

  it('leaves out a backend of another database, even one of billstream', () => {
    expect(clientOf(13)).toBeNull();
  });

  it('counts background processes and unlisted ones (the postmaster) as the server', () => {
    expect([14, 99].map(clientOf)).toEqual(['server', 'server']);
  });
});

describe('thread schedule', () => {
  it('reads schedstat\'s nanoseconds on a CPU and waiting in a run queue as seconds', () => {
    expect(parseSchedStat('5200000000 4550000000 7236\n')).toEqual({ runningSeconds: 5.2, waitingSeconds: 4.55 });
    expect(parseSchedStat('')).toBeNull();
    expect(parseSchedStat('not numbers')).toBeNull();
  });

  // A kernel built without schedstat has no such file: the bench then prints no wait.
  it.runIf(existsSync(`/proc/${process.pid}/task/${process.pid}/schedstat`))('follows this process\'s main thread as it burns CPU', async () => {
    const before = await threadSchedule(process.pid);
    if (before === null) throw new Error('schedstat is there but could not be read');
    const t = Date.now();
    while (Date.now() - t < 200);
    const after = await threadSchedule(process.pid);
    expect((after?.runningSeconds ?? 0) - before.runningSeconds).toBeGreaterThanOrEqual(0.15);
    expect(after?.waitingSeconds).toBeGreaterThanOrEqual(before.waitingSeconds);
  });
});
