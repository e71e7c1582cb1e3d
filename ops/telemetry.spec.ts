import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from '@opentelemetry/api';
import { SamplingDecision } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { ErrorsAndRetriesSampler, TelemetryOptionsError, startTelemetry, tracesUrl } from './telemetry.ts';

const sampledParent = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: TraceFlags.SAMPLED, isRemote: true });
const unsampledParent = trace.setSpanContext(ROOT_CONTEXT, { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: TraceFlags.NONE, isRemote: true });

describe('ErrorsAndRetriesSampler', () => {
  const none = new ErrorsAndRetriesSampler(0);
  const decide = (context = ROOT_CONTEXT, attributes = {}, sampler = none) =>
    sampler.shouldSample(context, 'c'.repeat(32), 'span', SpanKind.INTERNAL, attributes, []).decision;

  it.each([
    ['an exception', { 'billstream.trace.keep': 'exception' }],
    ['a retry', { 'billstream.trace.keep': 'retry' }],
    ['an entry parked for reference data', { 'billstream.trace.keep': 'parked' }],
    ['an error.type', { 'error.type': 'project_closed' }],
  ])('keeps a root with %s at ratio 0', (_label, attributes) => {
    expect(decide(ROOT_CONTEXT, attributes)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
  });

  it('forces the sampled flag for an error under an unsampled parent', () => {
    expect(decide(unsampledParent, { 'error.type': 'cap_exceeded' })).toBe(SamplingDecision.RECORD_AND_SAMPLED);
  });

  it('drops the rest at ratio 0, keeps it at ratio 1, and follows the parent otherwise', () => {
    expect(decide()).toBe(SamplingDecision.NOT_RECORD);
    expect(decide(ROOT_CONTEXT, {}, new ErrorsAndRetriesSampler(1))).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide(sampledParent)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide(unsampledParent, {}, new ErrorsAndRetriesSampler(1))).toBe(SamplingDecision.NOT_RECORD);
  });

  it('refuses a ratio outside 0..1', () => {
    expect(() => new ErrorsAndRetriesSampler(1.5)).toThrow(TelemetryOptionsError);
  });
});

describe('telemetry set-up', () => {
  it('has no tracer without an endpoint', () => {
    const telemetry = startTelemetry({});
    expect(telemetry.enabled).toBe(false);
    expect(telemetry.tracer).toBeNull();
  });

  it('exports to <endpoint>/v1/traces', () => {
    expect(tracesUrl('http://jaeger:4318')).toBe('http://jaeger:4318/v1/traces');
    expect(tracesUrl('http://collector:4318/otlp/')).toBe('http://collector:4318/otlp/v1/traces');
  });
});
