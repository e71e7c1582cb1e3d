// MikroORM entities for billstream's ledger, one per table of the initial
// migration. The schema is owned by the checked-in migrations; these definitions
// map it for the ORM's unit of work (reference upserts, lifecycle reads, the
// exception workbench). Hot paths in actor turns use set-based SQL instead.
import { defineEntity, p } from '@mikro-orm/core';

const timestamps = {
  updatedAt: p.datetime().columnType('timestamptz').onCreate(() => new Date()).onUpdate(() => new Date()),
};

export const ConsultantSchema = defineEntity({
  name: 'Consultant',
  tableName: 'consultant',
  properties: {
    consultantId: p.string().primary().columnType('text'),
    homeRegion: p.string().columnType('text'),
    costRateMinor: p.bigint('bigint'),
    currency: p.string().columnType('char(3)'),
    revision: p.integer(),
    record: p.json<Record<string, unknown>>(),
    ...timestamps,
  },
});
export class Consultant extends ConsultantSchema.class {}
ConsultantSchema.setClass(Consultant);

export const ProjectSchema = defineEntity({
  name: 'Project',
  tableName: 'project',
  properties: {
    projectId: p.string().primary().columnType('text'),
    customerId: p.string().columnType('text'),
    contractId: p.string().columnType('text'),
    region: p.string().columnType('text'),
    currency: p.string().columnType('char(3)'),
    billingModel: p.string().columnType('text'),
    status: p.string().columnType('text'),
    legalEntity: p.string().columnType('text'),
    notToExceedMinor: p.bigint('bigint').nullable(),
    revision: p.integer(),
    record: p.json<Record<string, unknown>>(),
    ...timestamps,
  },
});
export class Project extends ProjectSchema.class {}
ProjectSchema.setClass(Project);

export const AssignmentSchema = defineEntity({
  name: 'Assignment',
  tableName: 'assignment',
  properties: {
    assignmentId: p.string().primary().columnType('text'),
    consultantId: p.string().columnType('text'),
    projectId: p.string().columnType('text'),
    taskId: p.string().columnType('text'),
    role: p.string().columnType('text'),
    billable: p.boolean(),
    startDate: p.string().columnType('date'),
    endDate: p.string().columnType('date'),
    revision: p.integer(),
    record: p.json<Record<string, unknown>>(),
    /** W3C traceparent of the span that recorded this assignment, for the entry's link. */
    spanContext: p.string().columnType('text').nullable(),
    ...timestamps,
  },
});
export class Assignment extends AssignmentSchema.class {}
AssignmentSchema.setClass(Assignment);

export const RatecardSchema = defineEntity({
  name: 'Ratecard',
  tableName: 'ratecard',
  properties: {
    ratecardId: p.string().primary().columnType('text'),
    contractId: p.string().columnType('text'),
    role: p.string().columnType('text'),
    rateMinor: p.bigint('bigint'),
    currency: p.string().columnType('char(3)'),
    effectiveFrom: p.string().columnType('date'),
    effectiveTo: p.string().columnType('date').nullable(),
    revision: p.integer(),
    record: p.json<Record<string, unknown>>(),
    ...timestamps,
  },
});
export class Ratecard extends RatecardSchema.class {}
RatecardSchema.setClass(Ratecard);

export const EntryRevisionSchema = defineEntity({
  name: 'EntryRevision',
  tableName: 'entry_revision',
  properties: {
    entryId: p.string().primary().columnType('text'),
    revision: p.integer().primary(),
    projectId: p.string().columnType('text'),
    region: p.string().columnType('text'),
    status: p.string().columnType('text'),
    /** received | waiting | enriched | charged | non_billable | not_chargeable | held | exception | superseded | stale | duplicate */
    stage: p.string().columnType('text'),
    waitingFor: p.string().columnType('text').nullable(),
    billable: p.boolean().nullable(),
    role: p.string().columnType('text').nullable(),
    rateMinor: p.bigint('bigint').nullable(),
    amountMinor: p.bigint('bigint').nullable(),
    currency: p.string().columnType('char(3)').nullable(),
    hoursHundredths: p.bigint('bigint'),
    workDate: p.string().columnType('date'),
    record: p.json<Record<string, unknown>>(),
    exceptionCode: p.string().columnType('text').nullable(),
    traceId: p.string().columnType('text').nullable(),
    traceParent: p.string().columnType('text').nullable(),
    firstSeenAt: p.datetime().columnType('timestamptz'),
    approvedAt: p.datetime().columnType('timestamptz').nullable(),
    enrichedAt: p.datetime().columnType('timestamptz').nullable(),
    decidedAt: p.datetime().columnType('timestamptz').nullable(),
  },
});
export class EntryRevision extends EntryRevisionSchema.class {}
EntryRevisionSchema.setClass(EntryRevision);

export const ProjectBillingSchema = defineEntity({
  name: 'ProjectBilling',
  tableName: 'project_billing',
  properties: {
    projectId: p.string().primary().columnType('text'),
    chargedMinor: p.bigint('bigint'),
    reversedMinor: p.bigint('bigint'),
    heldMinor: p.bigint('bigint'),
    turns: p.bigint('bigint'),
    ...timestamps,
  },
});
export class ProjectBilling extends ProjectBillingSchema.class {}
ProjectBillingSchema.setClass(ProjectBilling);

