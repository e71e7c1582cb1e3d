// The one shape every connector has (after Benthos' components): a spec that
// names and describes it and holds its config schema, from which both the
// validation at start-up and its documentation are generated; and an instance
// with start / stop / health. `npx billstream connectors` lists the registry's
// specs and writes docs/connectors/<name>.md from them.
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import type { RecordKind } from '../pipeline/model/types.ts';

/** What a connector does for billstream, for the listing and the docs. */
export const CONNECTOR_KINDS = ['source', 'sink', 'master-data'] as const;
export type ConnectorKind = (typeof CONNECTOR_KINDS)[number];

export interface ConnectorHealth {
  ok: boolean;
  detail: string;
}

/** A running connector: started once, stopped once (stop drains what is in flight). */
export interface ConnectorInstance {
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): ConnectorHealth;
}

/**
 * Publishes one canonical record to `ingest.<kind>.<region>.<key>` with the
 * given Nats-Msg-Id; resolves once JetStream acked it.
 */
export type PublishRecord = (kind: RecordKind, record: Record<string, unknown>, msgId: string) => Promise<void>;

/** One canonical field resolved from a native record: a value, nothing (not mapped), or why it failed. */
export interface Resolution {
  value?: unknown;
  /** Set when the template has the field but could not produce it; `value` is then absent. */
  error?: string;
}

/** A mapping template applied field by field to native records (connectors/templates implements it). */
export interface FieldResolver {
  /** Names the template in errors, e.g. `template harvest v3`. */
  readonly label: string;
  resolve(field: string, native: unknown): Resolution;
}

/** What the host (ops) hands a connector when it creates one. */
export interface ConnectorContext {
  log(line: string): void;
  /** For connectors that produce records (sources, master-data importers). */
  publish?: PublishRecord;
  /** For connectors that keep state in NATS KV (cursors, templates, routing rules). */
  nats?: NatsConnection;
  /** The mapping template of that name as it stands now (hot-reloaded), for sources that map ids through one. */
  template?: (name: string) => FieldResolver;
}

export interface ConnectorSpec<Schema extends z.ZodType = z.ZodType, Instance extends ConnectorInstance = ConnectorInstance> {
  /** kebab-case; the docs page is docs/connectors/<name>.md. */
  name: string;
  kind: ConnectorKind;
  /** One line. */
  summary: string;
  /** Markdown: how it behaves, what it expects of the other side. */
  description: string;
  config: Schema;
  /** Complete example configurations; each must validate (the registry's spec proves it). */
  examples: Array<z.input<Schema>>;
  /** Environment variables the host reads into this config, with what each sets. */
  env?: Record<string, string>;
  create(config: z.output<Schema>, ctx: ConnectorContext): Instance;
}

/** Identity function that keeps the schema's types: `defineConnector({...})`. */
export function defineConnector<Schema extends z.ZodType, Instance extends ConnectorInstance>(
  spec: ConnectorSpec<Schema, Instance>,
): ConnectorSpec<Schema, Instance> {
  return spec;
}

export class ConnectorConfigError extends Error {
  readonly connector: string;
  /** Each invalid field (dotted path) with its reason. */
  readonly fields: Array<{ field: string; reason: string }>;

  constructor(connector: string, fields: Array<{ field: string; reason: string }>, options: { cause?: unknown } = {}) {
    super(`invalid ${connector} connector config: ${fields.map((f) => `${f.field}: ${f.reason}`).join('; ')}`, { cause: options.cause });
    this.name = 'ConnectorConfigError';
    this.connector = connector;
    this.fields = fields;
  }
}

export const isConnectorConfigError = (err: unknown): err is ConnectorConfigError => err instanceof ConnectorConfigError;

/**
 * Validates a connector's configuration once, filling the defaults.
 *
 * @throws ConnectorConfigError naming every invalid field and why.
 */
