// Templates live in the NATS KV bucket `billstream_templates` under
// `template.<name>`, with their history kept (they are versioned). The store
// writes them (refusing a change that does not raise the version); the registry
// watches the bucket and always holds each template's newest valid version, so
// an edit applies to the next file or page without a restart. A value in KV
// that is no valid template is reported and the previous version stays in force.
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { FieldResolver } from '../connector-spec.ts';
import { getJson, KV_BUCKETS, KvMirror, openBucket, putJson } from '../kv-store.ts';
import { missingTemplateResolver, parseTemplate, templateResolver, TEMPLATE_NAME_PATTERN, type Template } from './template.ts';

export const TEMPLATE_KEY_PREFIX = 'template.';
/** Versions of a template the bucket keeps. */
export const TEMPLATE_HISTORY = 16;

export function templateKey(name: string): string {
  return `${TEMPLATE_KEY_PREFIX}${name}`;
}

/** `harvest` and `template.harvest` both name the template harvest. */
export function templateNameOf(keyOrName: string): string | null {
  const name = keyOrName.startsWith(TEMPLATE_KEY_PREFIX) ? keyOrName.slice(TEMPLATE_KEY_PREFIX.length) : keyOrName;
  return TEMPLATE_NAME_PATTERN.test(name) ? name : null;
}

export class TemplateVersionError extends Error {
  readonly template: string;
  readonly stored: number;
  readonly given: number;

  constructor(template: string, stored: number, given: number) {
    super(`template ${template} is at version ${stored} in ${KV_BUCKETS.templates}; a change must raise the version (given ${given})`);
    this.name = 'TemplateVersionError';
    this.template = template;
    this.stored = stored;
    this.given = given;
  }
}

export class TemplateNotFoundError extends Error {
  readonly template: string;

  constructor(template: string) {
    super(`template ${template} is not in ${KV_BUCKETS.templates} (key ${templateKey(template)})`);
    this.name = 'TemplateNotFoundError';
    this.template = template;
  }
}

export const isTemplateVersionError = (err: unknown): err is TemplateVersionError => err instanceof TemplateVersionError;
export const isTemplateNotFound = (err: unknown): err is TemplateNotFoundError => err instanceof TemplateNotFoundError;

export async function openTemplateBucket(nc: NatsConnection): Promise<KV> {
  return openBucket(nc, KV_BUCKETS.templates, { history: TEMPLATE_HISTORY });
}

export class TemplateStore {
  readonly #kv: KV;

  constructor(kv: KV) {
    this.#kv = kv;
  }

  /**
   * Stores a template. Storing the very same template again is a no-op.
   *
   * @throws TemplateInvalidError when it does not validate.
   * @throws TemplateVersionError when it changes the stored template without raising its version.
   * @returns the bucket revision of the stored value.
   */
  async put(input: unknown): Promise<{ template: Template; revision: number; changed: boolean }> {
    const template = parseTemplate(input);
    const key = templateKey(template.name);
    const stored = await getJson<unknown>(this.#kv, key);
    if (stored) {
      let current: Template | null = null;
      try {
        current = parseTemplate(stored.value);
      } catch {
        // An invalid value in the bucket may be replaced by any valid version.
      }
      if (current && JSON.stringify(current) === JSON.stringify(template)) return { template, revision: stored.revision, changed: false };
      if (current && template.version <= current.version) throw new TemplateVersionError(template.name, current.version, template.version);
    }
    const revision = await putJson(this.#kv, key, template, { previousRevision: stored?.revision ?? 0 });
    return { template, revision, changed: true };
  }

  /** @throws TemplateNotFoundError. @throws TemplateInvalidError when the stored value is no template. */
  async get(name: string): Promise<Template> {
    const stored = await getJson<unknown>(this.#kv, templateKey(name));
    if (!stored) throw new TemplateNotFoundError(name);
    return parseTemplate(stored.value);
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    for await (const key of await this.#kv.keys(`${TEMPLATE_KEY_PREFIX}>`)) {
      const name = templateNameOf(key);
      if (name) names.push(name);
    }
    return names.sort();
  }
}

export interface TemplateChange {
  name: string;
  /** The template now in force; null when it was deleted. */
  template: Template | null;
  /** Set when the new value was refused (the previous version stays in force). */
  error?: string;
}

/** The templates as they stand now, kept current by watching the bucket. */
export class TemplateRegistry {
  readonly #mirror: KvMirror;
  readonly #templates = new Map<string, Template>();
  readonly #errors = new Map<string, string>();
  readonly #listeners = new Set<(change: TemplateChange) => void>();

  constructor(kv: KV, options: { onError?: (err: unknown) => void } = {}) {
    this.#mirror = new KvMirror(kv, {
      filter: `${TEMPLATE_KEY_PREFIX}>`,
      onChange: ({ key, text }) => this.#apply(key, text),
      ...(options.onError ? { onError: options.onError } : {}),
    });
  }

  /** Reads every template, then follows changes. */
  async start(): Promise<void> {
    await this.#mirror.start();
  }

  async stop(): Promise<void> {
    await this.#mirror.stop();
  }

  /** The template in force, or undefined. */
  get(name: string): Template | undefined {
    return this.#templates.get(name);
  }

  /** Why the latest value of a template was refused, if it was. */
  errorOf(name: string): string | undefined {
    return this.#errors.get(name);
  }

  names(): string[] {
    return [...this.#templates.keys()].sort();
  }

  /** A resolver that reads the template in force at each call, so an edit applies at once. */
  resolver(name: string): FieldResolver {
    const template = this.#templates.get(name);
    if (!template) return missingTemplateResolver(name, new TemplateNotFoundError(name).message);
    return templateResolver(template);
  }

  onChange(listener: (change: TemplateChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves once the template is in force at `version` or later (for tests and `template put`). */
  async waitForVersion(name: string, version: number, timeoutMs = 10_000): Promise<Template> {
    const now = this.#templates.get(name);
    if (now && now.version >= version) return now;
    return new Promise<Template>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`template ${name} did not reach version ${version} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onChange((change) => {
        if (change.name === name && change.template && change.template.version >= version) {
          clearTimeout(timer);
          off();
          resolve(change.template);
        }
      });
    });
  }

  #apply(key: string, text: string | null): void {
    const name = templateNameOf(key);
    if (!name) return;
    let change: TemplateChange;
    if (text === null) {
      this.#templates.delete(name);
      this.#errors.delete(name);
      change = { name, template: null };
    } else {
      try {
        const template = parseTemplate(JSON.parse(text));
        if (template.name !== name) throw new Error(`the value under ${key} names template ${template.name}`);
        this.#templates.set(name, template);
        this.#errors.delete(name);
        change = { name, template };
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        this.#errors.set(name, error);
        change = { name, template: this.#templates.get(name) ?? null, error };
      }
    }
    for (const listener of this.#listeners) listener(change);
  }
}
