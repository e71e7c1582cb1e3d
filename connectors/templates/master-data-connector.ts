// The master-data importer: maps files or HTTP answers of projects, tasks,
// assignments, consultants and rate cards through a template and publishes the
// records to ingest. As a connector it polls its file or URL and imports again
// whenever the content or the template changed (so a template edited in KV
// re-maps the next file without a restart).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { defineConnector, type ConnectorContext, type ConnectorHealth, type ConnectorInstance, type PublishRecord } from '../connector-spec.ts';
import { ConnectorHttpClient } from '../http-client.ts';
import { authGroup, connectionGroup, rateLimitGroup, retryGroup } from '../shared-fields.ts';
import { mapMasterData, type MasterDataResult } from './master-data.ts';
import type { Template } from './template.ts';
import { openTemplateBucket, TemplateNotFoundError, TemplateRegistry } from './template-store.ts';

export interface ImportResult extends MasterDataResult {
  published: number;
}

/** Maps content with a template and publishes every valid record (invalid ones are returned, not published). */
export async function importMasterData(template: Template, content: string | unknown, publish: PublishRecord): Promise<ImportResult> {
  const result = mapMasterData(template, content);
  let published = 0;
  for (const mapped of result.records) {
    await publish(mapped.kind, mapped.record, mapped.msgId);
    published++;
  }
  return { ...result, published };
}

export const masterDataConfigSchema = z
  .object({
    template: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).describe('Name of the template (KV key `template.<name>`) that maps the file.'),
    file: z.string().min(1).optional().describe('A CSV or JSON file read at every poll.').meta({ examples: ['/data/projects.csv'] }),
    http: z
      .object({
        connection: connectionGroup({ baseUrl: 'https://psa.example.com/api' }),
        auth: authGroup().prefault({ type: 'none' }),
        retry: retryGroup(),
        rateLimit: rateLimitGroup({ ratePerSecond: 1, burst: 1 }),
        path: z.string().min(1).describe('Path (under connection.baseUrl) answered with the CSV or JSON document.').meta({ examples: ['v1/projects?include=tasks'] }),
      })
      .optional()
      .describe('Pull the document over HTTP instead of reading a file.'),
    pollIntervalSeconds: z.number().positive().default(300).describe('Pause between two reads; unchanged content under an unchanged template is not published again.'),
  })
  .refine((c) => (c.file === undefined) !== (c.http === undefined), { message: 'give exactly one of file or http', path: ['file'] })
  .describe('Master-data importer.');

export type MasterDataConfig = z.output<typeof masterDataConfigSchema>;

class MasterDataImporter implements ConnectorInstance {
  readonly #config: MasterDataConfig;
  readonly #ctx: ConnectorContext;
  #registry: TemplateRegistry | null = null;
  #http: ConnectorHttpClient | null = null;
  #timer: NodeJS.Timeout | null = null;
  #importing: Promise<void> | null = null;
  #lastDigest: string | null = null;
  #last: { at: number; result?: ImportResult; error?: string } | null = null;

  constructor(config: MasterDataConfig, ctx: ConnectorContext) {
    this.#config = config;
    this.#ctx = ctx;
  }

