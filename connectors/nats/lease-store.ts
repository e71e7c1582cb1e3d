// Leases in a NATS KV bucket: a key per leased thing (a partition, the router),
// its value the owner's id. Acquire is a create (fails while someone holds it),
// renewal a revision-checked update (fails if anyone else wrote since), release a
// revision-checked delete. The bucket's max age is the lease TTL: a key its owner
// stops renewing disappears, and another instance may then create it. Works on
// nats-server 2.9 (no per-message TTLs needed).
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

export interface LeaseStoreOptions {
  /** @default 'billstream_leases' */
  bucket?: string;
  /** Lease lifetime without renewal. @default 15000 */
  ttlMs?: number;
}

export interface LeaseHolder { owner: string; revision: number }

const decoder = new TextDecoder();

export class LeaseStore {
  readonly #kv: KV;
  readonly ttlMs: number;

  private constructor(kv: KV, ttlMs: number) {
    this.#kv = kv;
    this.ttlMs = ttlMs;
  }

  static async open(nc: NatsConnection, options: LeaseStoreOptions = {}): Promise<LeaseStore> {
    const ttlMs = options.ttlMs ?? 15_000;
    const kv = await new Kvm(nc).create(options.bucket ?? 'billstream_leases', { ttl: ttlMs, history: 1 });
    return new LeaseStore(kv, ttlMs);
  }

  /** The lease's revision when this owner now holds it; null when someone else does. */
  async tryAcquire(key: string, owner: string): Promise<number | null> {
    try {
      return await this.#kv.create(key, owner);
    } catch {
      return null;
    }
  }

  /** The new revision, or null when the lease was lost (expired and taken, or deleted). */
  async renew(key: string, owner: string, revision: number): Promise<number | null> {
    try {
      return await this.#kv.update(key, owner, revision);
    } catch {
      return null;
    }
  }

  async release(key: string, revision: number): Promise<void> {
    await this.#kv.delete(key, { previousSeq: revision }).catch(() => undefined);
  }

  /** Every live lease whose key starts with `prefix`. */
  async list(prefix: string): Promise<Map<string, LeaseHolder>> {
    const holders = new Map<string, LeaseHolder>();
    const keys: string[] = [];
    for await (const key of await this.#kv.keys(`${prefix}>`)) keys.push(key);
    for (const key of keys) {
      const entry = await this.#kv.get(key);
      if (!entry || entry.operation !== 'PUT') continue;
      holders.set(key, { owner: decoder.decode(entry.value), revision: entry.revision });
    }
    return holders;
  }
}
