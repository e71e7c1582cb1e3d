// `billstream start`: the long-running pipeline. SIGTERM or SIGINT drains it:
// intake stops, turns in flight commit and ack, the outboxes flush, then exit.
import { createDatabaseIfMissing } from '../embedded/services.ts';
import { loadConfig } from '../config.ts';
import { startRuntime } from '../runtime.ts';

export async function runStart(): Promise<number> {
  const config = loadConfig();
  await createDatabaseIfMissing(config.DATABASE_URL);
  const runtime = await startRuntime(config, { log: (line) => console.error(`[billstream] ${line}`) });
  console.error(`[billstream] running: NATS ${config.NATS_URL}, ops server ${runtime.httpUrl ?? 'off'}, ERP ${config.ERP_BASE_URL}`);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      console.error(`[billstream] ${signal}: draining`);
      resolve();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  await runtime.stop();
  console.error('[billstream] stopped');
  return 0;
}
