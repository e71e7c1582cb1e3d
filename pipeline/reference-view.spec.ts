import { describe, expect, it } from 'vitest';
import { assignment, project, ratecards } from '../test/support/fixtures.ts';
import type { AssignmentRecord, ProjectRecord, RatecardRecord } from './model/types.ts';
import { ReferenceView } from './reference-view.ts';

const p1 = project as ProjectRecord;
const p2 = { ...project, projectId: 'p-2' } as ProjectRecord;
const a1 = assignment as AssignmentRecord;
const [card1, card2] = ratecards as [RatecardRecord, RatecardRecord];

function loaded(): ReferenceView {
  const view = new ReferenceView();
  view.putProject(p1);
  view.putProject(p2);
  view.putAssignment(a1);
  view.putRatecard(card1);
  return view;
}

describe('ReferenceView', () => {
  it('files an assignment moved to another project under that project only', () => {
    const view = loaded();
    expect(view.snapshotFor('p-1', 'c-1').assignments).toEqual([a1]);
    const moved = { ...a1, projectId: 'p-2', revision: 2 };
    view.putAssignment(moved);
    expect(view.snapshotFor('p-1', 'c-1').assignments).toEqual([]);
    expect(view.snapshotFor('p-2', 'c-1').assignments).toEqual([moved]);
    expect(view.size.assignments).toBe(1);
  });

  it('gives each snapshot the lists as they are at that moment: a put is seen by later snapshots, not by earlier ones', () => {
    const view = loaded();
    const before = view.snapshotFor('p-1', 'c-1');
    // Read again without a change: the same lists.
    expect(view.snapshotFor('p-1', 'c-1').assignments).toBe(before.assignments);

    const second = { ...a1, assignmentId: 'a-2', role: 'principal' };
    view.putAssignment(second);
    view.putRatecard(card2);
    const after = view.snapshotFor('p-1', 'c-1');
    expect(before.assignments).toEqual([a1]);
    expect(before.ratecards).toEqual([card1]);
    expect(after.assignments).toEqual([a1, second]);
    expect(after.ratecards).toEqual([card1, card2]);
    // Both projects share contract k-1's cards.
    expect(view.snapshotFor('p-2', 'c-1').ratecards).toEqual([card1, card2]);
  });

  it('replaces a revised assignment in place', () => {
    const view = loaded();
    view.snapshotFor('p-1', 'c-1');
    const revised = { ...a1, endDate: '2026-12-31', revision: 2 };
    view.putAssignment(revised);
    expect(view.snapshotFor('p-1', 'c-1').assignments).toEqual([revised]);
  });

  it('has empty lists for a project or contract it does not know', () => {
    const view = loaded();
    expect(view.snapshotFor('p-9', 'c-1')).toMatchObject({ project: undefined, assignments: [], ratecards: [] });
  });
});
