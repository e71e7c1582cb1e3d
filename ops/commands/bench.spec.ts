import { afterEach, describe, expect, it, vi } from 'vitest';
import { weekCloseTargets } from '../bench/week-close-bench.ts';
import { cpuBudget } from '../bench/cpu-budget.ts';
import { cpuBudgetLines, mainThreadLine, ratiosLine, runBench } from './bench.ts';

// Each case is refused before any server is started: the options are read first.
describe('billstream bench, its options', () => {
  afterEach(() => { vi.restoreAllMocks(); });

  function captured() {
    const err: string[] = [];
    const out: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => { err.push(args.join(' ')); });
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => { out.push(args.join(' ')); });
    return { err: () => err.join('\n'), out: () => out.join('\n') };
  }

  it('refuses an unknown option by name, with the usage, exit code 2', async () => {
    const io = captured();
    expect(await runBench(['weekclose', '--entrees', '10'])).toBe(2);
    expect(io.err()).toMatch(/--entrees/);
    expect(io.err()).toContain('bench weekclose [--entries N');
  });

  it('refuses an option without its value', async () => {
    const io = captured();
    expect(await runBench(['weekclose', '--entries'])).toBe(2);
    expect(io.err()).toMatch(/--entries/);
  });

  it('refuses a count that is not a positive integer, naming the option', async () => {
    const io = captured();
    expect(await runBench(['weekclose', '--entries', '0'])).toBe(2);
    expect(io.err()).toContain("--entries must be a positive integer, got '0'");
  });

  it('prints the scenario usage for --help and exits 0', async () => {
    const io = captured();
    expect(await runBench(['pipeline', '--help'])).toBe(0);
    expect(io.out()).toContain('bench pipeline [--entries N');
  });

  it('lists the scenarios for an unknown one', async () => {
    const io = captured();
    expect(await runBench(['nosuch'])).toBe(2);
    expect(io.err()).toContain('bench weekclose');
    expect(io.err()).toContain('bench pipeline');
  });
});

describe('mainThreadLine', () => {
  it('gives the main thread\'s time on a CPU and its time waiting for one, each as a share of the drain', () => {
    expect(mainThreadLine({ seconds: 158.1, mainThreadSeconds: 81.7, mainThreadWaitingSeconds: 71.3 }))
      .toBe("  billstream's main thread (its JavaScript) busy 52% of the drain (81.7 CPU-s), ready but waiting for a CPU 45% (71.3 s)");
  });

  it('leaves the wait out where the kernel keeps no schedstat', () => {
    expect(mainThreadLine({ seconds: 10, mainThreadSeconds: 5, mainThreadWaitingSeconds: null }))
      .toBe("  billstream's main thread (its JavaScript) busy 50% of the drain (5.0 CPU-s)");
  });
});

describe('the week close targets', () => {
  const measured = (toBrokerLimit: number, toNaive: number, peakRssMiB: number, p99Ms: number) =>
    weekCloseTargets({ ratios: { toBrokerLimit, toNaive }, billstream: { peakRssMiB } as never, latencyAtHalfLoad: { p99Ms } as never });

  it('judges each figure unrounded against its target', () => {
    const judged = measured(0.496, 12.83, 459, 859);
    expect([judged.toBrokerLimit.met, judged.toNaive.met, judged.peakRssMiB.met, judged.p99AtHalfLoadMs.met]).toEqual([false, true, true, true]);
    const edges = measured(0.5, 10, 512, 2000);
    expect([edges.toBrokerLimit.met, edges.toNaive.met, edges.peakRssMiB.met, edges.p99AtHalfLoadMs.met]).toEqual([true, true, false, false]);
  });

  it('prints a ratio just under its target with three decimals and says it missed, never as a rounded 0.50', () => {
    const line = ratiosLine(measured(0.49599, 9.96, 459, 859));
    expect(line).toBe('  billstream / broker limit: 0.496 (target at least 0.5: MISSED)   billstream / naive: 10.0x (target at least 10x: MISSED)');
  });
});

describe('cpuBudgetLines', () => {
  const budgetOf = (billstreamSeconds: number, postgresSeconds: number) => cpuBudget({
    cores: 2, toBrokerLimitTarget: 0.5,
    brokerLimit: { messages: 100_000, perSecond: 50_000, cpuSeconds: { 'nats-server': 2.0, bench: 1.5 } },
    billstream: {
      entries: 100_000, cpuSeconds: { billstream: billstreamSeconds, postgres: postgresSeconds, 'nats-server': 3.0, 'ERP sandbox': 1.2, bench: 0.1 },
      postgresCpuSeconds: { billstream: postgresSeconds - 1.5, 'ERP sandbox': 1.5 },
    },
  });

  it('says per entry where the CPU went, and per message of the broker limit', () => {
    const [perEntry, broker] = cpuBudgetLines(budgetOf(12.0, 7.9), { atLeast: 0.5 });
    expect(perEntry).toBe('  CPU per entry decided: billstream 120 µs, postgres 79 µs, nats-server 30 µs, ERP sandbox 12 µs, bench 1 µs (242 µs in all)');
    expect(broker).toBe('  CPU per message of the broker limit: nats-server 20 µs, bench 15 µs (1.75 of 2 cores busy)');
  });

  it('says the target is out of reach when the others\' work alone overruns what it leaves per entry', () => {
    const limit = cpuBudgetLines(budgetOf(12.0, 7.9), { atLeast: 0.5 })[2];
    expect(limit).toBe("  what limits billstream: 0.5 of the broker limit leaves 80 µs per entry for every process on 2 cores; the others' work for billstream's entries took 122 µs " +
      "(95 µs without the ERP sandbox's), which caps billstream at 0.328 of the broker limit even if its own process cost nothing (0.421 without the sandbox's); " +
      "so 0.5 of the broker limit is out of reach on this machine whatever billstream's own code costs");
  });

  it('says what billstream\'s own process may spend when the others leave room for it', () => {
    // PostgreSQL 1.9 CPU-s: the others take 62 µs of the 80.
    const limit = cpuBudgetLines(budgetOf(12.0, 1.9), { atLeast: 0.5 })[2];
    expect(limit).toContain('caps billstream at 0.645 of the broker limit');
    expect(limit).toMatch(/so billstream's own process may spend 18 µs per entry to meet it; it spent 120 µs$/);
  });
});
