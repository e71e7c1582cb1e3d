// billstream's OpenTelemetry SDK, set up once per process (CONTRACT §7).
//
// With OTEL_EXPORTER_OTLP_ENDPOINT set, spans go through a BatchSpanProcessor to
// an OTLP/HTTP protobuf exporter at `<endpoint>/v1/traces` (Jaeger ingests it
// natively). Unset, there is no SDK at all: the pipeline gets no tracer and its
// tracing calls return at their first line, so tracing off costs next to nothing.
//
// Sampling is head sampling: the decision is taken when a trace's first span
// starts and travels in the traceparent's sampled flag. The sampler keeps
//   - every span whose attributes say it must be kept (`billstream.trace.keep`:
//     an exception, a redelivery or re-evaluation, an entry parked for reference
//     data, an assignment other traces link to) or that carries `error.type`;
//   - of the rest, BILLSTREAM_TRACE_RATIO (default 1.0) of the traces, by
//     traceId, with children following their parent (parent-based ratio).
// What that can and cannot do, honestly:
//   - The pipeline makes an entry's spans up to its actor turn only once the turn
//     has decided the entry, so an entry that becomes an exception, waits for
//     reference data or is a redelivery has its whole in-process trace kept.
//   - What goes wrong later — a cap hold decided in the turn for an entry whose
//     root was already dropped, an ERP rejection or retry, a turn that rolls
//     back — is kept as the failing span (forced sampled) inside a trace whose
//     earlier spans were already dropped: Jaeger shows it with a missing parent.
//     Keeping the whole trace then needs tail sampling in a collector
//     (tail_sampling processor, status_code and span-attribute policies).
//   - A producer that sends an unsampled traceparent has decided for its trace;
//     children follow it, except the forced spans above.
//   - Retries inside the ERP client (429, 5xx) are not visible here; a post the
//     poster itself repeats (attempt > 1) is.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { TraceFlags, trace, type Attributes, type Context, type Link, type SpanKind, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, SamplingDecision, TraceIdRatioBasedSampler,
  type BufferConfig, type ReadableSpan, type Sampler, type SamplingResult, type Span, type SpanExporter, type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { TRACE_ATTRIBUTES, TRACER_NAME } from '../pipeline/entry-tracing.ts';
import type { BillstreamConfig } from './config.ts';

export interface TelemetryOptions {
  /** OTLP/HTTP base endpoint (`/v1/traces` is appended). Unset: no SDK, no tracer. */
  endpoint?: string;
  /** Share of traces kept besides the ones the sampler always keeps. @default 1 */
  ratio?: number;
  /** Exports instead of OTLP (for a test that wants spans in memory). */
  exporter?: SpanExporter;
  /** @default defaultBatchConfig() */
  batch?: BufferConfig;
  /** Register as the process's global tracer provider (what `startBatchSpan` uses). @default false */
  register?: boolean;
}

export interface Telemetry {
  readonly enabled: boolean;
  /** Null when tracing is off. */
  readonly tracer: Tracer | null;
  /** Spans ended and handed to the exporter's queue so far. */
  spansEnded(): number;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** An invalid telemetry option, such as a ratio outside 0..1. */
export class TelemetryOptionsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TelemetryOptionsError';
  }
}

/**
 * Keeps every trace with an exception or a retry, and `ratio` of the rest
 * (parent-based: a child follows its parent's sampled flag, except when it
 * must be kept itself).
 */
export class ErrorsAndRetriesSampler implements Sampler {
  readonly #ratio: number;
  readonly #rest: Sampler;

