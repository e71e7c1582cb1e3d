import { describe, expect, it } from 'vitest';
import { mapClockifyEntry } from './clockify.ts';
import { fixture, fixtureIds } from './fixtures/load.ts';

const entries = fixture<unknown[]>('clockify-time-entries.json');
const ids = fixtureIds('clockify');
const REVISION = 826_000_000;
const outcomes = entries.map((entry) => mapClockifyEntry(entry, { ids, revision: REVISION }));

describe('Clockify time entries → canonical time records', () => {
  it('reads the ISO-8601 duration and the approval state', () => {
    expect(outcomes[0]).toEqual({
      kind: 'record',
      sourceId: '64c777ddd3fcab07cfbb210c',
      msgId: expect.stringMatching(/^clockify:64c777ddd3fcab07cfbb210c:[0-9a-f]{16}$/),
      record: {
        source: 'clockify',
        sourceKey: expect.stringMatching(/^clockify:64c777ddd3fcab07cfbb210c:/),
        entryId: 'clockify-64c777ddd3fcab07cfbb210c',
        revision: REVISION,
        projectId: 'acme-web',
        consultantId: 'kim-allen',
        taskId: 'design',
        region: 'emea',
        workDate: '2026-03-02',
        hours: '1.50',
        status: 'approved',
        notes: 'Sprint planning',
        sourceBillable: true,
        sourceLocked: false,
      },
    });
  });

  it('skips a running timer (end and duration explicitly null)', () => {
    expect(outcomes[1]).toEqual({ kind: 'skipped', sourceId: '64c777ddd3fcab07cfbb210d', reason: expect.stringContaining('running') });
  });

  it('fails an entry whose projectId and taskId are explicitly null, naming both', () => {
    expect(outcomes[2]).toMatchObject({ kind: 'invalid', sourceId: '64c777ddd3fcab07cfbb210e' });
    const errors = outcomes[2]?.kind === 'invalid' ? outcomes[2].errors : [];
    expect(errors).toEqual([
      { field: 'projectId', reason: '"projectId" is null in the source entry (template clockify v1)' },
      { field: 'taskId', reason: '"taskId" is null in the source entry (template clockify v1)' },
    ]);
  });

  it('rounds PT45M30S to 0.76 h and dates it in the template time zone', () => {
    // 22:30 UTC on the 3rd is 23:30 in Berlin: still the 3rd.
    expect(outcomes[3]).toMatchObject({ kind: 'record', record: { hours: '0.76', workDate: '2026-03-03', status: 'submitted', sourceLocked: true } });
  });

  it('takes the span between start and end when the duration is an explicit null', () => {
    const entry = { ...(entries[0] as Record<string, unknown>), timeInterval: { start: '2026-03-02T08:00:00Z', end: '2026-03-02T10:15:00Z', duration: null } };
    expect(mapClockifyEntry(entry, { ids, revision: 1 })).toMatchObject({ kind: 'record', record: { hours: '2.25' } });
  });

  it('keeps the key while the content stays, changes it when the content does', () => {
    const again = mapClockifyEntry(structuredClone(entries[0]), { ids, revision: REVISION });
    const edited = mapClockifyEntry({ ...(entries[0] as Record<string, unknown>), description: 'Sprint planning (long)' }, { ids, revision: REVISION + 60 });
    const first = outcomes[0];
    if (again.kind !== 'record' || edited.kind !== 'record' || first?.kind !== 'record') throw new Error('all should map');
    expect(again.msgId).toBe(first.msgId);
    expect(edited.msgId).not.toBe(first.msgId);
  });

  it('needs a revision from the ledger', () => {
    expect(mapClockifyEntry(entries[0], { ids })).toMatchObject({ kind: 'invalid', errors: [{ field: 'revision' }] });
  });
});
