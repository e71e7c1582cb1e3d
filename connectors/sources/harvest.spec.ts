import { describe, expect, it } from 'vitest';
import { fixture, fixtureIds } from './fixtures/load.ts';
import { mapHarvestEntry } from './harvest.ts';
import { revisionFromInstant } from './mapping.ts';

const page = fixture<{ time_entries: unknown[] }>('harvest-time-entries.json');
const ids = fixtureIds('harvest');
const outcomes = page.time_entries.map((entry) => mapHarvestEntry(entry, { ids }));

describe('Harvest v2 time entries → canonical time records', () => {
  it('maps a closed (approved) entry with its update time as revision and key', () => {
    expect(outcomes[0]).toEqual({
      kind: 'record',
      sourceId: '636709355',
      msgId: 'harvest:636709355:2026-03-03T16:47:14Z',
      record: {
        source: 'harvest',
        sourceKey: 'harvest:636709355:2026-03-03T16:47:14Z',
        entryId: 'harvest-636709355',
        revision: revisionFromInstant('2026-03-03T16:47:14Z'),
        projectId: 'acme-web',
        consultantId: 'kim-allen',
        taskId: 'design',
        region: 'emea',
        workDate: '2026-03-02',
        hours: '2.11',
        status: 'approved',
        notes: 'Adding CSS styling',
        sourceBillable: true,
        sourceLocked: true,
      },
    });
  });

  it('rounds decimal hours half away from zero on their digits and leaves an open entry submitted', () => {
    expect(outcomes[1]).toMatchObject({
      kind: 'record',
      record: { entryId: 'harvest-636708723', taskId: 'dev', hours: '1.01', status: 'submitted', sourceBillable: false, sourceLocked: false },
    });
    expect(outcomes[1]?.kind === 'record' && 'notes' in outcomes[1].record).toBe(false);
  });

  it('skips a running timer', () => {
    expect(outcomes[2]).toEqual({ kind: 'skipped', sourceId: '636708724', reason: expect.stringContaining('running') });
  });

  it('names the field, the source path and the template for an id it cannot map', () => {
    expect(outcomes[3]).toEqual({
      kind: 'invalid',
      sourceId: '636708725',
      errors: [
        { field: 'projectId', reason: '"project.id" "14308069" is not in the lookup table (it has "14307913") in the source entry (template harvest v1)' },
      ],
    });
  });

  it('gives a later update a higher revision and another key', () => {
    const entry = page.time_entries[0] as Record<string, unknown>;
    const later = mapHarvestEntry({ ...entry, updated_at: '2026-03-05T08:00:00Z', hours: 2.5 }, { ids });
    const first = outcomes[0];
    if (later.kind !== 'record' || first?.kind !== 'record') throw new Error('both should map');
    expect(later.record.revision).toBeGreaterThan(first.record.revision);
    expect(later.msgId).toBe('harvest:636709355:2026-03-05T08:00:00Z');
    expect(later.record.hours).toBe('2.50');
  });

  it('reports every unreadable field at once', () => {
    const outcome = mapHarvestEntry({ id: 7, spent_date: '2026-02-30', hours: 'lots', updated_at: 'yesterday', project: { id: 14307913 }, user: { id: 1782959 }, task: { id: 8083365 } }, { ids });
    expect(outcome.kind).toBe('invalid');
    expect(outcome.kind === 'invalid' && outcome.errors.map((e) => e.field).sort()).toEqual(['hours', 'revision', 'workDate']);
  });
});