  async start(): Promise<void> {
    if (!this.#ctx.nats || !this.#ctx.publish) throw new TypeError('the master-data importer needs nats and publish in its context');
    this.#registry = new TemplateRegistry(await openTemplateBucket(this.#ctx.nats), { onError: (err) => this.#ctx.log(`templates: ${String(err)}`) });
    await this.#registry.start();
    if (this.#config.http) this.#http = new ConnectorHttpClient('master-data', this.#config.http);
    // A new version of our template re-maps the content at once.
    this.#registry.onChange((change) => {
      if (change.name === this.#config.template && !change.error) this.#schedule(0);
    });
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#http?.stop();
    await this.#importing?.catch(() => undefined);
    await this.#registry?.stop();
  }

  health(): ConnectorHealth {
    if (!this.#registry) return { ok: false, detail: 'master-data importer not started' };
    if (this.#last?.error) return { ok: false, detail: `last import failed: ${this.#last.error}` };
    const r = this.#last?.result;
    if (!r) return { ok: true, detail: 'no import yet' };
    return { ok: r.errors.length === 0, detail: `template ${r.template.name} v${r.template.version}: ${r.published} records published, ${r.errors.length} errors` };
  }

  /** Reads and imports now (if content or template changed since the last import). */
  async importNow(): Promise<ImportResult | null> {
    const registry = this.#registry;
    const publish = this.#ctx.publish;
    if (!registry || !publish) throw new TypeError('the master-data importer is not started');
    const template = registry.get(this.#config.template);
    if (!template) throw new TemplateNotFoundError(this.#config.template);
    const content = this.#config.file !== undefined
      ? await readFile(this.#config.file, 'utf8')
      : ((await (this.#http as ConnectorHttpClient).getJson(this.#config.http?.path ?? '')).body);
    const digest = createHash('sha256').update(`${template.name}@${template.version}\n${typeof content === 'string' ? content : JSON.stringify(content)}`).digest('hex');
    if (digest === this.#lastDigest) return null;
    const result = await importMasterData(template, content, publish);
    this.#lastDigest = digest;
    this.#last = { at: Date.now(), result };
    for (const e of result.errors) this.#ctx.log(`master-data ${template.name} v${template.version} rows ${e.rows.join(', ') || '-'}: ${e.field}: ${e.reason}`);
    return result;
  }

  #schedule(delayMs: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#importing = (this.#importing ?? Promise.resolve())
        .then(() => this.importNow())
        .then(() => undefined, (err: unknown) => {
          this.#last = { at: Date.now(), error: err instanceof Error ? err.message : String(err) };
          this.#ctx.log(`master-data import failed: ${this.#last.error}`);
        })
        .finally(() => this.#schedule(this.#config.pollIntervalSeconds * 1000));
    }, delayMs);
  }
}

export const masterDataConnector = defineConnector({
  name: 'master-data',
  kind: 'master-data',
  summary: 'Projects with tasks, assignments, consultants and rate cards from CSV or JSON files or HTTP, mapped by templates.',
  description: `
Reads a CSV or JSON document (a file, or an HTTP pull with the shared connection, auth, retry and rate-limit
groups) and maps it with a mapping template from the \`billstream_templates\` KV bucket into canonical
\`project\`, \`assignment\`, \`consultant\` or \`ratecard\` records, published to \`ingest.<kind>.<region>.<key>\`.
The template is watched: a new version applies to the next read, and re-maps the current content at once.

Templates are JSON: \`{name, version, kind, input: {format, delimiter, recordsPath}, groupBy, fields}\`; each field is an
expression — \`path\`, \`const\`, \`join\` or \`collect\` — followed by optional \`trim\`, \`case\`, \`lookup\` (a table),
one of \`date\` (format such as \`DD.MM.YYYY\`), \`money\` (\`{decimal, group}\`), \`integer\`, \`number\`, \`boolean\`,
and \`default\`/\`optional\`. Rows sharing the \`groupBy\` value make one record (a project and its tasks via \`collect\`).
Every record is validated (CONTRACT §2); rate cards of one contract and role with overlapping effective ranges are
refused with an error naming both. Try a template with \`npx billstream template dry-run <template.json|name> <file>\`.

Message ids are \`tpl:<template>:<kind>:<key>:<id>:<revision>:<content hash>\`: re-importing unchanged content is
dropped by JetStream, a changed record is published again.`,
  config: masterDataConfigSchema,
  examples: [
    { template: 'acme-projects', file: '/data/projects.csv' },
    { template: 'psa-consultants', http: { connection: { baseUrl: 'https://psa.example.com/api' }, auth: { type: 'token', token: '<token>' }, path: 'v1/consultants' }, pollIntervalSeconds: 900 },
  ],
  create: (config, ctx) => new MasterDataImporter(config, ctx),
});
