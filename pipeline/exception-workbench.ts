// The exception workbench (CONTRACT §3 "exceptions are never lost: each is
// stored, listed, and can be replayed after the reference data is fixed, or
// dismissed"): replay and dismiss, one exception or many, every action audited
// in exception_audit with who, when, and the exception before and after.
//
// A replay marks the exception `replayed` and hands the work back to the
// pipeline; the pipeline alone decides money. A time entry goes through
// enrichment and its project's actor again with today's reference data (the
// actor marks the exception `resolved` when the entry then succeeds, or `open`
// again, one attempt more, when it fails again); an ERP rejection's outbox row
// goes back to pending for the poster. Both actions are idempotent: a second
// replay of a replayed exception and a second dismissal change nothing and say so.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { ExceptionCode } from './model/types.ts';

export const WORKBENCH_ERROR_CODES = {
  notFound: 'exception_not_found',
  notReplayable: 'not_replayable',
  dismissed: 'exception_dismissed',
  resolved: 'exception_resolved',
} as const;
export type WorkbenchErrorCode = (typeof WORKBENCH_ERROR_CODES)[keyof typeof WORKBENCH_ERROR_CODES];

/** A workbench action refused for a reason the caller can act on. */
export class WorkbenchError extends Error {
  readonly code: WorkbenchErrorCode;
  readonly exceptionId: string;

  constructor(code: WorkbenchErrorCode, exceptionId: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WorkbenchError';
    this.code = code;
    this.exceptionId = exceptionId;
  }
}

export function isWorkbenchError(err: unknown): err is WorkbenchError {
  return err instanceof WorkbenchError;
}

export interface WorkbenchDeps {
  /** Re-runs a stored time-entry revision through enrichment and its actor; false when no such revision is stored. */
  reevaluate(entryId: string, revision: number): Promise<boolean>;
  /** Called after ERP outbox rows went back to pending (wakes the poster). */
  onRequeued?: () => void;
}

/** The part of an exception an action changes, as the audit stores it before and after. */
export interface ExceptionSnapshot {
  status: string;
  attempts: number;
  resolvedAt: string | null;
  resolvedBy: string | null;
  resolutionNote: string | null;
  /** For erp_rejected: the status of its ERP outbox row. */
  outboxStatus?: string | null;
}

export interface AuditEntry {
  action: 'replay' | 'dismiss';
  actor: string;
  reason: string | null;
  at: string;
  before: ExceptionSnapshot;
  after: ExceptionSnapshot;
}

export interface ReplayResult {
  exceptionId: string;
  code: string;
  /** False when nothing was done because the exception was already replayed or resolved. */
  replayed: boolean;
  /** The exception's status after the call. */
  status: string;
  /** What the replay set going: a time entry re-evaluated, an ERP document re-queued, or nothing. */
  action: 'reevaluated' | 'requeued' | 'none';
  message: string;
}

export interface DismissResult {
  exceptionId: string;
  code: string;
  /** False when the exception was already dismissed: the answer is that first dismissal. */
  dismissed: boolean;
  status: 'dismissed';
  dismissedBy: string;
  dismissedAt: string;
  reason: string;
  message: string;
}

export interface BulkReplayResult {
  code: string;
  projectId: string | null;
  /** Open exceptions that matched (at most `limit`). */
  matched: number;
  replayed: string[];
  skipped: { exceptionId: string; reason: string }[];
  /** True when more open exceptions match than one call replays; call again. */
  truncated: boolean;
}

interface ExceptionRow {
  id: string;
  code: ExceptionCode;
  status: string;
  record_kind: string;
  entry_id: string | null;
  revision: number | null;
  project_id: string | null;
  record: Record<string, unknown> | null;
  errors: { field: string; reason: string }[] | null;
  attempts: number;
  resolved_at: string | null;
  resolved_by: string | null;
  resolution_note: string | null;
}

const INSTANT = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const EXCEPTION_COLUMNS = `id, code, status, record_kind, entry_id, revision, project_id, record, errors, attempts,
  ${INSTANT('resolved_at')} as resolved_at, resolved_by, resolution_note`;

