import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConnectorConfigError, connectorConfigJsonSchema, parseConnectorConfig, renderConnectorDoc } from './connector-spec.ts';
import { CONNECTORS } from './registry.ts';

const docsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'connectors');

interface Schema {
  description?: string;
  properties?: Record<string, Schema>;
  oneOf?: Schema[];
  const?: unknown;
}

function undocumented(schema: Schema, path: string): string[] {
  const missing: string[] = [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const at = path ? `${path}.${name}` : name;
    // A variant's discriminator (`type`) is documented by the variant itself.
    if (!property.description && property.const === undefined) missing.push(at);
    missing.push(...undocumented(property, at));
    for (const variant of property.oneOf ?? []) missing.push(...undocumented(variant, at));
  }
  return missing;
}

describe('the connector registry', () => {
  it('has unique kebab-case names', () => {
    const names = CONNECTORS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[a-z][a-z0-9-]*$/);
  });

  it.each(CONNECTORS.map((c) => [c.name, c] as const))('%s: every example validates and every field is described', (_name, spec) => {
    expect(spec.examples.length).toBeGreaterThan(0);
    for (const example of spec.examples) expect(() => parseConnectorConfig(spec, example)).not.toThrow();
    expect(undocumented(connectorConfigJsonSchema(spec) as Schema, '')).toEqual([]);
  });

  it.each(CONNECTORS.map((c) => [c.name, c] as const))('%s: docs/connectors page is the one the spec generates (run `npx billstream connectors --write-docs`)', (name, spec) => {
    expect(readFileSync(join(docsDir, `${name}.md`), 'utf8')).toBe(renderConnectorDoc(spec));
  });

  it('names every invalid field of a config', () => {
    const harvest = CONNECTORS.find((c) => c.name === 'harvest');
    if (!harvest) throw new Error('harvest is registered');
    let failure: unknown;
    try {
      parseConnectorConfig(harvest, { auth: { type: 'token', token: '' }, rateLimit: { ratePerSecond: 0 } });
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(ConnectorConfigError);
    expect((failure as ConnectorConfigError).fields.map((f) => f.field).sort()).toEqual(['accountId', 'auth.token', 'rateLimit.ratePerSecond']);
    expect((failure as ConnectorConfigError).fields.find((f) => f.field === 'auth.token')?.reason).toBe('is required');
  });
});
