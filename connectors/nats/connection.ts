// The NATS connection shared by billstream's sources and sinks: one config
// group (servers, name, reconnect) used by every NATS-facing component.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';

export const natsConnectionConfigSchema = z.object({
  url: z.string().default('nats://127.0.0.1:4222').describe('NATS server URL(s), comma-separated'),
  name: z.string().default('billstream').describe('Connection name shown in the server\'s monitoring'),
  reconnectWaitMs: z.number().int().positive().default(500).describe('Pause between reconnect attempts'),
});
export type NatsConnectionConfig = z.output<typeof natsConnectionConfigSchema>;

/** How billstream's NATS client works, apart from where it connects; the bench's baselines use the same. */
export const NATS_CLIENT_SETTINGS = {
  // Every request (each JetStream publish waits for its ack as one) would
  // otherwise build an Error with a stack trace up front, in case it fails: a
  // profile of a week close spent 6% of the process there.
  noAsyncTraces: true,
} as const;

export async function connectNats(config: Partial<NatsConnectionConfig> = {}): Promise<NatsConnection> {
  const c = natsConnectionConfigSchema.parse(config);
  return connect({
    servers: c.url.split(',').map((s) => s.trim()),
    name: c.name,
    // Keep trying for ever: a broker restart must not end the pipeline.
    maxReconnectAttempts: -1,
    reconnectTimeWait: c.reconnectWaitMs,
    ...NATS_CLIENT_SETTINGS,
  });
}

export function natsHealth(nc: NatsConnection | null): { ok: boolean; detail: string } {
  if (!nc) return { ok: false, detail: 'not connected' };
  if (nc.isClosed()) return { ok: false, detail: 'closed' };
  return { ok: true, detail: nc.getServer() };
}