  constructor(ratio: number) {
    if (!(ratio >= 0 && ratio <= 1)) throw new TelemetryOptionsError(`BILLSTREAM_TRACE_RATIO must be between 0 and 1, got ${ratio}`);
    this.#ratio = ratio;
    this.#rest = new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }

  shouldSample(context: Context, traceId: string, spanName: string, spanKind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
    if (attributes[TRACE_ATTRIBUTES.keep] !== undefined || attributes[TRACE_ATTRIBUTES.errorType] !== undefined) {
      return { decision: SamplingDecision.RECORD_AND_SAMPLED };
    }
    return this.#rest.shouldSample(context, traceId, spanName, spanKind, attributes, links);
  }

  toString(): string {
    return `ErrorsAndRetriesSampler{ratio=${this.#ratio}}`;
  }
}

export function defaultBatchConfig(): BufferConfig {
  // A week close ends ~6 spans per entry at thousands of entries a second: the
  // SDK's default queue (2048) would drop most of them.
  // Batches of 1024 keep each export's serialisation (on the event loop) short.
  return { maxQueueSize: 65_536, maxExportBatchSize: 1_024, scheduledDelayMillis: 1_000 };
}

/** `<endpoint>/v1/traces`, as the OTLP exporter spec joins a base endpoint and a signal path. */
export function tracesUrl(endpoint: string): string {
  return new URL('v1/traces', endpoint.endsWith('/') ? endpoint : `${endpoint}/`).toString();
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

const OFF: Telemetry = { enabled: false, tracer: null, spansEnded: () => 0, forceFlush: async () => {}, shutdown: async () => {} };

/** Counts spans as they end (what the exporter was given), for the bench's dropped-span check. */
class EndedSpanCounter implements SpanProcessor {
  count = 0;
  onStart(_span: Span, _context: Context): void {}
  onEnd(span: ReadableSpan): void {
    if (span.spanContext().traceFlags & TraceFlags.SAMPLED) this.count++;
  }
  forceFlush(): Promise<void> { return Promise.resolve(); }
  shutdown(): Promise<void> { return Promise.resolve(); }
}

/** Sets up an SDK (or none, without an endpoint or exporter). The caller shuts it down. */
export function startTelemetry(options: TelemetryOptions = {}): Telemetry {
  if (!options.endpoint && !options.exporter) return OFF;
  const sampler = new ErrorsAndRetriesSampler(options.ratio ?? 1);
  const batch = { ...defaultBatchConfig(), ...options.batch };
  // A flush sends every queued batch at once: let the exporter take them all
  // (its default of 30 in flight would drop the rest of a full queue).
  const concurrencyLimit = Math.ceil((batch.maxQueueSize ?? 2_048) / (batch.maxExportBatchSize ?? 512)) + 2;
  const exporter = options.exporter ?? new OTLPTraceExporter({ url: tracesUrl(options.endpoint as string), concurrencyLimit });
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: 'billstream',
    [ATTR_SERVICE_VERSION]: packageVersion(),
    'service.instance.id': randomUUID(),
    'host.name': hostname(),
    'process.pid': process.pid,
    'process.runtime.name': 'nodejs',
    'process.runtime.version': process.versions.node,
    'telemetry.sdk.language': 'nodejs',
  }).merge(detectResources({ detectors: [envDetector] })); // OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME win
  const counter = new EndedSpanCounter();
  const provider = new BasicTracerProvider({
    resource, sampler,
    // An ERP post or an invoice links to every entry in it (ERP_BATCH_SIZE ≤ 1000).
    spanLimits: { linkCountLimit: 5_000 },
    spanProcessors: [counter, new BatchSpanProcessor(exporter, batch)],
  });
  if (options.register) trace.setGlobalTracerProvider(provider);
  let down = false;
  return {
    enabled: true,
    tracer: provider.getTracer(TRACER_NAME, packageVersion()),
    spansEnded: () => counter.count,
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      if (down) return;
      down = true;
      await provider.shutdown();
    },
  };
}

const perProcess = new Map<string, Telemetry>();

/**
 * The process's telemetry for a configuration: set up (and registered
 * globally) at the first call, the same instance after, so a runtime stopped
 * and started again in one process keeps one SDK.
 */
export function telemetryFor(config: Pick<BillstreamConfig, 'OTEL_EXPORTER_OTLP_ENDPOINT' | 'BILLSTREAM_TRACE_RATIO'>): Telemetry {
  const endpoint = config.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint) return OFF;
  const key = `${endpoint}|${config.BILLSTREAM_TRACE_RATIO}`;
  let telemetry = perProcess.get(key);
  if (!telemetry) {
    telemetry = startTelemetry({ endpoint, ratio: config.BILLSTREAM_TRACE_RATIO, register: perProcess.size === 0 });
    perProcess.set(key, telemetry);
  }
  return telemetry;
}

/** Flushes and stops every SDK `telemetryFor` set up (at process exit). */
export async function shutdownTelemetry(): Promise<void> {
  const all = [...perProcess.values()];
  perProcess.clear();
  await Promise.all(all.map((t) => t.shutdown()));
}
