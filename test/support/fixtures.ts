// Small, readable reference data for integration tests: one T&M project in
// amer with a billable and a non-billable task, one consultant, one assignment
// and a rate card that changes on 2026-11-16.
export const project = {
  projectId: 'p-1', customerId: 'cust-1', contractId: 'k-1', region: 'amer', currency: 'USD', billingModel: 'tm', status: 'active',
  legalEntity: 'le-us', tasks: [{ taskId: 't-1', billable: true }, { taskId: 't-2', billable: false }],
};
export const consultant = { consultantId: 'c-1', homeRegion: 'amer', costRate: '80.00', currency: 'USD' };
export const assignment = {
  assignmentId: 'a-1', consultantId: 'c-1', projectId: 'p-1', taskId: 't-1', role: 'senior', billable: true,
  startDate: '2026-11-01', endDate: '2026-11-30', revision: 1,
};
export const ratecards = [
  { contractId: 'k-1', role: 'senior', rate: '150.00', currency: 'USD', effectiveFrom: '2026-01-01', effectiveTo: '2026-11-16' },
  { contractId: 'k-1', role: 'senior', rate: '160.00', currency: 'USD', effectiveFrom: '2026-11-16' },
];

export function entry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    entryId: 'e-1', source: 'timesheet', revision: 1, consultantId: 'c-1', projectId: 'p-1', taskId: 't-1', workDate: '2026-11-10',
    hours: 7.5, status: 'approved', approvedAt: '2026-11-20T10:00:00Z', approvedBy: 'mgr-1', ...overrides,
  };
}

export const subjects = {
  project: (p = project) => `ingest.project.${p.region}.${p.projectId}`,
  consultant: () => `ingest.consultant.global.c-1`,
  assignment: (a: { projectId: string } = assignment) => `ingest.assignment.amer.${a.projectId}`,
  ratecard: () => `ingest.ratecard.global.k-1`,
  time: (projectId = 'p-1') => `ingest.time.amer.${projectId}`,
  milestone: (projectId: string) => `ingest.milestone.amer.${projectId}`,
};

/**
 * The reference data of `count` T&M projects p-0 … p-<count-1> in amer, each with
 * consultant c-1 assigned as senior on task t-1 for November 2026, priced by k-1's cards.
 */
export async function publishProjects(h: { publish(subject: string, record: unknown): Promise<void> }, count: number): Promise<void> {
  await h.publish('ingest.consultant.global.c-1', consultant);
  for (const card of ratecards) await h.publish('ingest.ratecard.global.k-1', card);
  for (let i = 0; i < count; i++) {
    const projectId = `p-${i}`;
    await h.publish(`ingest.project.amer.${projectId}`, { ...project, projectId });
    await h.publish(`ingest.assignment.amer.${projectId}`, { ...assignment, assignmentId: `a-${i}`, projectId });
  }
}
