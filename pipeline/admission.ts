// Where the pipeline's writers wait for room: a turn asks the ERP poster and
// the NATS relay before its region's next one, and each of them holds the turn
// back while too much of what it was handed is still waiting in memory.

/** Writers waiting for room, let go together once `hasRoom()` holds. */
export class Admission {
  readonly #hasRoom: () => boolean;
  readonly #waiting = new Set<() => void>();

  /** `hasRoom` is asked on every `wait()` and `recheck()`; it should hold while its owner is stopped. */
  constructor(hasRoom: () => boolean) {
    this.#hasRoom = hasRoom;
  }

  /** Resolves at once while there is room, else once a `recheck()` finds some. */
  wait(): Promise<void> {
    if (this.#hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.add(resolve));
  }

  /** What the owner holds has shrunk, or it stopped: lets every writer go if there is room now. */
  recheck(): void {
    if (!this.#hasRoom()) return;
    for (const resolve of this.#waiting) resolve();
    this.#waiting.clear();
  }
}