export function parseConnectorConfig<Schema extends z.ZodType>(spec: Pick<ConnectorSpec<Schema>, 'name' | 'config'>, input: unknown): z.output<Schema> {
  const parsed = spec.config.safeParse(input ?? {});
  if (!parsed.success) {
    throw new ConnectorConfigError(
      spec.name,
      parsed.error.issues.map((issue) => ({ field: issue.path.join('.') || '(config)', reason: issue.message })),
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/** Parses the config, creates the instance and starts it. */
export async function startConnector<Schema extends z.ZodType, Instance extends ConnectorInstance>(
  spec: ConnectorSpec<Schema, Instance>,
  input: unknown,
  ctx: ConnectorContext,
): Promise<Instance> {
  const instance = spec.create(parseConnectorConfig(spec, input), ctx);
  await instance.start();
  return instance;
}

// ---- documentation, generated from the schema -------------------------------------------

interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  examples?: unknown[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
}

/** JSON Schema of a connector's config (input side: what a user writes). */
export function connectorConfigJsonSchema(spec: Pick<ConnectorSpec, 'config'>): unknown {
  return z.toJSONSchema(spec.config, { io: 'input', unrepresentable: 'any' });
}

function typeOf(schema: JsonSchema): string {
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  if (schema.enum) return schema.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' | ');
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants) return variants.map(typeOf).join(' | ');
  const type = Array.isArray(schema.type) ? schema.type.join(' | ') : (schema.type ?? 'any');
  if (type === 'array' && schema.items) return `${typeOf(schema.items)}[]`;
  if (type === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object') {
    return `map of ${typeOf(schema.additionalProperties)}`;
  }
  return schema.format ? `${type} (${schema.format})` : type;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function fieldRows(properties: Record<string, JsonSchema>, required: readonly string[], prefix: string): string[] {
  const rows: string[] = [];
  for (const [name, schema] of Object.entries(properties)) {
    const path = `${prefix}${name}`;
    // Groups and variant groups (auth) get sections of their own.
    const isGroup = (schema.type === 'object' && schema.properties !== undefined) || (schema.oneOf ?? schema.anyOf ?? []).some((v) => v.properties);
    if (isGroup) continue;
    const def = schema.default === undefined ? (required.includes(name) ? '*required*' : '') : `\`${JSON.stringify(schema.default)}\``;
    const examples = schema.examples?.length ? ` Examples: ${schema.examples.map((e) => `\`${JSON.stringify(e)}\``).join(', ')}.` : '';
    rows.push(`| \`${path}\` | ${cell(typeOf(schema))} | ${cell(def)} | ${cell(`${schema.description ?? ''}${examples}`)} |`);
  }
  return rows;
}

function table(rows: string[]): string[] {
  if (rows.length === 0) return [];
  return ['| field | type | default | description |', '|---|---|---|---|', ...rows, ''];
}

/** The fields of a group as a table, then a section per nested group (and per auth variant), depth first. */
function groupSections(group: JsonSchema, prefix: string, depth: number): string[] {
  const lines = table(fieldRows(group.properties ?? {}, group.required ?? [], prefix));
  const heading = '#'.repeat(Math.min(depth, 6));
  for (const [name, schema] of Object.entries(group.properties ?? {})) {
    const path = `${prefix}${name}`;
    if (schema.type === 'object' && schema.properties) {
      lines.push(`${heading} \`${path}\``, '');
      if (schema.description) lines.push(schema.description, '');
      lines.push(...groupSections(schema, `${path}.`, depth + 1));
    }
    const variants = schema.oneOf ?? schema.anyOf;
    if (variants && variants.some((v) => v.properties)) {
      lines.push(`${heading} \`${path}\``, '');
      if (schema.description) lines.push(schema.description, '');
      if (schema.default !== undefined) lines.push(`Default: \`${JSON.stringify(schema.default)}\``, '');
      for (const variant of variants) {
        const discriminator = Object.values(variant.properties ?? {}).find((p) => p.const !== undefined)?.const;
        lines.push(`${heading}# ${discriminator === undefined ? 'variant' : `\`${String(discriminator)}\``}${variant.description ? ` — ${variant.description}` : ''}`, '');
        lines.push(...table(fieldRows(variant.properties ?? {}, variant.required ?? [], `${path}.`)));
      }
    }
  }
  return lines;
}

/**
 * The connector's reference page in Markdown: summary, behaviour, every field
 * with its type, default and description (grouped as the config is), the
 * environment it reads, and the examples.
 */
export function renderConnectorDoc(spec: ConnectorSpec): string {
  const root = connectorConfigJsonSchema(spec) as JsonSchema;
  const lines: string[] = [
    `<!-- generated by \`npx billstream connectors --write-docs\` from connectors/; do not edit by hand -->`,
    `# ${spec.name}`,
    '',
    `*${spec.kind}* — ${spec.summary}`,
    '',
    spec.description.trim(),
    '',
    '## Configuration',
    '',
  ];
  if (root.description) lines.push(root.description, '');
  lines.push(...groupSections(root, '', 3));
  if (spec.env && Object.keys(spec.env).length > 0) {
    lines.push('## Environment', '', '| variable | sets |', '|---|---|');
    for (const [variable, what] of Object.entries(spec.env)) lines.push(`| \`${variable}\` | ${cell(what)} |`);
    lines.push('');
  }
  if (spec.examples.length > 0) {
    lines.push('## Examples', '');
    for (const example of spec.examples) lines.push('```json', JSON.stringify(example, null, 2), '```', '');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}
