// A measured row of the bench, run in a worker thread of its own. The bench's
// heap holds the whole generated week (a million messages, over a gigabyte);
// work on its main thread pays for collecting that heap, in CPU and in pauses,
// and a baseline measured there measures the bench as much as itself. A worker
// has a heap of its own, holding only what its row needs.
//
// The protocol: the worker prepares (connections, a view), says it is ready,
// waits for the go, runs, and reports the seconds it ran; the main thread
// samples whatever it measures around the run between the ready and the go.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export class TimedWorkerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimedWorkerError';
  }
}

/** The key of workerData that names the worker's role. */
const ROLE = 'timedWorkerRole';

/**
 * The data the worker of `role` was started with, in that worker; null on the
 * main thread and in any other worker. A module that is also a worker's entry
 * point serves its work when this is not null.
 */
export function timedWorkerData<T>(role: string): T | null {
  if (isMainThread) return null;
  const data = workerData as Record<string, unknown> | null;
  return data?.[ROLE] === role ? (data as T) : null;
}

type FromWorker = { ready: true } | { seconds: number } | { error: string };

/**
 * Starts `moduleUrl` as the worker of `role` with `data`, calls `ready` once the
 * worker has prepared and before it runs, and resolves with the seconds the run
 * took. A failure in the worker rejects with its message.
 */
export function runTimedWorker(moduleUrl: URL, role: string, data: object, ready: () => Promise<void> | void = () => {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(moduleUrl, { workerData: { ...data, [ROLE]: role } });
    let seconds: number | null = null;
    let failure: Error | null = null;
    worker.on('message', (message: FromWorker) => {
      if ('ready' in message) {
        void Promise.resolve().then(ready).then(() => worker.postMessage('go'), (err: unknown) => {
          failure = err instanceof Error ? err : new TimedWorkerError(String(err));
          void worker.terminate();
        });
      } else if ('error' in message) failure = new TimedWorkerError(message.error);
      else seconds = message.seconds;
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (failure) reject(failure);
      else if (seconds !== null && code === 0) resolve(seconds);
      else reject(new TimedWorkerError(`the bench's worker ${moduleUrl.pathname} exited with code ${code} before its run was over`));
    });
  });
}

/** What a worker runs: prepared before the ready, run after the go, closed whatever happens. */
export interface TimedWork {
  run(): Promise<void>;
  close(): Promise<void>;
}

/** The worker's side: prepares, reports ready, waits for the go, runs and reports the seconds (or the error). */
export async function serveTimedWork(prepare: () => Promise<TimedWork>): Promise<void> {
  let work: TimedWork | null = null;
  try {
    work = await prepare();
    const go = new Promise((resolve) => parentPort?.once('message', resolve));
    parentPort?.postMessage({ ready: true } satisfies FromWorker);
    await go;
    const started = performance.now();
    await work.run();
    parentPort?.postMessage({ seconds: (performance.now() - started) / 1000 } satisfies FromWorker);
  } catch (err) {
    parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) } satisfies FromWorker);
  } finally {
    await work?.close();
  }
}
