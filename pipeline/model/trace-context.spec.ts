import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { extractSpanContext, extractTraceContext, injectTraceContext, spanContextOf, traceHeaders, traceParentOf } from './trace-context.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;

describe('trace context over NATS headers', () => {
  it('writes a span context as W3C traceparent into a header record and into nats.js headers', () => {
    const context = { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED };
    expect(traceHeaders(context)).toEqual({ traceparent: TRACEPARENT });
    const h = natsHeaders();
    injectTraceContext(h, trace.setSpanContext(ROOT_CONTEXT, context));
    expect(h.get('traceparent')).toBe(TRACEPARENT);
  });

  it.each([
    ['a header record', { traceparent: TRACEPARENT }],
    ['an IncomingMessage', { header: (name: string) => (name === 'traceparent' ? TRACEPARENT : undefined) }],
  ])('reads the remote span context from %s', (_label, carrier) => {
    expect(extractSpanContext(carrier)).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED, isRemote: true });
  });

  it('keeps an unsampled flag and a tracestate as they came', () => {
    const headers = traceHeaders(extractTraceContext({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-00`, tracestate: 'vendor=1' }));
    expect(headers).toEqual({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-00`, tracestate: 'vendor=1' });
  });

  it.each([
    ['absent', undefined],
    ['malformed', 'not-a-traceparent'],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN_ID}-01`],
  ])('finds no context when the traceparent is %s, and writes none', (_label, value) => {
    expect(spanContextOf(value)).toBeNull();
    expect(extractTraceContext(value === undefined ? {} : { traceparent: value })).toBe(ROOT_CONTEXT);
    expect(traceHeaders(null)).toEqual({});
  });

  it('round-trips a stored traceparent', () => {
    expect(traceParentOf(spanContextOf(TRACEPARENT))).toBe(TRACEPARENT);
  });
});
