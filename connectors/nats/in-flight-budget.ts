// How much a consumer may hold unsettled in memory: a number of messages and
// their payload bytes. The server's max_ack_pending bounds the count only, and a
// NATS message may be up to the server's max_payload, so a count alone would let
// a backlog of large messages fill memory; the source waits for room before it
// hands another message on, and stops pulling while it waits.

export interface InFlightLimits {
  /** Unsettled messages at most. */
  maxMessages: number;
  /** Payload bytes of unsettled messages at most; one message larger than this is still let through on its own. */
  maxBytes: number;
}

export class InFlightLimitError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InFlightLimitError';
  }
}

export class InFlightBudget {
  readonly limits: InFlightLimits;
  #messages = 0;
  #bytes = 0;
  #waiting: { bytes: number; resolve: () => void }[] = [];

  constructor(limits: InFlightLimits) {
    for (const key of ['maxMessages', 'maxBytes'] as const) {
      if (!Number.isInteger(limits[key]) || limits[key] < 1) throw new InFlightLimitError(`InFlightBudget: ${key} must be a positive integer, got ${limits[key]}`);
    }
    this.limits = { ...limits };
  }

  get messages(): number { return this.#messages; }
  get bytes(): number { return this.#bytes; }

  /** Resolves once a message of `bytes` fits; waiters are served in order. */
  acquire(bytes: number): Promise<void> {
    if (this.tryAcquire(bytes)) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push({ bytes, resolve }));
  }

  /** Takes room for a message of `bytes` if it fits now and no one waits before it; false (nothing taken) otherwise. */
  tryAcquire(bytes: number): boolean {
    if (this.#waiting.length > 0 || !this.#fits(bytes)) return false;
    this.#take(bytes);
    return true;
  }

  /** A message taken with `acquire(bytes)` is settled. */
  release(bytes: number): void {
    this.#messages = Math.max(0, this.#messages - 1);
    this.#bytes = Math.max(0, this.#bytes - bytes);
    while (this.#waiting.length > 0 && this.#fits((this.#waiting[0] as { bytes: number }).bytes)) {
      const next = this.#waiting.shift() as { bytes: number; resolve: () => void };
      this.#take(next.bytes);
      next.resolve();
    }
  }

  #fits(bytes: number): boolean {
    return this.#messages === 0 || (this.#messages < this.limits.maxMessages && this.#bytes + bytes <= this.limits.maxBytes);
  }

  #take(bytes: number): void {
    this.#messages++;
    this.#bytes += bytes;
  }
}
