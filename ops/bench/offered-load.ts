// The latency phase's load, offered at a steady rate from a worker thread.
//
// The bench's own heap holds the whole generated week (a million messages,
// over a gigabyte): a full collection of it stops its event loop for seconds.
// Offered from that loop, "half load" became a four-second lull followed by a
// burst of twice billstream's peak rate, and the burst, not billstream at half
// load, set the p99. A worker has a heap of its own, holding only the messages
// it offers.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';

export interface OfferedMessage { subject: string; data: Uint8Array; msgId?: string }

export interface OfferedLoad {
  natsUrl: string;
  messages: OfferedMessage[];
  perSecond: number;
  /** The load goes out in a slice every tick. @default 100 ms */
  tickMs?: number;
}

interface OfferedLoadData extends Required<OfferedLoad> { offeredLoad: true }

/** Publishes `messages` at `perSecond`, each acknowledged by JetStream, from a worker thread; resolves when all are stored. */
export function offerLoad(load: OfferedLoad): Promise<void> {
  const data: OfferedLoadData = { offeredLoad: true, tickMs: 100, ...load };
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: data });
    let done = false;
    worker.once('message', () => { done = true; });
    worker.once('error', reject);
    worker.once('exit', (code) => (done && code === 0 ? resolve() : reject(new Error(`the offered-load worker exited with code ${code} before it had published everything`))));
  });
}

async function publishAtRate(load: OfferedLoadData): Promise<void> {
  const nc = await connect({ servers: load.natsUrl });
  try {
    const js = jetstream(nc);
    const perTick = Math.max(1, Math.round(load.perSecond * load.tickMs / 1000));
    const t0 = performance.now();
    for (let sent = 0, tick = 0; sent < load.messages.length; tick++) {
      const slice = load.messages.slice(sent, sent + perTick);
      await Promise.all(slice.map((m) => js.publish(m.subject, m.data, { msgID: m.msgId, headers: natsHeaders() })));
      sent += slice.length;
      const wait = t0 + (tick + 1) * load.tickMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  } finally {
    await nc.drain();
  }
}

if (!isMainThread && (workerData as Partial<OfferedLoadData> | null)?.offeredLoad) {
  await publishAtRate(workerData as OfferedLoadData);
  parentPort?.postMessage('done');
}
