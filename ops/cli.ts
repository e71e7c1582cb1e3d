#!/usr/bin/env node
// billstream's command line (CONTRACT §8). Each command is a small function in
// ops/commands/; this file only parses the verb and reports failures plainly.
import { parseArgs } from 'node:util';
import { ConfigError } from './config.ts';

const USAGE = `usage: billstream <command> [options]

commands:
  start                 run the pipeline (long-running; SIGTERM drains and exits)
  demo [--entries N] [--keep-running]
                        a simulated week close end to end on embedded defaults
  erp-sandbox           serve the ERP sandbox (ERP_SANDBOX_PORT, default 8090)
  reconcile             compare what the ledger posted with what the ERP holds
  trace <entryId>       print an entry's traceId, its Jaeger URL and (when Jaeger answers) its span tree
  replay <exceptionId>  re-evaluate an exception against today's reference data
  bench pipeline [--entries N] [--tracing off|on|both] [--rounds N]
                        throughput end to end on private services, tracing off vs on;
                        writes bench-results/tracing.json
  connectors [name] [--write-docs] [--json]
                        list the connectors, print one's reference, or write docs/connectors/
  template dry-run <template.json|name> <sample file>
                        show the records a mapping template makes of a file (a name is read from KV)
  template put <template.json> | template list
                        store a mapping template in KV (billstream_templates) | list the stored ones
  backfill --source <harvest|toggl|clockify|kimai> --from YYYY-MM-DD [--to YYYY-MM-DD] [--config file.json]
  backfill --source toggl --file export.csv
                        re-read a date range (or a Toggl CSV export) into ingest; safe to interrupt and re-run

configuration (environment): NATS_URL, DATABASE_URL, HTTP_PORT, ERP_BASE_URL, ERP_CLIENT_ID,
ERP_CLIENT_SECRET, OTEL_EXPORTER_OTLP_ENDPOINT, BILLSTREAM_TRACE_RATIO, JAEGER_UI_URL (trace), REFERENCE_GRACE_SECONDS,
INGEST_TOKEN`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start': return (await import('./commands/start.ts')).runStartCommand();
    case 'erp-sandbox': return (await import('./commands/erp-sandbox.ts')).runErpSandbox();
    case 'demo': {
      const { values } = parseArgs({ args: rest, options: { entries: { type: 'string' }, 'keep-running': { type: 'boolean' }, seed: { type: 'string' } } });
      return (await import('./commands/demo.ts')).runDemo({
        entries: values.entries ? Number(values.entries) : undefined, keepRunning: values['keep-running'] ?? false, seed: values.seed ? Number(values.seed) : undefined,
      });
    }
    case 'reconcile': return (await import('./commands/reconcile.ts')).runReconcile();
    case 'trace': return (await import('./commands/trace.ts')).runTrace(rest);
    case 'bench': return (await import('./commands/bench.ts')).runBench(rest);
    case 'replay': return (await import('./commands/replay.ts')).runReplay(rest);
    case 'connectors': return (await import('./commands/connectors.ts')).runConnectors(rest);
    case 'template': return (await import('./commands/template.ts')).runTemplate(rest);
    case 'backfill': return (await import('./commands/backfill.ts')).runBackfill(rest);
    case undefined: case 'help': case '--help': case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`billstream: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof ConfigError) console.error(`billstream: ${err.message}`);
    else console.error('billstream:', err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);
