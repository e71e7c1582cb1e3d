// Cluster mode: several `billstream start` processes share the work while each
// project's billing stays strictly serial on exactly one of them.
//
//   ingest.time.> / ingest.milestone.>  ─(router, one instance at a time)→  part.<n>.<subject>
//   part.<n>.>  ─(consumed only by the owner of partition n's lease)→  the pipeline's actors
//
// nats-server 2.9 has no server-side subject transforms, so the router does the
// partitioning client-side: it holds a `router` lease, re-publishes each message
// (in order, with Nats-Msg-Id `route:<stream sequence>`) to its partition's subject
// and acks the original only after the partitioned copy is stored. Partition
// leases live in a KV bucket (revision-checked create/update/delete, TTL by the
// bucket's max age); instances rebalance toward a fair share as members join or
// die. A new owner (of a partition or of the router) resumes the durable
// consumer from its ack floor, so what the last owner held unacked comes again
// in stream order before anything newer; the router's Nats-Msg-Id, the ledger's
// keys and the project row lock make a second processing harmless.
import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { Subject, mergeMap, from, type Observable, type Subscription } from 'rxjs';
import { fromJsMsg } from '../connectors/nats/incoming.ts';
import type { InFlightBudget } from '../connectors/nats/in-flight-budget.ts';
import { jetStreamSource } from '../connectors/nats/jetstream-source.ts';
import type { LeaseStore } from '../connectors/nats/lease-store.ts';
import { STREAMS, ensureConsumerFromAckFloor, partitionConsumerName, routerConsumerName, type TopologyOptions } from '../connectors/nats/topology.ts';
import type { IncomingMessage } from '../pipeline/billing-pipeline.ts';
import { partitionOf, planLeases } from '../pipeline/partitioning.ts';

export interface ClusterOptions {
  instanceId: string;
  partitions: number;
  topology?: TopologyOptions;
  /** A fresh in-flight budget for each owned partition's consumer (count and bytes of unsettled messages). */
  inFlight?: () => InFlightBudget;
  log?: (line: string) => void;
}

const INGESTED_AT = 'Billstream-Ingested-At';
/** The kinds whose messages keep a project's order: routed to partitions in cluster mode, resumed from the ack floor by a single instance. */
export const ROUTED_KINDS = ['time', 'milestone'] as const;

interface OwnedPartition {
  revision: number;
  subscription: Subscription;
  inFlight: number;
}

/** The router lease held, and the routing of each kind (a kind whose routing failed waits in `retries` to start again). */
interface Router {
  revision: number;
  subscriptions: Map<string, Subscription>;
  retries: Set<NodeJS.Timeout>;
}

