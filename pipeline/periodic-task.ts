// A piece of work repeated on an interval, never overlapping itself: the next
// run is scheduled only after the previous one settles, and stop() waits for a
// run in progress. Timers are unref'd so a forgotten task never holds the
// process open.
export class PeriodicTask {
  readonly #run: () => Promise<unknown>;
  readonly #intervalMs: number;
  readonly #onError: ((err: unknown) => void) | undefined;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> = Promise.resolve();
  #stopped = true;

  constructor(run: () => Promise<unknown>, intervalMs: number, onError?: (err: unknown) => void) {
    this.#run = run;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#run().catch((err: unknown) => this.#onError?.(err)).finally(() => this.#schedule());
    }, this.#intervalMs);
    this.#timer.unref();
  }
}
