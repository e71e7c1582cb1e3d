// NATS KV as the connectors' small, shared, durable state: pull cursors
// (billstream_cursors), mapping templates and routing rules
// (billstream_templates). Values are JSON. A KvMirror keeps an in-memory copy
// of some keys current by watching the bucket, which is how templates and
// routing rules change at run time without a restart. Works on nats-server 2.9.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

export const KV_BUCKETS = {
  /** Incremental pull cursors and the revision ledger of sources without update times. */
  cursors: 'billstream_cursors',
  /** Mapping templates (`template.<name>`) and routing rules (`routing.<name>`). */
  templates: 'billstream_templates',
} as const;

/** Opens the bucket, creating it when missing (history kept for templates: they are versioned). */
export async function openBucket(nc: NatsConnection, bucket: string, options: { history?: number } = {}): Promise<KV> {
  return new Kvm(nc).create(bucket, { history: options.history ?? 1 });
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface KvValue<T> {
  value: T;
  /** The bucket's revision of this value: compare-and-set with it. */
  revision: number;
}

/** The current JSON value of a key; null when absent or deleted. */
export async function getJson<T = unknown>(kv: KV, key: string): Promise<KvValue<T> | null> {
  const entry = await kv.get(key);
  if (entry === null || entry.operation !== 'PUT' || entry.length === 0) return null;
  return { value: JSON.parse(decoder.decode(entry.value)) as T, revision: entry.revision };
}

/** Stores a JSON value; with `previousRevision`, only if nobody wrote the key since (0: only if absent). */
export async function putJson(kv: KV, key: string, value: unknown, options: { previousRevision?: number } = {}): Promise<number> {
  const data = encoder.encode(JSON.stringify(value));
  if (options.previousRevision === undefined) return kv.put(key, data);
  if (options.previousRevision === 0) return kv.create(key, data);
  return kv.update(key, data, options.previousRevision);
}

/** KV keys are subject tokens: anything outside `[-/_=.a-zA-Z0-9]` is replaced so any name can be a key part. */
export function kvKeyPart(text: string): string {
  return text.replace(/[^-_=a-zA-Z0-9/]/g, '_') || '_';
}

export interface KvChange {
  key: string;
  /** The raw text of the new value; null when the key was deleted or purged. */
  text: string | null;
  revision: number;
}

export interface KvMirrorOptions {
  /** Keys to follow, as a subject filter, e.g. `template.>`. */
  filter: string;
  /** Called for the initial values and every later change, in revision order per key. */
  onChange(change: KvChange): void;
  onError?(err: unknown): void;
}

/**
 * Follows the keys of a bucket: reads their current values first (so `start()`
 * resolves with a complete picture), then applies every later change the watch
 * delivers. A change at or below the revision already applied is skipped, so
 * the overlap between the initial read and the watch is harmless.
 */
export class KvMirror {
  readonly #kv: KV;
  readonly #options: KvMirrorOptions;
  readonly #applied = new Map<string, number>();
  #watch: Awaited<ReturnType<KV['watch']>> | undefined;
  #loop: Promise<void> | undefined;

  constructor(kv: KV, options: KvMirrorOptions) {
    this.#kv = kv;
    this.#options = options;
  }

  async start(): Promise<void> {
    if (this.#watch) return;
    // Watch first, then read: a change made between the two is seen by the watch.
    this.#watch = await this.#kv.watch({ key: this.#options.filter });
    const keys = await this.#kv.keys(this.#options.filter);
    const names: string[] = [];
    for await (const key of keys) names.push(key);
    for (const key of names) {
      const entry = await this.#kv.get(key);
      if (entry) this.#apply(key, entry.operation === 'PUT' ? decoder.decode(entry.value) : null, entry.revision);
    }
    const watch = this.#watch;
    this.#loop = (async () => {
      for await (const entry of watch) {
        this.#apply(entry.key, entry.operation === 'PUT' ? decoder.decode(entry.value) : null, entry.revision);
      }
    })().catch((err: unknown) => this.#options.onError?.(err));
  }

  async stop(): Promise<void> {
    this.#watch?.stop();
    await this.#loop;
    this.#watch = undefined;
    this.#loop = undefined;
  }

  #apply(key: string, text: string | null, revision: number): void {
    if ((this.#applied.get(key) ?? 0) >= revision) return;
    this.#applied.set(key, revision);
    try {
      this.#options.onChange({ key, text, revision });
    } catch (err) {
      this.#options.onError?.(err);
    }
  }
}
