import { describe, expect, it } from 'vitest';
import { fixture, fixtureIds } from './fixtures/load.ts';
import { kimaiLocalDateTime, mapKimaiTimesheet } from './kimai.ts';

const entries = fixture<unknown[]>('kimai-timesheets.json');
const ids = fixtureIds('kimai');
const REVISION = 826_100_000;
const outcomes = entries.map((entry) => mapKimaiTimesheet(entry, { ids, revision: REVISION }));

describe('Kimai timesheets → canonical time records', () => {
  it('maps an exported record as approved, its duration (breaks taken off) as hours', () => {
    expect(outcomes[0]).toEqual({
      kind: 'record',
      sourceId: '101',
      msgId: expect.stringMatching(/^kimai:101:[0-9a-f]{16}$/),
      record: {
        source: 'kimai',
        sourceKey: expect.stringMatching(/^kimai:101:/),
        entryId: 'kimai-101',
        revision: REVISION,
        projectId: 'acme-web',
        consultantId: 'kim-allen',
        taskId: 'workshop',
        region: 'emea',
        workDate: '2026-03-02',
        hours: '7.50',
        status: 'approved',
        notes: 'Workshop',
        sourceBillable: true,
        sourceLocked: true,
      },
    });
  });

  it('skips a running record (end null)', () => {
    expect(outcomes[1]).toEqual({ kind: 'skipped', sourceId: '102', reason: expect.stringContaining('running') });
  });

  it('takes the work date as the user wrote it and rounds 5430 s to 1.51 h', () => {
    // 23:30 local on the 3rd is 22:30 UTC: the local date is the one that counts.
    expect(outcomes[2]).toMatchObject({ kind: 'record', record: { workDate: '2026-03-03', hours: '1.51', status: 'submitted', taskId: 'dev', sourceLocked: false } });
  });

  it('fails a record whose project has no mapping', () => {
    expect(outcomes[3]).toMatchObject({ kind: 'invalid', errors: [{ field: 'projectId', reason: expect.stringContaining('"9" is not in the lookup table') }] });
  });

  it('reads expanded records (full=true) through their ids', () => {
    const expanded = { ...(entries[0] as Record<string, unknown>), project: { id: 2, name: 'Website' }, user: { id: 1, alias: 'Kim' }, activity: { id: 3 } };
    expect(mapKimaiTimesheet(expanded, { ids, revision: 1 })).toMatchObject({ kind: 'record', record: { projectId: 'acme-web', consultantId: 'kim-allen', taskId: 'workshop' } });
  });

  it('computes the hours from begin, end and break when the duration is missing', () => {
    const entry = { ...(entries[0] as Record<string, unknown>), duration: null };
    expect(mapKimaiTimesheet(entry, { ids, revision: 1 })).toMatchObject({ kind: 'record', record: { hours: '7.50' } });
  });

  it('writes modified_after in the API user\'s local time', () => {
    expect(kimaiLocalDateTime('2026-03-02T08:00:00Z', 'Europe/Berlin')).toBe('2026-03-02T09:00:00');
    expect(kimaiLocalDateTime('2026-03-02T08:00:00Z', 'UTC')).toBe('2026-03-02T08:00:00');
  });
});
