import { SpanStatusCode } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { startOtlpReceiver } from './otlp-receiver.ts';
import { startTelemetry } from './telemetry.ts';

describe('OTLP receiver', () => {
  it('decodes what the OTLP/HTTP protobuf exporter sends, and counts it', async () => {
    await using receiver = await startOtlpReceiver({ decode: true });
    const telemetry = startTelemetry({ endpoint: receiver.url });
    const tracer = telemetry.tracer;
    if (!tracer) throw new Error('tracing should be on');
    const linked = tracer.startSpan('linked');
    linked.end();
    const span = tracer.startSpan('work', { attributes: { text: 'a', count: 3, ratio: 0.5, flag: true, list: ['x', 'y'] }, links: [{ context: linked.spanContext(), attributes: { why: 'test' } }] });
    span.addEvent('happened', { detail: 'd' });
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'failed' });
    span.end();
    await telemetry.shutdown();

    expect(receiver.spanCount).toBe(2);
    const work = receiver.spans.find((s) => s.name === 'work');
    expect(work).toMatchObject({
      traceId: span.spanContext().traceId, spanId: span.spanContext().spanId, parentSpanId: '',
      attributes: { text: 'a', count: 3, ratio: 0.5, flag: true, list: ['x', 'y'] },
      events: [expect.objectContaining({ name: 'happened', attributes: { detail: 'd' } })],
      links: [{ traceId: linked.spanContext().traceId, spanId: linked.spanContext().spanId, attributes: { why: 'test' } }],
      status: { code: 2, message: 'failed' }, scope: 'billstream',
    });
    expect(work?.resource['service.name']).toBe('billstream');
    expect(work && work.endTimeUnixNano >= work.startTimeUnixNano).toBe(true);
  });
});
