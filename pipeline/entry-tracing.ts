// One OpenTelemetry trace per time entry revision (CONTRACT §7), from ingestion
// to the ERP, built by the pipeline's stages through this one class.
//
//   ingest ─┬─ validate ─ dedupe ─ enrich ─ actor.turn ─ [wait.reference_data ─ enrich ─ actor.turn] ─ erp.posted
//           │   (the first span links to the assignment.record span of the entry's assignment)
//           └─ erp.post (a batch, in a trace of its own, links to every entry in it) ◄── link from erp.posted
//
// The stages before the actor only note their timestamps on the item; the spans
// are made when the turn has decided the entry (with those timestamps), so head
// sampling already knows whether the entry became an exception, was parked for
// reference data or is a redelivery: such traces are always kept, whatever
// BILLSTREAM_TRACE_RATIO says (see ops/telemetry.ts for what head sampling
// cannot do). Span attributes carry ids only: never a name, a note, approvedBy
// or any other field of the record.
//
// With tracing off (no tracer) every method is a no-op and items carry no timings.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { extractSpanContext, spanContextOf, traceHeaders, traceParentOf } from './model/trace-context.ts';
import type { AssignmentRecord, FieldError } from './model/types.ts';
import type { TimeItem } from './project-actor.ts';

export const TRACER_NAME = 'billstream';

/** Attribute keys: OpenTelemetry's messaging and error conventions, billstream's ids. */
export const TRACE_ATTRIBUTES = {
  messagingSystem: 'messaging.system',
  destination: 'messaging.destination.name',
  operationType: 'messaging.operation.type',
  messageId: 'messaging.message.id',
  batchCount: 'messaging.batch.message_count',
  errorType: 'error.type',
  entryId: 'billstream.entry_id',
  revision: 'billstream.revision',
  projectId: 'billstream.project_id',
  region: 'billstream.region',
  assignmentId: 'billstream.assignment_id',
  recordKind: 'billstream.record_kind',
  outcome: 'billstream.outcome',
  stage: 'billstream.stage',
  exceptionCode: 'billstream.exception_code',
  turnSize: 'billstream.turn.size',
  erpKind: 'billstream.erp.kind',
  erpExternalId: 'billstream.erp.external_id',
  erpDocumentId: 'billstream.erp.document_id',
  erpAttempt: 'billstream.erp.attempt',
  /** Why the sampler must keep this span's trace whatever the ratio: see KEEP. */
  keep: 'billstream.trace.keep',
} as const;

/** Reasons a trace is kept regardless of BILLSTREAM_TRACE_RATIO (the sampler reads TRACE_ATTRIBUTES.keep). */
export const KEEP = {
  exception: 'exception',
  retry: 'retry',
  parked: 'parked',
  /** A span other traces link to (an assignment.record): dropping it would leave dangling links. */
  linked: 'linked',
} as const;

export const SPAN_NAMES = {
  ingest: 'ingest',
  validate: 'validate',
  dedupe: 'dedupe',
  enrich: 'enrich',
  turn: 'actor.turn',
  wait: 'wait.reference_data',
  erpPost: 'erp.post',
  erpPosted: 'erp.posted',
  assignment: 'assignment.record',
  invoice: 'invoice',
} as const;

/** What the stages before the actor note about an entry (epoch milliseconds, sub-ms precision). */
export interface EntryTiming {
  subject?: string;
  publishedAt?: number;
  receivedAt?: number;
  decodedAt?: number;
  dedupedAt?: number;
  redelivered?: boolean;
  enrichStartedAt?: number;
  enrichedAt?: number;
  /** traceparent of the assignment.record span of the assignment enrichment matched. */
  assignmentSpan?: string | null;
}

/** The parts of an incoming message tracing reads (the pipeline's IncomingMessage fits). */
export interface TracedMessage {
  subject: string;
  publishedAt: Date;
  redelivered: boolean;
  header(name: string): string | undefined;
}

/** One project actor's turn, as tracing sees it. */
export interface TurnTrace {
  /**
   * Called as the turn takes up an item that it will record. When the entry has
   * no trace yet, makes its root `ingest` span and sets `item.traceParent` /
   * `item.traceId` to it, so the rows the turn writes (revision, outboxes) carry
   * the entry's trace. The stage spans follow in end() / fail().
   */
  enter(item: TimeItem, seen?: { stage: string; first_seen_at: string }): void;
  /** The revision rows the turn writes: one `actor.turn` span per entry (and the wait it ended). */
  decided(rows: readonly Record<string, unknown>[]): void;
  /** After commit. */
  end(): void;
  /** The turn rolled back: its spans end with status ERROR. */
  fail(err: unknown): void;
}

