import { describe, expect, it } from 'vitest';
import { renderSpanTree, type JaegerTrace } from './trace.ts';

const T = 'a'.repeat(32);
const span = (spanID: string, operationName: string, startMs: number, parent?: string, extra: Partial<JaegerTrace['spans'][number]> = {}) => ({
  traceID: T, spanID, operationName, startTime: 1_700_000_000_000_000 + startMs * 1000, duration: 1500,
  references: parent ? [{ refType: 'CHILD_OF' as const, traceID: T, spanID: parent }] : [], ...extra,
});

describe('renderSpanTree', () => {
  it('nests children under their parent in start order, with status, ids and links', () => {
    const lines = renderSpanTree({
      traceID: T,
      spans: [
        span('3', 'actor.turn', 5, '1', { tags: [{ key: 'billstream.stage', value: 'exception' }, { key: 'otel.status_code', value: 'ERROR' }] }),
        span('1', 'ingest', 0, undefined, { references: [{ refType: 'FOLLOWS_FROM', traceID: 'b'.repeat(32), spanID: 'c'.repeat(16) }] }),
        span('2', 'validate', 1, '1'),
        span('9', 'erp.posted', 9, 'gone'),
      ],
    });
    expect(lines).toEqual([
      `  ingest  +0.0 ms  1.50 ms  → links ${'b'.repeat(32)}/${'c'.repeat(16)}`,
      '    validate  +1.0 ms  1.50 ms',
      '    actor.turn  +5.0 ms  1.50 ms  ERROR  stage=exception',
      '  erp.posted  +9.0 ms  1.50 ms (parent not exported)',
    ]);
  });
});