/** Open exceptions one bulk replay takes; each is its own small transaction. @default 1000 */
export const BULK_REPLAY_LIMIT = 1000;

function snapshotOf(row: ExceptionRow, outboxStatus?: string | null): ExceptionSnapshot {
  return {
    status: row.status,
    attempts: row.attempts,
    resolvedAt: row.resolved_at,
    resolvedBy: row.resolved_by,
    resolutionNote: row.resolution_note,
    ...(outboxStatus === undefined ? {} : { outboxStatus }),
  };
}

function externalIdOf(row: ExceptionRow): string | null {
  const value = row.record?.externalId;
  return typeof value === 'string' ? value : null;
}

export class ExceptionWorkbench {
  readonly #orm: MikroORM;
  readonly #deps: WorkbenchDeps;

  constructor(orm: MikroORM, deps: WorkbenchDeps) {
    this.#orm = orm;
    this.#deps = deps;
  }

  /**
   * Replays one exception against today's reference data.
   *
   * @param options.force replay an exception already `replayed` once more (a
   *   replay whose re-evaluation never ran, say the process stopped first)
   * @throws {WorkbenchError} `exception_not_found`; `not_replayable` (an
   *   invalid record must be fixed at its source and ingested again; milestone
   *   exceptions are not re-decided); `exception_dismissed`
   */
  async replay(exceptionId: string, options: { by: string; force?: boolean }): Promise<ReplayResult> {
    const planned = await this.#orm.em.fork().transactional(async (tx) => {
      const em = tx as EntityManager;
      const row = await this.#lock(em, exceptionId);
      const base = { exceptionId, code: row.code };
      if (row.status === 'dismissed') {
        throw new WorkbenchError(WORKBENCH_ERROR_CODES.dismissed, exceptionId,
          `exception ${exceptionId} was dismissed by ${row.resolved_by ?? 'someone'} at ${row.resolved_at ?? '?'} (${row.resolution_note ?? 'no reason given'}); a dismissed exception is not replayed`);
      }
      if (row.status === 'resolved') {
        return { result: { ...base, replayed: false, status: 'resolved', action: 'none' as const, message: `exception ${exceptionId} is already resolved (${row.resolved_at ?? '?'}, by ${row.resolved_by ?? 'the pipeline'}); nothing to replay` } };
      }
      if (row.status === 'replayed' && options.force !== true) {
        const [last] = await em.execute<{ actor: string; at: string }[]>(
          `select actor, ${INSTANT('at')} as at from exception_audit where exception_id = ? and action = 'replay' order by id desc limit 1`, [exceptionId]);
        return { result: { ...base, replayed: false, status: 'replayed', action: 'none' as const,
          message: `exception ${exceptionId} was already replayed${last ? ` by ${last.actor} at ${last.at}` : ''} and is being re-evaluated; it turns resolved when the entry succeeds or open again when it fails (pass force to replay it once more)` } };
      }

      if (row.code === 'invalid_record') {
        const fields = (row.errors ?? []).map((e) => `${e.field} ${e.reason}`).join('; ');
        throw new WorkbenchError(WORKBENCH_ERROR_CODES.notReplayable, exceptionId,
          `exception ${exceptionId} is an invalid_record: the record itself is wrong${fields ? ` (${fields})` : ''}, and re-evaluating it cannot fix that; correct it at its source and ingest it again (POST /v1/ingest/{kind}), then dismiss this exception`);
      }

      let action: ReplayResult['action'];
      let outboxBefore: string | null | undefined;
      let outboxAfter: string | null | undefined;
      let reevaluate: { entryId: string; revision: number } | null = null;
      if (row.code === 'erp_rejected') {
        const externalId = externalIdOf(row);
        if (externalId === null) {
          throw new WorkbenchError(WORKBENCH_ERROR_CODES.notReplayable, exceptionId, `exception ${exceptionId} names no ERP document (externalId); there is nothing to post again`);
        }
        const [outbox] = await em.execute<{ status: string }[]>(`select status from erp_outbox where external_id = ? for update`, [externalId]);
        outboxBefore = outbox?.status ?? null;
        if (outbox?.status === 'rejected') {
          // Pending again, and back in the poster's queue, due at once.
          await em.execute(`with requeued as (update erp_outbox set status = 'pending', last_error = null where external_id = ? returning id)
            insert into erp_pending (id, next_attempt_at) select id, now() from requeued on conflict (id) do update set next_attempt_at = now()`, [externalId]);
          outboxAfter = 'pending';
        } else {
          outboxAfter = outboxBefore;
        }
        action = 'requeued';
      } else if (row.record_kind === 'time' && row.entry_id !== null && row.revision !== null) {
        const [stored] = await em.execute<{ stage: string }[]>(`select stage from entry_revision where entry_id = ? and revision = ?`, [row.entry_id, row.revision]);
        if (!stored) {
          throw new WorkbenchError(WORKBENCH_ERROR_CODES.notReplayable, exceptionId,
            `exception ${exceptionId}: entry ${row.entry_id} revision ${row.revision} is not stored, so it cannot be re-evaluated; ingest the entry again`);
        }
        action = 'reevaluated';
        reevaluate = { entryId: row.entry_id, revision: row.revision };
      } else {
        throw new WorkbenchError(WORKBENCH_ERROR_CODES.notReplayable, exceptionId,
          `exception ${exceptionId} is a ${row.code} of a ${row.record_kind} record; only time entries and ERP rejections are re-evaluated. Fix the ${row.record_kind} and send it again with a new revision, or dismiss this exception`);
      }

      const [after] = await em.execute<ExceptionRow[]>(
        `update billing_exception set status = 'replayed', resolved_at = null, resolved_by = null, resolution_note = null where id = ? returning ${EXCEPTION_COLUMNS}`,
        [exceptionId]);
      await this.#audit(em, exceptionId, 'replay', options.by, null, snapshotOf(row, outboxBefore), snapshotOf(after as ExceptionRow, outboxAfter));
      const what = action === 'requeued' ? `ERP document ${externalIdOf(row) ?? ''} is queued for posting again` : `entry ${row.entry_id ?? ''} revision ${row.revision ?? ''} is re-evaluated with today's reference data`;
      return { result: { ...base, replayed: true, status: 'replayed', action, message: `exception ${exceptionId} replayed: ${what}` }, reevaluate };
    });

    // After the commit: the actor's turn must find the exception already `replayed` to resolve it.
    if ('reevaluate' in planned && planned.reevaluate) {
      await this.#deps.reevaluate(planned.reevaluate.entryId, planned.reevaluate.revision);
    }
    if (planned.result.action === 'requeued' && planned.result.replayed) this.#deps.onRequeued?.();
    return planned.result;
  }

  /**
   * Dismisses one exception, recording who and why. Dismissing it again
   * answers the first dismissal and records nothing new.
   *
   * @throws {WorkbenchError} `exception_not_found`; `exception_resolved`
   */
  async dismiss(exceptionId: string, options: { by: string; reason: string }): Promise<DismissResult> {
    return this.#orm.em.fork().transactional(async (tx) => {
      const em = tx as EntityManager;
      const row = await this.#lock(em, exceptionId);
      if (row.status === 'dismissed') {
        return {
          exceptionId, code: row.code, dismissed: false, status: 'dismissed' as const,
          dismissedBy: row.resolved_by ?? '', dismissedAt: row.resolved_at ?? '', reason: row.resolution_note ?? '',
          message: `exception ${exceptionId} was already dismissed by ${row.resolved_by ?? '?'} at ${row.resolved_at ?? '?'}`,
        };
      }
      if (row.status === 'resolved') {
        throw new WorkbenchError(WORKBENCH_ERROR_CODES.resolved, exceptionId,
          `exception ${exceptionId} is already resolved (${row.resolved_at ?? '?'}, by ${row.resolved_by ?? 'the pipeline'}); there is nothing to dismiss`);
      }
      const [after] = await em.execute<ExceptionRow[]>(
        `update billing_exception set status = 'dismissed', resolved_at = now(), resolved_by = ?, resolution_note = ? where id = ? returning ${EXCEPTION_COLUMNS}`,
        [options.by, options.reason, exceptionId]);
      const dismissed = after as ExceptionRow;
      await this.#audit(em, exceptionId, 'dismiss', options.by, options.reason, snapshotOf(row), snapshotOf(dismissed));
      return {
        exceptionId, code: row.code, dismissed: true, status: 'dismissed' as const,
        dismissedBy: options.by, dismissedAt: dismissed.resolved_at ?? '', reason: options.reason,
        message: `exception ${exceptionId} dismissed by ${options.by}`,
      };
    });
  }

  /**
   * Replays every open exception of a code (and project), oldest first, each on
   * its own; one that cannot be replayed is listed in `skipped` with the reason.
   */
  async replayMatching(filter: { code: ExceptionCode; projectId?: string | null; by: string; limit?: number }): Promise<BulkReplayResult> {
    const limit = filter.limit ?? BULK_REPLAY_LIMIT;
    const params: unknown[] = [filter.code];
    let where = `status = 'open' and code = ?`;
    if (filter.projectId) { where += ' and project_id = ?'; params.push(filter.projectId); }
    params.push(limit + 1);
    const rows = await this.#orm.em.fork().execute<{ id: string }[]>(
      `select id from billing_exception e where ${where} order by e.first_seen_at, e.id limit ?`, params);
    const matched = rows.slice(0, limit);
    const result: BulkReplayResult = { code: filter.code, projectId: filter.projectId ?? null, matched: matched.length, replayed: [], skipped: [], truncated: rows.length > limit };
    for (const { id } of matched) {
      try {
        const outcome = await this.replay(id, { by: filter.by });
        if (outcome.replayed) result.replayed.push(id);
        else result.skipped.push({ exceptionId: id, reason: outcome.message });
      } catch (err) {
        if (!isWorkbenchError(err)) throw err;
        result.skipped.push({ exceptionId: id, reason: err.message });
      }
    }
    return result;
  }

  /** The exception's audit trail, oldest first; null when there is no such exception. */
  async auditTrail(exceptionId: string): Promise<AuditEntry[] | null> {
    const em = this.#orm.em.fork();
    const [exists] = await em.execute<{ id: string }[]>(`select id from billing_exception where id = ?`, [exceptionId]);
    if (!exists) return null;
    const rows = await em.execute<{ action: AuditEntry['action']; actor: string; reason: string | null; at: string; before: ExceptionSnapshot; after: ExceptionSnapshot }[]>(
      `select action, actor, reason, ${INSTANT('at')} as at, before, after from exception_audit where exception_id = ? order by id`, [exceptionId]);
    return rows.map((r) => ({ action: r.action, actor: r.actor, reason: r.reason, at: r.at, before: r.before, after: r.after }));
  }

  async #lock(em: EntityManager, exceptionId: string): Promise<ExceptionRow> {
    const [row] = await em.execute<ExceptionRow[]>(`select ${EXCEPTION_COLUMNS} from billing_exception where id = ? for update`, [exceptionId]);
    if (!row) throw new WorkbenchError(WORKBENCH_ERROR_CODES.notFound, exceptionId, `exception ${exceptionId} does not exist; list exceptions with GET /v1/exceptions`);
    return row;
  }

  async #audit(em: EntityManager, exceptionId: string, action: AuditEntry['action'], actor: string, reason: string | null, before: ExceptionSnapshot, after: ExceptionSnapshot): Promise<void> {
    await em.execute(`insert into exception_audit (exception_id, action, actor, reason, before, after) values (?, ?, ?, ?, ?::jsonb, ?::jsonb)`,
      [exceptionId, action, actor, reason, JSON.stringify(before), JSON.stringify(after)]);
  }
}