/** An ERP post as tracing sees it: the batch and each outbox row in it. */
export interface ErpBatchTrace {
  startedAt: number;
  rows: readonly {
    traceParent: string | null;
    externalId: string;
    projectId: string;
    region: string;
    attempts: number;
    transaction: Record<string, unknown>;
    documentId?: string | null;
    rejection?: { code: string } | null;
  }[];
  /** The whole post failed (released for a later attempt). */
  error?: unknown;
}

/** Spans started for a reference batch's assignments, ended once the batch commits. */
export interface AssignmentRecording {
  /** Starts the assignment.record span; returns its traceparent (what the ledger keeps as span_context). */
  record(record: AssignmentRecord, message: TracedMessage): string | null;
  end(stale: ReadonlySet<string>): void;
  fail(err: unknown): void;
}

const NO_TURN: TurnTrace = { enter() {}, decided() {}, end() {}, fail() {} };

/** High-resolution wall clock in epoch milliseconds: stage spans last microseconds. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

function routeTokens(subject: string): { region?: string; key?: string } {
  const parts = subject.split('.');
  return parts.length === 4 ? { region: parts[2], key: parts[3] } : {};
}

/** The error's type and a message without record content: exception texts can quote payloads. */
function describeError(err: unknown): { type: string; message: string } {
  if (err instanceof Error) return { type: err.name, message: err.message.slice(0, 300) };
  return { type: 'Error', message: String(err).slice(0, 300) };
}

function linkTo(traceParent: string | null | undefined, attributes?: Attributes): Link | null {
  const context = spanContextOf(traceParent);
  return context ? { context, attributes } : null;
}

export class EntryTracing {
  /** Tracing off: every method a no-op. */
  static readonly off = new EntryTracing(null);

  readonly #tracer: Tracer | null;

  constructor(tracer: Tracer | null) {
    this.#tracer = tracer;
  }

  get enabled(): boolean {
    return this.#tracer !== null;
  }

  now(): number {
    return this.#tracer ? preciseNow() : 0;
  }

  // -- before the actor: timestamps only -----------------------------------

  /** The message was received at `receivedAt` and has just been decoded. */
  received(message: TracedMessage, receivedAt: number): EntryTiming | undefined {
    if (!this.#tracer) return undefined;
    return { subject: message.subject, publishedAt: message.publishedAt.getTime(), receivedAt, decodedAt: preciseNow(), redelivered: message.redelivered };
  }

  deduped(timing: EntryTiming | undefined): EntryTiming | undefined {
    if (timing) timing.dedupedAt = preciseNow();
    return timing;
  }

  enriched(timing: EntryTiming | undefined, startedAt: number, assignmentSpan: string | null | undefined): EntryTiming | undefined {
    if (!this.#tracer) return undefined;
    return { ...timing, enrichStartedAt: startedAt, enrichedAt: preciseNow(), assignmentSpan: assignmentSpan ?? null };
  }

  /**
   * An invalid record: its spans are made at once (it never reaches an actor).
   * Only field names are recorded — a field's reason can quote the payload.
   * @returns the traceparent the exception announcement carries
   */
  invalid(message: TracedMessage, receivedAt: number, kind: string, errors: readonly FieldError[]): string | null {
    const tracer = this.#tracer;
    if (!tracer) return message.header('traceparent') ?? null;
    const { region, key } = routeTokens(message.subject);
    const attributes: Attributes = {
      [TRACE_ATTRIBUTES.recordKind]: kind, [TRACE_ATTRIBUTES.keep]: KEEP.exception,
      ...(region ? { [TRACE_ATTRIBUTES.region]: region } : {}), ...(key && (kind === 'time' || kind === 'milestone') ? { [TRACE_ATTRIBUTES.projectId]: key } : {}),
    };
    const { context, traceParent } = this.#entryContext(message, attributes, receivedAt, []);
    const span = tracer.startSpan(SPAN_NAMES.validate, { startTime: receivedAt, attributes: { ...attributes, ...processing(message.subject), [TRACE_ATTRIBUTES.errorType]: 'invalid_record' } }, context);
    span.addEvent('exception', { 'exception.type': 'invalid_record', 'exception.message': `invalid fields: ${errors.map((e) => e.field).join(', ')}` });
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'invalid_record' });
    span.end();
    return traceParent;
  }

