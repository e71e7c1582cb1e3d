// The JetStream topology billstream owns: one stream per record family, created
// (or brought to the declared limits) idempotently at start, and durable pull
// consumers with explicit ack. Everything here works on nats-server 2.9: one
// filter subject per consumer (filter_subjects arrived in 2.10), so each record
// kind gets its own durable consumer.
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';

export const STREAMS = {
  ingest: 'BILLSTREAM_INGEST',
  enriched: 'BILLSTREAM_ENRICHED',
  billing: 'BILLSTREAM_BILLING',
  exceptions: 'BILLSTREAM_EXCEPTIONS',
  invoices: 'BILLSTREAM_INVOICES',
  alerts: 'BILLSTREAM_ALERTS',
  /** Time and milestone messages re-published per partition (`part.<n>.<ingest subject>`) in cluster mode. */
  partitioned: 'BILLSTREAM_PARTITIONED',
} as const;

export interface TopologyOptions {
  /**
   * Per-stream byte limit; past it the oldest messages are discarded, so size it
   * well above the deepest backlog the ingest stream must hold. @default 8 GiB
   */
  maxBytesPerStream?: number;
  /** Told when the server cannot reserve the byte limits and streams fall back to no byte limit. */
  onWarning?: (message: string) => void;
  /** Broker-side duplicate window for `Nats-Msg-Id`: the first filter, PostgreSQL is the final one. @default 2 minutes */
  duplicateWindowMs?: number;
  /** How long a delivered message may stay unacked before redelivery. @default 60 s */
  ackWaitMs?: number;
  /** Unacked messages per consumer: the pipeline's in-flight bound. @default 4000 */
  maxAckPending?: number;
}

export function defaultTopologyOptions(): Required<Omit<TopologyOptions, 'onWarning'>> {
  return { maxBytesPerStream: 8 * 1024 ** 3, duplicateWindowMs: 120_000, ackWaitMs: 60_000, maxAckPending: 4000 };
}

function streamConfigs(options: Required<Omit<TopologyOptions, 'onWarning'>>): Partial<StreamConfig>[] {
  const common = {
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_bytes: options.maxBytesPerStream,
    duplicate_window: nanos(options.duplicateWindowMs),
    num_replicas: 1,
  } satisfies Partial<StreamConfig>;
  return [
    { ...common, name: STREAMS.ingest, subjects: ['ingest.>'] },
    { ...common, name: STREAMS.enriched, subjects: ['enriched.>'] },
    { ...common, name: STREAMS.billing, subjects: ['billing.>'] },
    { ...common, name: STREAMS.exceptions, subjects: ['exceptions.>'] },
    { ...common, name: STREAMS.invoices, subjects: ['invoice.>'] },
    { ...common, name: STREAMS.alerts, subjects: ['alerts.>'] },
    { ...common, name: STREAMS.partitioned, subjects: ['part.>'] },
  ];
}

/** The durable consumers on the ingest stream, one per record kind. */
export function ingestConsumerName(kind: string, instanceId?: string): string {
  return instanceId ? `billstream-${kind}-${instanceId}` : `billstream-${kind}`;
}

/** Durable pull consumer on one partition of the partitioned stream, consumed by its lease owner only. */
export function partitionConsumerName(partition: number): string {
  return `billstream-part-${partition}`;
}

/** The router's consumer of one record kind on the ingest stream. */
export function routerConsumerName(kind: string): string {
  return `billstream-router-${kind}`;
}

type ConsumerOverrides = TopologyOptions & { inactiveThresholdMs?: number };

/** The durable consumer as billstream declares it. */
function declaredConsumer(durable: string, filterSubject: string, overrides: ConsumerOverrides): Partial<ConsumerConfig> {
  const config: Partial<ConsumerConfig> = { ...consumerConfig({ ...defaultTopologyOptions(), ...overrides }), durable_name: durable, filter_subject: filterSubject };
  // A per-instance consumer is removed by the server once its instance is gone for good.
  if (overrides.inactiveThresholdMs) config.inactive_threshold = nanos(overrides.inactiveThresholdMs);
  return config;
}

/** Creates the consumer, or brings an existing one to the declared limits; returns its info as it then stands. */
export async function ensureConsumer(
  jsm: JetStreamManager, stream: string, durable: string, filterSubject: string, overrides: ConsumerOverrides = {},
): Promise<ConsumerInfo> {
  const config = declaredConsumer(durable, filterSubject, overrides);
  try {
    await jsm.consumers.info(stream, durable);
    return await jsm.consumers.update(stream, durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending, max_deliver: config.max_deliver });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return await jsm.consumers.add(stream, config);
  }
}

/**
 * Ensures a durable consumer and makes it deliver again, in stream order,
 * everything after its ack floor before anything newer. Whoever consumed it
 * before (an instance killed mid-stream, or one that let go with messages still
 * buffered) left them unacked; the server would hand newer messages to the next
 * consumer at once and the held ones only after the ack wait, so a project's
 * revision 2 could overtake its revision 1. nats-server 2.9 cannot reset a
 * consumer, so it is recreated at the floor. What comes twice is harmless: the
 * router's re-publish carries the stream sequence as Nats-Msg-Id, and billing
 * knows every revision it has stored.
 */
export async function ensureConsumerFromAckFloor(
  jsm: JetStreamManager, stream: string, durable: string, filterSubject: string, overrides: ConsumerOverrides = {},
): Promise<{ rewoundTo: number | null }> {
  const info = await ensureConsumer(jsm, stream, durable, filterSubject, overrides);
  // Nothing held: no newer message can overtake one.
  if (info.num_ack_pending === 0) return { rewoundTo: null };
  const startSeq = info.ack_floor.stream_seq + 1;
  await jsm.consumers.delete(stream, durable);
  await jsm.consumers.add(stream, { ...declaredConsumer(durable, filterSubject, overrides), deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq });
  return { rewoundTo: startSeq };
}

function consumerConfig(options: Required<Omit<TopologyOptions, 'onWarning'>>): Partial<ConsumerConfig> {
  return {
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(options.ackWaitMs),
    max_ack_pending: options.maxAckPending,
    // Never let the server give up on a message: an entry that cannot be processed
    // is quarantined by the pipeline, not dropped by a max_deliver limit. (2.9
    // refuses a backoff list with unlimited deliveries, so the pipeline paces
    // retries itself with nak delays instead.)
    max_deliver: -1,
  };
}

/** Creates missing streams and consumers, and updates existing ones to the declared limits. */
export async function ensureTopology(jsm: JetStreamManager, kinds: readonly string[], overrides: TopologyOptions = {}): Promise<void> {
  const options = { ...defaultTopologyOptions(), ...overrides };
  for (const config of streamConfigs(options)) {
    try {
      await ensureStream(jsm, config);
    } catch (err) {
      // A server whose disk cannot reserve every byte limit (JetStream reserves
      // max_bytes up front) still gets billstream's streams, without the limit.
      if (!/insufficient storage/i.test(errorMessage(err))) throw err;
      overrides.onWarning?.(`stream ${config.name}: the server cannot reserve ${options.maxBytesPerStream} bytes; created without a byte limit`);
      await ensureStream(jsm, { ...config, max_bytes: -1 });
    }
  }
  for (const kind of kinds) await ensureConsumer(jsm, STREAMS.ingest, ingestConsumerName(kind), `ingest.${kind}.>`, options);
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig>): Promise<void> {
  const name = config.name as string;
  try {
    await jsm.streams.info(name);
    await jsm.streams.update(name, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add({ ...config, name });
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isNotFound(err: unknown): boolean {
  return /not found/i.test(errorMessage(err));
}
