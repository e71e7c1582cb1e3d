// Which ERP books a charge: routing rules by legal entity, region and a
// cutover date. A charge whose rule matches and whose work date is before the
// rule's cutover goes to the legacy ERP; everything else to the cloud ERP.
// The rules live in KV (`routing.erp` in billstream_templates) and are
// watched, so a cutover can be moved while billstream runs.
import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import { isCalendarDate } from '../../pipeline/model/records.ts';
import { getJson, KvMirror, putJson } from '../kv-store.ts';

export const ROUTING_KEY = 'routing.erp';

export const routingRuleSchema = z.strictObject({
  legalEntity: z.string().min(1).optional().describe('Legal entity the rule is for; any when absent.'),
  region: z.string().regex(/^[a-z0-9]{2,16}$/).optional().describe('Region the rule is for; any when absent.'),
  cutover: z.string().refine(isCalendarDate, 'must be a date YYYY-MM-DD').describe('Charges with a workDate before this day go to the legacy ERP, later ones to the cloud ERP.'),
});

export const routingRulesSchema = z.strictObject({
  version: z.int().min(1).describe('Raised with every change.'),
  rules: z.array(routingRuleSchema).describe('The first rule that matches a charge decides; no match → cloud ERP.'),
});

export type RoutingRule = z.output<typeof routingRuleSchema>;
export type RoutingRules = z.output<typeof routingRulesSchema>;
export type Destination = 'legacy' | 'cloud';

export interface RoutedLine {
  legalEntity?: unknown;
  workDate?: unknown;
}

/**
 * Where a line goes under the rules.
 *
 * @param region the project's region (transactions do not carry one); undefined matches only rules without a region.
 */
export function routeLine(rules: RoutingRules | null, line: RoutedLine, region: string | undefined): { destination: Destination; rule: number | null } {
  if (!rules || typeof line.workDate !== 'string') return { destination: 'cloud', rule: null };
  const index = rules.rules.findIndex((r) => (r.legalEntity === undefined || r.legalEntity === line.legalEntity) && (r.region === undefined || r.region === region));
  const rule = rules.rules[index];
  if (!rule) return { destination: 'cloud', rule: null };
  return { destination: line.workDate < rule.cutover ? 'legacy' : 'cloud', rule: index };
}

export class RoutingRulesInvalidError extends Error {
  readonly fields: Array<{ field: string; reason: string }>;

  constructor(fields: Array<{ field: string; reason: string }>, options: { cause?: unknown } = {}) {
    super(`invalid ERP routing rules: ${fields.map((f) => `${f.field}: ${f.reason}`).join('; ')}`, options);
    this.name = 'RoutingRulesInvalidError';
    this.fields = fields;
  }
}

export function parseRoutingRules(input: unknown): RoutingRules {
  const parsed = routingRulesSchema.safeParse(input);
  if (!parsed.success) {
    throw new RoutingRulesInvalidError(parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(rules)', reason: i.message })), { cause: parsed.error });
  }
  return parsed.data;
}

/** Stores the rules (validated) under `routing.erp`. */
export async function putRoutingRules(kv: KV, input: unknown, key = ROUTING_KEY): Promise<number> {
  return putJson(kv, key, parseRoutingRules(input));
}

export async function getRoutingRules(kv: KV, key = ROUTING_KEY): Promise<RoutingRules | null> {
  const stored = await getJson<unknown>(kv, key);
  return stored ? parseRoutingRules(stored.value) : null;
}

/** The rules in force, kept current by watching KV; an invalid change is reported and the previous rules stay. */
export class RoutingRulesWatcher {
  readonly #mirror: KvMirror;
  #rules: RoutingRules | null = null;
  #error: string | null = null;
  readonly #listeners = new Set<(rules: RoutingRules | null) => void>();

  constructor(kv: KV, options: { key?: string; onError?: (err: unknown) => void } = {}) {
    this.#mirror = new KvMirror(kv, {
      filter: options.key ?? ROUTING_KEY,
      onChange: ({ text }) => {
        if (text === null) {
          this.#rules = null;
          this.#error = null;
        } else {
          try {
            this.#rules = parseRoutingRules(JSON.parse(text));
            this.#error = null;
          } catch (err) {
            this.#error = err instanceof Error ? err.message : String(err);
            options.onError?.(err);
            return;
          }
        }
        for (const listener of this.#listeners) listener(this.#rules);
      },
      ...(options.onError ? { onError: options.onError } : {}),
    });
  }

  async start(): Promise<void> {
    await this.#mirror.start();
  }

  async stop(): Promise<void> {
    await this.#mirror.stop();
  }

  current(): RoutingRules | null {
    return this.#rules;
  }

  /** Why the latest value in KV was refused, if it was. */
  error(): string | null {
    return this.#error;
  }

  onChange(listener: (rules: RoutingRules | null) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves once rules of at least this version are in force. */
  async waitForVersion(version: number, timeoutMs = 10_000): Promise<RoutingRules> {
    if (this.#rules && this.#rules.version >= version) return this.#rules;
    return new Promise<RoutingRules>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`ERP routing rules did not reach version ${version} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onChange((rules) => {
        if (rules && rules.version >= version) {
          clearTimeout(timer);
          off();
          resolve(rules);
        }
      });
    });
  }
}
