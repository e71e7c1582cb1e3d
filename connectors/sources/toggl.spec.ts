import { describe, expect, it } from 'vitest';
import { fixture, fixtureIds, fixtureText } from './fixtures/load.ts';
import { revisionFromInstant } from './mapping.ts';
import { mapTogglCsvRow, mapTogglEntry, readTogglCsv, togglCsvEntryId } from './toggl.ts';

const entries = fixture<unknown[]>('toggl-time-entries.json');
const ids = fixtureIds('toggl');
const outcomes = entries.map((entry) => mapTogglEntry(entry, { ids }));

describe('Toggl Track v9 time entries → canonical time records', () => {
  it('converts seconds to hours and dates the work in the template time zone', () => {
    expect(outcomes[0]).toEqual({
      kind: 'record',
      sourceId: '3340000001',
      msgId: 'toggl:3340000001:2026-03-03T01:02:03Z',
      record: {
        source: 'toggl',
        sourceKey: 'toggl:3340000001:2026-03-03T01:02:03Z',
        entryId: 'toggl-3340000001',
        revision: revisionFromInstant('2026-03-03T01:02:03Z'),
        projectId: 'acme-web',
        consultantId: 'kim-allen',
        taskId: 'design',
        region: 'emea',
        // 23:30 UTC on the 2nd is half past midnight on the 3rd in Berlin.
        workDate: '2026-03-03',
        hours: '1.50',
        status: 'approved',
        notes: 'Design review',
        sourceBillable: true,
      },
    });
  });

  it('skips a running entry (negative duration)', () => {
    expect(outcomes[1]).toEqual({ kind: 'skipped', sourceId: '3340000002', reason: expect.stringContaining('negative duration') });
  });

  it('maps server_deleted_at to a rejected revision dated by the deletion', () => {
    expect(outcomes[2]).toMatchObject({
      kind: 'record',
      msgId: 'toggl:3340000003:2026-03-04T10:00:00Z:deleted',
      record: { entryId: 'toggl-3340000003', status: 'rejected', hours: '4.00', revision: revisionFromInstant('2026-03-04T10:00:00Z') },
    });
  });

  it('rounds 18 seconds (0.005 h) half away from zero to 0.01', () => {
    expect(outcomes[3]).toMatchObject({ kind: 'record', record: { hours: '0.01' } });
  });

  it('fails an entry without a project on the explicit null', () => {
    expect(outcomes[4]).toMatchObject({ kind: 'invalid', sourceId: '3340000005' });
    const errors = outcomes[4]?.kind === 'invalid' ? outcomes[4].errors : [];
    expect(errors).toContainEqual({ field: 'projectId', reason: '"project_id" is null in the source entry (template toggl v1)' });
    expect(errors).toContainEqual({ field: 'taskId', reason: '"task_id" is null in the source entry (template toggl v1)' });
  });
});

describe('Toggl detailed-report CSV export → canonical time records', () => {
  const rows = readTogglCsv(fixtureText('toggl-detailed-export.csv'));
  const csvIds = fixtureIds('toggl-csv');

  it('maps a row by column names, with a revision from the ledger', () => {
    const row = rows[0]?.values as Record<string, string>;
    const outcome = mapTogglCsvRow(row, { ids: csvIds, revision: 812_345_678 });
    const id = `csv${togglCsvEntryId(row)}`;
    expect(outcome).toEqual({
      kind: 'record',
      sourceId: id,
      msgId: expect.stringMatching(new RegExp(`^toggl-csv:${id}:[0-9a-f]{16}$`)),
      record: {
        source: 'toggl',
        sourceKey: expect.any(String),
        entryId: `toggl-${id}`,
        revision: 812_345_678,
        projectId: 'acme-web',
        consultantId: 'kim-allen',
        taskId: 'design',
        region: 'emea',
        workDate: '2026-03-02',
        hours: '1.50',
        status: 'submitted',
        notes: 'Hero, "banner" and footer',
        sourceBillable: true,
      },
    });
  });

  it('keeps the entry id when the row is edited, and changes the key', () => {
    const row = rows[0]?.values as Record<string, string>;
    const edited = { ...row, Duration: '02:00:00' };
    expect(togglCsvEntryId(edited)).toBe(togglCsvEntryId(row));
    const a = mapTogglCsvRow(row, { ids: csvIds, revision: 1 });
    const b = mapTogglCsvRow(edited, { ids: csvIds, revision: 2 });
    expect(a.kind === 'record' && b.kind === 'record' && a.msgId !== b.msgId).toBe(true);
  });

  it('rounds a 18-second row and fails a row whose project has no mapping', () => {
    expect(mapTogglCsvRow(rows[1]?.values as Record<string, string>, { ids: csvIds, revision: 1 })).toMatchObject({ kind: 'record', record: { hours: '0.01', sourceBillable: false } });
    expect(mapTogglCsvRow(rows[2]?.values as Record<string, string>, { ids: csvIds, revision: 1 })).toMatchObject({
      kind: 'invalid',
      errors: [{ field: 'projectId', reason: expect.stringContaining('"Unknown Project" is not in the lookup table') }],
    });
  });

  it('needs a revision: the export keeps no update time', () => {
    expect(mapTogglCsvRow(rows[0]?.values as Record<string, string>, { ids: csvIds })).toMatchObject({ kind: 'invalid', errors: [{ field: 'revision' }] });
  });

  it('refuses a CSV that is no detailed report', () => {
    expect(() => readTogglCsv('Name,Hours\nKim,3\n')).toThrow(/no "Start date" column/);
  });
});