  // -- the actor's turn --------------------------------------------------

  startTurn(projectId: string, size: number): TurnTrace {
    return this.#tracer ? new ActorTurnTrace(this.#tracer, projectId, size) : NO_TURN;
  }

  // -- reference data ------------------------------------------------------

  startAssignments(): AssignmentRecording | null {
    const tracer = this.#tracer;
    if (!tracer) return null;
    const spans = new Map<string, Span>();
    return {
      record: (record, message) => {
        const parent = extractSpanContext(message);
        const span = tracer.startSpan(SPAN_NAMES.assignment, {
          kind: SpanKind.CONSUMER, root: !parent,
          attributes: {
            ...processing(message.subject), [TRACE_ATTRIBUTES.assignmentId]: record.assignmentId, [TRACE_ATTRIBUTES.projectId]: record.projectId,
            [TRACE_ATTRIBUTES.revision]: record.revision, [TRACE_ATTRIBUTES.keep]: KEEP.linked,
            ...(routeTokens(message.subject).region ? { [TRACE_ATTRIBUTES.region]: routeTokens(message.subject).region } : {}),
          },
        }, parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT);
        spans.get(record.assignmentId)?.end();
        spans.set(record.assignmentId, span);
        return traceParentOf(span.spanContext());
      },
      end: (stale) => {
        for (const [assignmentId, span] of spans) {
          span.setAttribute(TRACE_ATTRIBUTES.outcome, stale.has(assignmentId) ? 'stale' : 'applied');
          span.end();
        }
      },
      fail: (err) => {
        for (const span of spans.values()) failSpan(span, err);
      },
    };
  }

  // -- ingest publishers ---------------------------------------------------

  /**
   * The root `ingest` span of a record published to an ingest subject (the
   * HTTP ingest route, the demo): the pipeline's spans become its children.
   */
  startIngest(subject: string, record: unknown): { headers: Record<string, string>; end(err?: unknown): void } {
    const tracer = this.#tracer;
    if (!tracer) return { headers: {}, end() {} };
    const fields = (record && typeof record === 'object' ? record : {}) as Record<string, unknown>;
    const { region } = routeTokens(subject);
    const attributes: Attributes = {
      [TRACE_ATTRIBUTES.messagingSystem]: 'nats', [TRACE_ATTRIBUTES.destination]: subject, [TRACE_ATTRIBUTES.operationType]: 'send',
      ...(region ? { [TRACE_ATTRIBUTES.region]: region } : {}),
      ...(typeof fields.entryId === 'string' ? { [TRACE_ATTRIBUTES.entryId]: fields.entryId } : {}),
      ...(typeof fields.revision === 'number' ? { [TRACE_ATTRIBUTES.revision]: fields.revision } : {}),
      ...(typeof fields.projectId === 'string' ? { [TRACE_ATTRIBUTES.projectId]: fields.projectId } : {}),
    };
    const span = tracer.startSpan(SPAN_NAMES.ingest, { kind: SpanKind.PRODUCER, root: true, attributes });
    return {
      headers: traceHeaders(span.spanContext()),
      end: (err) => { if (err === undefined) span.end(); else failSpan(span, err); },
    };
  }

  // -- ERP -----------------------------------------------------------------