export const MilestoneSchema = defineEntity({
  name: 'Milestone',
  tableName: 'milestone',
  properties: {
    milestoneId: p.string().primary().columnType('text'),
    projectId: p.string().columnType('text'),
    amountMinor: p.bigint('bigint'),
    currency: p.string().columnType('char(3)'),
    status: p.string().columnType('text'),
    stage: p.string().columnType('text'),
    record: p.json<Record<string, unknown>>(),
    ...timestamps,
  },
});
export class Milestone extends MilestoneSchema.class {}
MilestoneSchema.setClass(Milestone);

export const ErpOutboxSchema = defineEntity({
  name: 'ErpOutbox',
  tableName: 'erp_outbox',
  properties: {
    id: p.bigint('string').primary(),
    externalId: p.string().columnType('text').unique(),
    kind: p.string().columnType('text'),
    projectId: p.string().columnType('text'),
    region: p.string().columnType('text'),
    entryId: p.string().columnType('text').nullable(),
    milestoneId: p.string().columnType('text').nullable(),
    revision: p.integer().nullable(),
    workDate: p.string().columnType('date').nullable(),
    hoursHundredths: p.bigint('bigint'),
    amountMinor: p.bigint('bigint'),
    currency: p.string().columnType('char(3)'),
    transaction: p.json<Record<string, unknown>>(),
    /** pending | posted | rejected; a pending line also has its row in erp_pending. */
    status: p.string().columnType('text'),
    attempts: p.integer(),
    lastError: p.string().columnType('text').nullable(),
    documentId: p.string().columnType('text').nullable(),
    invoiceId: p.string().columnType('text').nullable(),
    traceParent: p.string().columnType('text').nullable(),
    createdAt: p.datetime().columnType('timestamptz'),
    postedAt: p.datetime().columnType('timestamptz').nullable(),
  },
});
export class ErpOutbox extends ErpOutboxSchema.class {}
ErpOutboxSchema.setClass(ErpOutbox);

/**
 * The ERP lines still to post, one row per line while its erp_outbox status is
 * pending: the poster's queue, apart from the outbox so that marking a line
 * posted updates the outbox row in place (see the erp_pending_queue migration).
 */
export const ErpPendingSchema = defineEntity({
  name: 'ErpPending',
  tableName: 'erp_pending',
  properties: {
    /** The erp_outbox row's id. */
    id: p.bigint('string').primary(),
    /** When a poster may claim the line: its lease or its backoff runs out. */
    nextAttemptAt: p.datetime().columnType('timestamptz'),
  },
});
export class ErpPending extends ErpPendingSchema.class {}
ErpPendingSchema.setClass(ErpPending);

/** The NATS outbox: one row per transaction, its messages in order (see nats-relay.ts). */
export const NatsOutboxBatchSchema = defineEntity({
  name: 'NatsOutboxBatch',
  tableName: 'nats_outbox_batch',
  properties: {
    id: p.bigint('string').primary(),
    /** JSON text of `{ subject, msg_id, payload, headers }[]`. */
    messages: p.text(),
    messageCount: p.integer(),
    createdAt: p.datetime().columnType('timestamptz'),
  },
});
export class NatsOutboxBatch extends NatsOutboxBatchSchema.class {}
NatsOutboxBatchSchema.setClass(NatsOutboxBatch);

export const BillingExceptionSchema = defineEntity({
  name: 'BillingException',
  tableName: 'billing_exception',
  properties: {
    id: p.string().primary().columnType('text'),
    code: p.string().columnType('text'),
    /** open | replayed | dismissed | resolved */
    status: p.string().columnType('text'),
    recordKind: p.string().columnType('text'),
    entryId: p.string().columnType('text').nullable(),
    revision: p.integer().nullable(),
    projectId: p.string().columnType('text').nullable(),
    region: p.string().columnType('text'),
    message: p.string().columnType('text'),
    errors: p.json<{ field: string; reason: string }[]>().nullable(),
    record: p.json<Record<string, unknown>>().nullable(),
    raw: p.string().columnType('text').nullable(),
    attempts: p.integer(),
    firstSeenAt: p.datetime().columnType('timestamptz'),
    lastSeenAt: p.datetime().columnType('timestamptz'),
    resolvedAt: p.datetime().columnType('timestamptz').nullable(),
    resolvedBy: p.string().columnType('text').nullable(),
    resolutionNote: p.string().columnType('text').nullable(),
  },
});
export class BillingException extends BillingExceptionSchema.class {}
BillingExceptionSchema.setClass(BillingException);

/** A counter's shard per connection; the `pipeline_counter` view sums the shards by name. */
export const PipelineCounterShardSchema = defineEntity({
  name: 'PipelineCounterShard',
  tableName: 'pipeline_counter_shard',
  properties: {
    name: p.string().primary().columnType('text'),
    shard: p.integer().primary(),
    value: p.bigint('bigint'),
  },
});
export class PipelineCounterShard extends PipelineCounterShardSchema.class {}
PipelineCounterShardSchema.setClass(PipelineCounterShard);

/** Every entity, listed explicitly: the ORM config names them, nothing is discovered. */
export const ENTITIES = [
  ConsultantSchema, ProjectSchema, AssignmentSchema, RatecardSchema, EntryRevisionSchema,
  ProjectBillingSchema, MilestoneSchema, ErpOutboxSchema, ErpPendingSchema, NatsOutboxBatchSchema, BillingExceptionSchema, PipelineCounterShardSchema,
];
