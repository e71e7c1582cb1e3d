import { describe, expect, it } from 'vitest';
import { runTimedWorker } from './timed-worker.ts';

/** A worker module from `body`, with `serveTimedWork` imported and `flags` (an Int32Array on workerData.flags) shared with the test. */
function workerModule(body: string): URL {
  const timedWorker = new URL('./timed-worker.ts', import.meta.url).href;
  return new URL(`data:text/javascript,${encodeURIComponent(`
    import { serveTimedWork, timedWorkerData } from ${JSON.stringify(timedWorker)};
    const flags = new Int32Array(timedWorkerData('spec').flags);
    ${body}
  `)}`);
}

describe('runTimedWorker', () => {
  it('times the run alone: the worker\'s preparation and the main thread\'s ready come before the clock starts', async () => {
    const flags = new SharedArrayBuffer(8);
    const url = workerModule(`
      await serveTimedWork(async () => {
        await new Promise((r) => setTimeout(r, 300)); // preparing
        return { run: () => new Promise((r) => setTimeout(r, 100)), close: async () => { Atomics.store(flags, 0, 1); } };
      });
    `);
    let readyAt = 0;
    const started = performance.now();
    const seconds = await runTimedWorker(url, 'spec', { flags }, async () => { readyAt = performance.now(); await new Promise((r) => setTimeout(r, 1_000)); });
    expect(readyAt - started).toBeGreaterThanOrEqual(290);
    expect(seconds).toBeGreaterThanOrEqual(0.09);
    // Counted from the go, it leaves out the 1 s `ready` took.
    expect(seconds).toBeLessThan(0.9);
    expect(new Int32Array(flags)[0]).toBe(1);
  });

  it('rejects with the message of what failed in the worker, and closes its work', async () => {
    const flags = new SharedArrayBuffer(8);
    const url = workerModule(`
      await serveTimedWork(async () => ({ run: async () => { throw new Error('the sink refused copy 7'); }, close: async () => { Atomics.store(flags, 0, 1); } }));
    `);
    await expect(runTimedWorker(url, 'spec', { flags })).rejects.toThrow('the sink refused copy 7');
    expect(new Int32Array(flags)[0]).toBe(1);
  });

  it('rejects with ready\'s own error and stops the worker before it runs', async () => {
    const flags = new SharedArrayBuffer(8);
    const url = workerModule(`
      await serveTimedWork(async () => ({ run: async () => { Atomics.store(flags, 1, 1); }, close: async () => {} }));
    `);
    await expect(runTimedWorker(url, 'spec', { flags }, () => { throw new Error('no CPU sample'); })).rejects.toThrow('no CPU sample');
    expect(new Int32Array(flags)[1]).toBe(0);
  });
});