  /**
   * An ERP post, made once its outcome is known: the `erp.post` batch span in a
   * trace of its own linking to every entry in it, and in each entry's trace an
   * `erp.posted` span linking back to the batch.
   */
  erpPost(batch: ErpBatchTrace): void {
    const tracer = this.#tracer;
    if (!tracer || batch.rows.length === 0) return;
    const attempt = Math.max(...batch.rows.map((r) => r.attempts));
    const keep = batch.error !== undefined || batch.rows.some((r) => r.rejection) ? KEEP.exception : attempt > 1 ? KEEP.retry : undefined;
    const links: Link[] = [];
    for (const row of batch.rows) {
      const link = linkTo(row.traceParent, entryIdOf(row.transaction));
      if (link) links.push(link);
    }
    const span = tracer.startSpan(SPAN_NAMES.erpPost, {
      kind: SpanKind.CLIENT, root: true, startTime: batch.startedAt, links,
      attributes: { [TRACE_ATTRIBUTES.batchCount]: batch.rows.length, [TRACE_ATTRIBUTES.erpAttempt]: attempt, ...(keep ? { [TRACE_ATTRIBUTES.keep]: keep } : {}) },
    }, ROOT_CONTEXT);
    if (batch.error !== undefined) failSpan(span, batch.error, false);
    const batchLink: Link = { context: span.spanContext() };
    const endedAt = preciseNow();
    for (const row of batch.rows) {
      const parent = spanContextOf(row.traceParent);
      if (!parent) continue;
      const tx = row.transaction;
      const failed = batch.error !== undefined || row.rejection;
      const child = tracer.startSpan(SPAN_NAMES.erpPosted, {
        kind: SpanKind.INTERNAL, startTime: batch.startedAt, links: [batchLink],
        attributes: {
          ...entryIdOf(tx), [TRACE_ATTRIBUTES.projectId]: row.projectId, [TRACE_ATTRIBUTES.region]: row.region,
          [TRACE_ATTRIBUTES.erpKind]: String(tx.kind ?? ''), [TRACE_ATTRIBUTES.erpExternalId]: row.externalId, [TRACE_ATTRIBUTES.erpAttempt]: row.attempts,
          ...(row.documentId ? { [TRACE_ATTRIBUTES.erpDocumentId]: row.documentId } : {}),
          ...(row.rejection ? { [TRACE_ATTRIBUTES.errorType]: 'erp_rejected', [TRACE_ATTRIBUTES.exceptionCode]: 'erp_rejected' } : {}),
          ...(keep ? { [TRACE_ATTRIBUTES.keep]: failed ? KEEP.exception : keep } : {}),
        },
      }, trace.setSpanContext(ROOT_CONTEXT, parent));
      if (row.rejection) child.setStatus({ code: SpanStatusCode.ERROR, message: `erp_rejected: ${row.rejection.code}` });
      else if (batch.error !== undefined) failSpan(child, batch.error, false);
      child.end(endedAt);
    }
    span.end(endedAt);
  }

  // -- batches (ERP posts, invoices) -----------------------------------------

  /** A span serving a batch, in its own trace, linking to each traceparent given. The caller ends it. */
  startBatchSpan(name: string, traceParents: Iterable<string | null | undefined>, attributes: Attributes = {}): Span {
    return startBatchSpan(name, traceParents, attributes, this.#tracer ?? undefined);
  }

  #entryContext(message: TracedMessage, attributes: Attributes, receivedAt: number, links: Link[]): { context: Context; traceParent: string | null } {
    const tracer = this.#tracer as Tracer;
    const parent = extractSpanContext(message);
    if (parent) return { context: trace.setSpanContext(ROOT_CONTEXT, parent), traceParent: traceParentOf(parent) };
    const root = tracer.startSpan(SPAN_NAMES.ingest, {
      kind: SpanKind.CONSUMER, root: true, startTime: message.publishedAt.getTime(), links,
      attributes: { ...attributes, [TRACE_ATTRIBUTES.messagingSystem]: 'nats', [TRACE_ATTRIBUTES.destination]: message.subject, [TRACE_ATTRIBUTES.operationType]: 'receive' },
    }, ROOT_CONTEXT);
    root.end(receivedAt);
    return { context: trace.setSpan(ROOT_CONTEXT, root), traceParent: traceParentOf(root.spanContext()) };
  }
}

/**
 * A span that serves a batch (an invoice, an ERP post): the root of a trace of
 * its own, with a LINK to each entry's span context (the traceparent stored on
 * the entry's rows, e.g. erp_outbox.trace_parent or entry_revision.trace_parent).
 * The caller ends it (`span.end()`); on failure `span.recordException(err)` and
 * `span.setStatus({ code: SpanStatusCode.ERROR })` first. Uses the process's
 * registered tracer (a no-op one when tracing is off) unless one is given.
 *
 * @example
 * const span = startBatchSpan('invoice', rows.map((r) => r.trace_parent), { 'billstream.project_id': projectId });
 * try { ... } finally { span.end(); }
 */
export function startBatchSpan(name: string, traceParents: Iterable<string | null | undefined>, attributes: Attributes = {}, tracer: Tracer = trace.getTracer(TRACER_NAME)): Span {
  const links: Link[] = [];
  for (const traceParent of traceParents) {
    const link = linkTo(traceParent);
    if (link) links.push(link);
  }
  return tracer.startSpan(name, { kind: SpanKind.INTERNAL, root: true, links, attributes: { [TRACE_ATTRIBUTES.batchCount]: links.length, ...attributes } }, ROOT_CONTEXT);
}

/** The W3C headers of a span, for an outbox row's `headers` (e.g. an invoice.status.* announcement). */
export function traceHeadersOf(span: Span): Record<string, string> {
  return traceHeaders(span.spanContext());
}

