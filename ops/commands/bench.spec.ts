import { afterEach, describe, expect, it, vi } from 'vitest';
import { mainThreadLine, runBench } from './bench.ts';

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
