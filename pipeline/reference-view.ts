// The in-memory view of reference data that enrichment reads: projects,
// consultants, assignments by project and rate cards by contract. It is loaded
// from PostgreSQL at start and updated as each reference batch commits, so an
// enrichment always sees what the ledger has stored, never more.
import type { AssignmentRecord, ConsultantRecord, ProjectRecord, RatecardRecord } from './model/types.ts';

export interface ReferenceSnapshot {
  project?: ProjectRecord;
  consultant?: ConsultantRecord;
  assignments: readonly AssignmentRecord[];
  ratecards: readonly RatecardRecord[];
  /** traceparent of the span that recorded each assignment, by assignmentId. */
  assignmentSpans: ReadonlyMap<string, string>;
}

const NONE: readonly never[] = [];

export class ReferenceView {
  readonly #projects = new Map<string, ProjectRecord>();
  readonly #consultants = new Map<string, ConsultantRecord>();
  readonly #assignmentsByProject = new Map<string, Map<string, AssignmentRecord>>();
  readonly #ratecardsByContract = new Map<string, Map<string, RatecardRecord>>();
  readonly #projectsByContract = new Map<string, Set<string>>();
  readonly #assignmentSpans = new Map<string, string>();
  /** The project each assignment is filed under, so a move touches only the two projects concerned. */
  readonly #projectOfAssignment = new Map<string, string>();
  // The lists a snapshot hands out, built once per change instead of once per
  // entry (every entry enriched allocated both afresh). Dropped on every put
  // that touches them; read-only to whoever holds a snapshot.
  readonly #assignmentLists = new Map<string, readonly AssignmentRecord[]>();
  readonly #ratecardLists = new Map<string, readonly RatecardRecord[]>();

  project(projectId: string): ProjectRecord | undefined {
    return this.#projects.get(projectId);
  }

  /** What enrichment of one entry needs, read at the moment it passes. */
  snapshotFor(projectId: string, consultantId: string): ReferenceSnapshot {
    const project = this.#projects.get(projectId);
    return {
      project,
      consultant: this.#consultants.get(consultantId),
      assignments: listOf(this.#assignmentLists, this.#assignmentsByProject, projectId),
      ratecards: project ? listOf(this.#ratecardLists, this.#ratecardsByContract, project.contractId) : NONE,
      assignmentSpans: this.#assignmentSpans,
    };
  }

  putProject(record: ProjectRecord): void {
    const previous = this.#projects.get(record.projectId);
    if (previous && previous.contractId !== record.contractId) this.#projectsByContract.get(previous.contractId)?.delete(record.projectId);
    this.#projects.set(record.projectId, record);
    let projects = this.#projectsByContract.get(record.contractId);
    if (!projects) this.#projectsByContract.set(record.contractId, (projects = new Set()));
    projects.add(record.projectId);
  }

  putConsultant(record: ConsultantRecord): void {
    this.#consultants.set(record.consultantId, record);
  }

  putAssignment(record: AssignmentRecord, spanContext?: string | null): void {
    const previousProject = this.#projectOfAssignment.get(record.assignmentId);
    if (previousProject !== undefined && previousProject !== record.projectId) {
      this.#assignmentsByProject.get(previousProject)?.delete(record.assignmentId);
      this.#assignmentLists.delete(previousProject);
    }
    this.#projectOfAssignment.set(record.assignmentId, record.projectId);
    let byId = this.#assignmentsByProject.get(record.projectId);
    if (!byId) this.#assignmentsByProject.set(record.projectId, (byId = new Map()));
    byId.set(record.assignmentId, record);
    this.#assignmentLists.delete(record.projectId);
    if (spanContext) this.#assignmentSpans.set(record.assignmentId, spanContext);
  }

  putRatecard(record: RatecardRecord): void {
    let byId = this.#ratecardsByContract.get(record.contractId);
    if (!byId) this.#ratecardsByContract.set(record.contractId, (byId = new Map()));
    byId.set(ratecardId(record), record);
    this.#ratecardLists.delete(record.contractId);
  }

  /** Projects whose waiting entries a change of this contract's rate cards may release. */
  projectsOfContract(contractId: string): string[] {
    return [...(this.#projectsByContract.get(contractId) ?? [])];
  }

  get size(): { projects: number; consultants: number; assignments: number; ratecards: number } {
    let assignments = 0;
    for (const m of this.#assignmentsByProject.values()) assignments += m.size;
    let ratecards = 0;
    for (const m of this.#ratecardsByContract.values()) ratecards += m.size;
    return { projects: this.#projects.size, consultants: this.#consultants.size, assignments, ratecards };
  }
}

/** The values of `byKey.get(key)` as a list, kept in `lists` until a put drops it. */
function listOf<T>(lists: Map<string, readonly T[]>, byKey: ReadonlyMap<string, ReadonlyMap<string, T>>, key: string): readonly T[] {
  let list = lists.get(key);
  if (list === undefined) {
    const byId = byKey.get(key);
    if (!byId) return NONE;
    lists.set(key, (list = [...byId.values()]));
  }
  return list;
}

export function ratecardId(record: Pick<RatecardRecord, 'contractId' | 'role' | 'effectiveFrom'>): string {
  return `${record.contractId}:${record.role}:${record.effectiveFrom}`;
}