function entryIdOf(tx: Record<string, unknown>): Attributes {
  return typeof tx.entryId === 'string' ? { [TRACE_ATTRIBUTES.entryId]: tx.entryId, ...(typeof tx.revision === 'number' ? { [TRACE_ATTRIBUTES.revision]: tx.revision } : {}) } : {};
}

function processing(subject: string | undefined): Attributes {
  return subject ? { [TRACE_ATTRIBUTES.messagingSystem]: 'nats', [TRACE_ATTRIBUTES.destination]: subject, [TRACE_ATTRIBUTES.operationType]: 'process' } : {};
}

function failSpan(span: Span, err: unknown, end = true): void {
  const { type, message } = describeError(err);
  span.recordException({ name: type, message });
  span.setAttribute(TRACE_ATTRIBUTES.errorType, type);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  if (end) span.end();
}

interface EnteredEntry {
  item: TimeItem;
  context: Context;
  attributes: Attributes;
  seenStage: string | undefined;
  firstSeenAt: number | undefined;
  /** Links for the entry's first span not yet made (the root's, when the pipeline made the root). */
  links: Link[];
  /** Set by decided(): what the turn wrote. */
  stage?: string;
  code?: string | null;
}

/**
 * Only an entry's root span is made inside the turn's transaction (its ids go
 * into the rows); the stage spans are made after commit, from the timings the
 * item carries, so tracing adds nothing to the time a project's row is locked.
 */
class ActorTurnTrace implements TurnTrace {
  readonly #tracer: Tracer;
  readonly #projectId: string;
  readonly #size: number;
  readonly #startedAt = preciseNow();
  readonly #entries = new Map<string, EnteredEntry>();

  constructor(tracer: Tracer, projectId: string, size: number) {
    this.#tracer = tracer;
    this.#projectId = projectId;
    this.#size = size;
  }

