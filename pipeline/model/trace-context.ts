// W3C trace context across NATS (CONTRACT §7): the one place that writes and
// reads `traceparent` / `tracestate` headers, for every hop — the ingest
// publishers, the outbox relay (enriched.*, exceptions.*, billing.posted.*,
// invoice.*) and the pipeline reading what arrives. It needs no registered
// global propagator (so it works the same with tracing off) and nothing of
// NATS but "a header can be read / set", so plain header records (as the
// outboxes store them), nats.js MsgHdrs and the pipeline's IncomingMessage all fit.
// It lives in the model, beside the records it travels with, because both sides
// use it: the pipeline reads it and the NATS connector writes it, and connectors
// may import the model but not the pipeline (nor the pipeline the connectors).
import { ROOT_CONTEXT, isSpanContextValid, trace, type Context, type SpanContext, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

export const TRACEPARENT_HEADER = 'traceparent';
export const TRACESTATE_HEADER = 'tracestate';

/** Anything headers can be read from: a header record, nats.js MsgHdrs (`get`), or an IncomingMessage (`header`). */
export type TraceCarrier =
  | Readonly<Record<string, string>>
  | { get(name: string): string }
  | { header(name: string): string | undefined };

/** Anything headers can be written to: a header record or nats.js MsgHdrs (`set`). */
export type TraceHeaderSink = Record<string, string> | { set(name: string, value: string): void };

const propagator = new W3CTraceContextPropagator();

function read(carrier: TraceCarrier, name: string): string | undefined {
  if ('header' in carrier && typeof carrier.header === 'function') return carrier.header(name) || undefined;
  if ('get' in carrier && typeof carrier.get === 'function') return (carrier as { get(name: string): string }).get(name) || undefined;
  return (carrier as Readonly<Record<string, string>>)[name] || undefined;
}

const getter: TextMapGetter<TraceCarrier> = {
  keys: () => [TRACEPARENT_HEADER, TRACESTATE_HEADER],
  get: (carrier, key) => read(carrier, key),
};

const setter: TextMapSetter<TraceHeaderSink> = {
  set: (sink, key, value) => {
    if ('set' in sink && typeof sink.set === 'function') (sink as { set(name: string, value: string): void }).set(key, value);
    else (sink as Record<string, string>)[key] = value;
  },
};

function asContext(source: Context | SpanContext): Context {
  return 'traceId' in source ? trace.setSpanContext(ROOT_CONTEXT, source) : source;
}

/**
 * Writes the trace context of `source` (a context with a span, or a span context)
 * into `sink` as W3C `traceparent` (and `tracestate` when there is one). An
 * invalid or absent span context writes nothing.
 */
export function injectTraceContext(sink: TraceHeaderSink, source: Context | SpanContext | null | undefined): void {
  if (!source) return;
  propagator.inject(asContext(source), sink, setter);
}

/** The W3C headers for `source` as a plain record (what an outbox row stores); empty when there is no valid context. */
export function traceHeaders(source: Context | SpanContext | null | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  injectTraceContext(headers, source);
  return headers;
}

/**
 * The context carried by `carrier`'s W3C headers, on top of `base` (the root
 * context by default); `base` unchanged when there is none or it is malformed.
 */
export function extractTraceContext(carrier: TraceCarrier | null | undefined, base: Context = ROOT_CONTEXT): Context {
  if (!carrier || read(carrier, TRACEPARENT_HEADER) === undefined) return base;
  return propagator.extract(base, carrier, getter);
}

/** The remote span context in `carrier`'s headers, or null. */
export function extractSpanContext(carrier: TraceCarrier | null | undefined): SpanContext | null {
  const context = extractTraceContext(carrier);
  const spanContext = context === ROOT_CONTEXT ? undefined : trace.getSpanContext(context);
  return spanContext && isSpanContextValid(spanContext) ? spanContext : null;
}

// Every entry links to its assignment's stored traceparent: the few distinct
// values are parsed once (bounded, dropped whole when full).
const parsed = new Map<string, SpanContext | null>();
const PARSED_LIMIT = 4_096;

/** Parses one stored `traceparent` value (an outbox row's, an assignment's span_context). */
export function spanContextOf(traceParent: string | null | undefined): SpanContext | null {
  if (!traceParent) return null;
  let context = parsed.get(traceParent);
  if (context === undefined) {
    context = extractSpanContext({ [TRACEPARENT_HEADER]: traceParent });
    if (parsed.size >= PARSED_LIMIT) parsed.clear();
    parsed.set(traceParent, context);
  }
  return context;
}

/** The `traceparent` value of a span context, or null when it is not valid. */
export function traceParentOf(spanContext: SpanContext | null | undefined): string | null {
  return spanContext ? (traceHeaders(spanContext)[TRACEPARENT_HEADER] ?? null) : null;
}