export class PartitionedIntake {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #leases: LeaseStore;
  readonly #options: ClusterOptions;
  readonly #time = new Subject<IncomingMessage>();
  readonly #milestone = new Subject<IncomingMessage>();
  readonly #owned = new Map<number, OwnedPartition>();
  #membership: number | null = null;
  #router: Router | null = null;
  #timer: NodeJS.Timeout | null = null;
  #ticking: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(js: JetStreamClient, jsm: JetStreamManager, leases: LeaseStore, options: ClusterOptions) {
    this.#js = js;
    this.#jsm = jsm;
    this.#leases = leases;
    this.#options = options;
  }

  get time$(): Observable<IncomingMessage> { return this.#time.asObservable(); }
  get milestone$(): Observable<IncomingMessage> { return this.#milestone.asObservable(); }

  ownedPartitions(): number[] { return [...this.#owned.keys()].sort((a, b) => a - b); }
  ownsProject(projectId: string): boolean { return this.#owned.has(partitionOf(projectId, this.#options.partitions)); }
  get routing(): boolean { return this.#router !== null; }

  async start(): Promise<void> {
    await this.#tick();
    // Renew well inside the TTL: a third of it leaves two chances before expiry.
    this.#timer = setInterval(() => { this.#ticking = this.#ticking.then(() => this.#tick()).catch((err: unknown) => this.#log(`lease tick: ${String(err)}`)); }, Math.max(200, Math.floor(this.#leases.ttlMs / 3)));
  }

  /** Stops routing and consuming, waits for in-flight messages, and gives every lease back. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#ticking;
    await this.#stopRouter(true);
    for (const partition of [...this.#owned.keys()]) await this.#releasePartition(partition);
    if (this.#membership !== null) await this.#leases.release(this.#memberKey(), this.#membership);
    this.#time.complete();
    this.#milestone.complete();
  }

  #log(line: string): void { this.#options.log?.(`[cluster ${this.#options.instanceId}] ${line}`); }
  #memberKey(): string { return `member.${this.#options.instanceId}`; }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const self = this.#options.instanceId;
    this.#membership = this.#membership === null
      ? await this.#leases.tryAcquire(this.#memberKey(), self)
      : (await this.#leases.renew(this.#memberKey(), self, this.#membership)) ?? (await this.#leases.tryAcquire(this.#memberKey(), self));

    // Renew what we hold; a lease we lost is someone else's now: stop at once.
    for (const [partition, owned] of [...this.#owned]) {
      const revision = await this.#leases.renew(`partition.${partition}`, self, owned.revision);
      if (revision === null) { this.#log(`lost partition ${partition}`); await this.#stopPartition(partition); } else owned.revision = revision;
    }
    if (this.#router) {
      const revision = await this.#leases.renew('router', self, this.#router.revision);
      if (revision === null) await this.#stopRouter(false); else this.#router.revision = revision;
    }

    const members = [...(await this.#leases.list('member.')).values()].map((h) => h.owner);
    const owners = new Map<number, string>();
    for (const [key, holder] of await this.#leases.list('partition.')) owners.set(Number(key.slice('partition.'.length)), holder.owner);
    const plan = planLeases({ self, members, partitions: this.#options.partitions, owners });
    for (const partition of plan.release) await this.#releasePartition(partition);
    for (const partition of plan.acquire) {
      const revision = await this.#leases.tryAcquire(`partition.${partition}`, self);
      if (revision !== null) await this.#startPartition(partition, revision);
    }
    if (!this.#router) {
      const revision = await this.#leases.tryAcquire('router', self);
      if (revision !== null) await this.#startRouter(revision);
    }
  }

  async #startPartition(partition: number, revision: number): Promise<void> {
    const durable = partitionConsumerName(partition);
    const { rewoundTo } = await ensureConsumerFromAckFloor(this.#jsm, STREAMS.partitioned, durable, `part.${partition}.>`, this.#options.topology);
    if (rewoundTo !== null) this.#log(`partition ${partition} resumes from sequence ${rewoundTo}, the ack floor its last owner left`);
    const owned: OwnedPartition = { revision, inFlight: 0, subscription: null as unknown as Subscription };
    owned.subscription = jetStreamSource(this.#js, {
      stream: STREAMS.partitioned, durable, ...(this.#options.inFlight ? { inFlight: this.#options.inFlight() } : {}),
      onRestart: (err) => this.#log(`partition ${partition} consumer starts again: ${String(err)}`),
    }).subscribe({
      next: (msg) => {
        const incoming = this.#unwrap(msg, partition, owned);
        (incoming.subject.startsWith('ingest.milestone.') ? this.#milestone : this.#time).next(incoming);
      },
      error: (err: unknown) => this.#log(`partition ${partition} consumer: ${String(err)}`),
    });
    this.#owned.set(partition, owned);
    this.#log(`owns partition ${partition}`);
  }

  /** The original ingest message, with settlement counted so a release can wait for it. */
  #unwrap(msg: JsMsg, partition: number, owned: OwnedPartition): IncomingMessage {
    const base = fromJsMsg(msg);
    const prefix = `part.${partition}.`;
    const ingestedAt = base.header(INGESTED_AT);
    owned.inFlight++;
    let settled = false;
    const settle = () => { if (!settled) { settled = true; owned.inFlight--; } };
    return {
      ...base,
      subject: base.subject.startsWith(prefix) ? base.subject.slice(prefix.length) : base.subject,
      publishedAt: ingestedAt ? new Date(ingestedAt) : base.publishedAt,
      ack: () => { settle(); base.ack(); },
      nak: (delayMs) => { settle(); base.nak(delayMs); },
    };
  }

  async #stopPartition(partition: number): Promise<OwnedPartition | undefined> {
    const owned = this.#owned.get(partition);
    if (!owned) return undefined;
    owned.subscription.unsubscribe();
    this.#owned.delete(partition);
    return owned;
  }

  /** Hand a partition over cleanly: stop taking its messages, let the turns holding them commit, then release. */
  async #releasePartition(partition: number): Promise<void> {
    const owned = await this.#stopPartition(partition);
    if (!owned) return;
    const deadline = Date.now() + 15_000;
    while (owned.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.#leases.release(`partition.${partition}`, owned.revision);
    this.#log(`released partition ${partition}`);
  }

  async #startRouter(revision: number): Promise<void> {
    const router: Router = { revision, subscriptions: new Map(), retries: new Set() };
    this.#router = router;
    for (const kind of ROUTED_KINDS) await this.#routeKind(router, kind);
    this.#log('routes ingest to partitions');
  }

  /**
   * Routes one record kind from the consumer's ack floor. A publish that fails
   * stops the kind's routing, and it starts again from the floor a second
   * later: nak'ed and redelivered on its own, the failed message would land in
   * its partition behind the ones routed after it.
   */
  async #routeKind(router: Router, kind: (typeof ROUTED_KINDS)[number]): Promise<void> {
    if (this.#router !== router) return;
    const again = (why: string) => {
      router.subscriptions.get(kind)?.unsubscribe();
      router.subscriptions.delete(kind);
      this.#log(`router of ${kind}: ${why}; starts again from the ack floor`);
      const timer = setTimeout(() => { router.retries.delete(timer); void this.#routeKind(router, kind); }, 1_000);
      router.retries.add(timer);
    };
    const durable = routerConsumerName(kind);
    try {
      const { rewoundTo } = await ensureConsumerFromAckFloor(this.#jsm, STREAMS.ingest, durable, `ingest.${kind}.>`, this.#options.topology);
      if (rewoundTo !== null) this.#log(`router of ${kind} resumes from sequence ${rewoundTo}, the ack floor the last router left`);
    } catch (err) {
      again(String(err));
      return;
    }
    if (this.#router !== router) return;
    router.subscriptions.set(kind, jetStreamSource(this.#js, { stream: STREAMS.ingest, durable, onRestart: (err) => this.#log(`router of ${kind} starts again: ${String(err)}`) }).pipe(
      // Publishes leave in arrival order on one connection, so a project's
      // messages keep their order in the partition; acks follow the stores.
      mergeMap((msg) => from(this.#route(msg)), 256),
    ).subscribe({ error: (err: unknown) => again(String(err)) }));
  }

  /** Re-publishes one message to its partition and acks it once stored; a failure is thrown, the message left unacked. */
  async #route(msg: JsMsg): Promise<void> {
    const projectId = msg.subject.split('.')[3] ?? '';
    const partition = partitionOf(projectId, this.#options.partitions);
    const h = natsHeaders();
    for (const [key, values] of msg.headers ?? []) {
      // The broker's own headers (the original Nats-Msg-Id above all) stay behind.
      if (key.startsWith('Nats-')) continue;
      for (const value of values) h.append(key, value);
    }
    if (!h.has(INGESTED_AT)) h.set(INGESTED_AT, new Date(Math.floor(msg.info.timestampNanos / 1_000_000)).toISOString());
    try {
      await this.#js.publish(`part.${partition}.${msg.subject}`, msg.data, { msgID: `route:${msg.seq}`, headers: h });
    } catch (err) {
      throw new Error(`route ${msg.subject} (sequence ${msg.seq}): ${String(err)}`, { cause: err });
    }
    msg.ack();
  }

  async #stopRouter(release: boolean): Promise<void> {
    if (!this.#router) return;
    for (const timer of this.#router.retries) clearTimeout(timer);
    for (const s of this.#router.subscriptions.values()) s.unsubscribe();
    if (release) await this.#leases.release('router', this.#router.revision);
    this.#router = null;
  }
}
