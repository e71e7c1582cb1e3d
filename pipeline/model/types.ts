// The canonical records of CONTRACT §2, as the rest of billstream sees them once
// validated. Types are derived from the schemas in records.ts; this file only
// names the shapes shared between model, actors and connectors.
import type { z } from 'zod';
import type {
  assignmentSchema,
  consultantSchema,
  milestoneSchema,
  projectSchema,
  ratecardSchema,
  timeSchema,
} from './records.ts';

export const RECORD_KINDS = ['consultant', 'project', 'assignment', 'ratecard', 'time', 'milestone'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

export type ConsultantRecord = z.infer<typeof consultantSchema>;
export type ProjectRecord = z.infer<typeof projectSchema>;
export type AssignmentRecord = z.infer<typeof assignmentSchema>;
export type RatecardRecord = z.infer<typeof ratecardSchema>;
export type TimeRecord = z.infer<typeof timeSchema>;
export type MilestoneRecord = z.infer<typeof milestoneSchema>;

export interface RecordByKind {
  consultant: ConsultantRecord;
  project: ProjectRecord;
  assignment: AssignmentRecord;
  ratecard: RatecardRecord;
  time: TimeRecord;
  milestone: MilestoneRecord;
}

/** One field-level validation failure: which field, and why, in words a user can act on. */
export interface FieldError {
  /** Dotted path into the record, e.g. `tasks.0.taskId`; `(record)` for the whole record. */
  field: string;
  reason: string;
}

export type Validation<T> = { ok: true; record: T } | { ok: false; errors: FieldError[] };

/** The exception codes of CONTRACT §3, plus the ones the ERP can raise. */
export const EXCEPTION_CODES = [
  'invalid_record',
  'unknown_project',
  'no_assignment',
  'rate_missing',
  'project_closed',
  'rate_mismatch',
  'cap_exceeded',
  'erp_rejected',
] as const;
export type ExceptionCode = (typeof EXCEPTION_CODES)[number];