  enter(item: TimeItem, seen?: { stage: string; first_seen_at: string }): void {
    const { entry, timing } = item;
    const key = `${entry.entryId}:${entry.revision}`;
    if (this.#entries.has(key)) return;
    const keep = item.outcome.kind === 'exception' ? KEEP.exception
      : item.outcome.kind === 'waiting' || seen?.stage === 'waiting' ? KEEP.parked
        : item.reevaluate || timing?.redelivered ? KEEP.retry : undefined;
    const attributes: Attributes = {
      [TRACE_ATTRIBUTES.entryId]: entry.entryId, [TRACE_ATTRIBUTES.revision]: entry.revision, [TRACE_ATTRIBUTES.projectId]: this.#projectId,
      [TRACE_ATTRIBUTES.region]: item.snapshot.project?.region ?? item.region, ...(keep ? { [TRACE_ATTRIBUTES.keep]: keep } : {}),
    };
    const assignmentLink = linkTo(timing?.assignmentSpan);
    // The entry's first span links to its assignment's; on a release that first span is the wait.
    let links: Link[] = assignmentLink ? [assignmentLink] : [];
    let context: Context;
    const parent = spanContextOf(item.traceParent);
    if (parent) {
      context = trace.setSpanContext(ROOT_CONTEXT, parent);
    } else {
      const startTime = timing?.publishedAt ?? item.receivedAt.getTime();
      const root = this.#tracer.startSpan(SPAN_NAMES.ingest, {
        kind: SpanKind.CONSUMER, root: true, startTime, links: seen?.stage === 'waiting' ? [] : links,
        attributes: {
          ...attributes, [TRACE_ATTRIBUTES.messagingSystem]: 'nats', [TRACE_ATTRIBUTES.operationType]: 'receive',
          ...(timing?.subject ? { [TRACE_ATTRIBUTES.destination]: timing.subject } : {}),
        },
      }, ROOT_CONTEXT);
      root.end(timing?.receivedAt ?? startTime);
      if (seen?.stage !== 'waiting') links = [];
      context = trace.setSpan(ROOT_CONTEXT, root);
      item.traceParent = traceParentOf(root.spanContext());
      item.traceId = root.spanContext().traceId;
    }
    this.#entries.set(key, {
      item, context, attributes, links, seenStage: seen?.stage, firstSeenAt: seen ? new Date(seen.first_seen_at).getTime() : undefined,
    });
  }

  decided(rows: readonly Record<string, unknown>[]): void {
    for (const row of rows) {
      const entered = this.#entries.get(`${String(row.entry_id)}:${String(row.revision)}`);
      if (!entered || entered.stage !== undefined) continue;
      entered.stage = String(row.stage);
      entered.code = typeof row.exception_code === 'string' ? row.exception_code : null;
    }
  }

  end(): void {
    const at = preciseNow();
    for (const entered of this.#entries.values()) {
      this.#stageSpans(entered);
      this.#turnSpan(entered, at, null);
    }
  }

  fail(err: unknown): void {
    const at = preciseNow();
    for (const entered of this.#entries.values()) {
      this.#stageSpans(entered);
      this.#turnSpan(entered, at, err);
    }
  }

  /** validate, dedupe, enrich (as timed before the turn) and, for a released entry, its wait. */
  #stageSpans(entered: EnteredEntry): void {
    const { item, context } = entered;
    const timing = item.timing;
    // Stage spans carry the entry id only (and why the trace is kept): the
    // project, region and revision are on the root, the turn and erp.posted;
    // fewer attributes on the short spans is most of what tracing costs less.
    const attributes: Attributes = { [TRACE_ATTRIBUTES.entryId]: item.entry.entryId, ...(entered.attributes[TRACE_ATTRIBUTES.keep] ? { [TRACE_ATTRIBUTES.keep]: entered.attributes[TRACE_ATTRIBUTES.keep] } : {}) };
    const released = entered.seenStage === 'waiting';
    const takeLinks = () => { if (released) return []; const l = entered.links; entered.links = []; return l; };
    if (timing?.receivedAt !== undefined && timing.decodedAt !== undefined) {
      const validate = { ...attributes, [TRACE_ATTRIBUTES.messagingSystem]: 'nats', [TRACE_ATTRIBUTES.operationType]: 'process' };
      this.#tracer.startSpan(SPAN_NAMES.validate, { startTime: timing.receivedAt, attributes: validate, links: takeLinks() }, context).end(timing.decodedAt);
    }
    if (timing?.decodedAt !== undefined && timing.dedupedAt !== undefined) {
      this.#tracer.startSpan(SPAN_NAMES.dedupe, { startTime: timing.decodedAt, attributes, links: takeLinks() }, context).end(timing.dedupedAt);
    }
    const stage = entered.stage;
    const failed = stage === 'exception' || stage === 'held';
    if (released && stage !== undefined && stage !== 'waiting' && entered.firstSeenAt !== undefined) {
      const wait = this.#tracer.startSpan(SPAN_NAMES.wait, {
        startTime: entered.firstSeenAt, links: entered.links,
        attributes: { ...attributes, ...(failed ? { [TRACE_ATTRIBUTES.keep]: KEEP.exception, [TRACE_ATTRIBUTES.exceptionCode]: entered.code ?? stage } : {}) },
      }, context);
      if (stage === 'exception') wait.setStatus({ code: SpanStatusCode.ERROR, message: `${entered.code ?? 'exception'}: reference data did not arrive within the grace` });
      wait.end(timing?.enrichStartedAt ?? this.#startedAt);
      entered.links = [];
    }
    if (timing?.enrichStartedAt !== undefined && timing.enrichedAt !== undefined) {
      this.#tracer.startSpan(SPAN_NAMES.enrich, {
        startTime: timing.enrichStartedAt, links: takeLinks(),
        attributes: { ...attributes, [TRACE_ATTRIBUTES.outcome]: item.outcome.kind, ...(item.outcome.kind !== 'enriched' ? { [TRACE_ATTRIBUTES.exceptionCode]: item.outcome.code } : {}) },
      }, context).end(timing.enrichedAt);
    }
  }

  #turnSpan(entered: EnteredEntry, at: number, err: unknown): void {
    const stage = entered.stage;
    const failed = err !== null || stage === 'exception' || stage === 'held';
    const code = entered.code ?? stage;
    const span = this.#tracer.startSpan(SPAN_NAMES.turn, {
      startTime: this.#startedAt,
      attributes: {
        ...entered.attributes, [TRACE_ATTRIBUTES.turnSize]: this.#size, ...(stage !== undefined ? { [TRACE_ATTRIBUTES.stage]: stage } : {}),
        ...(failed ? { [TRACE_ATTRIBUTES.keep]: KEEP.exception } : {}),
        ...(failed && err === null ? { [TRACE_ATTRIBUTES.errorType]: code, [TRACE_ATTRIBUTES.exceptionCode]: code } : {}),
      },
    }, entered.context);
    if (err !== null) {
      failSpan(span, err, false);
    } else if (failed) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: code ?? 'exception' });
    }
    span.end(at);
  }
}
