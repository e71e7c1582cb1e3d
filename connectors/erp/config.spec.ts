import { describe, expect, it } from 'vitest';
import { erpClientConfigDocs, erpClientConfigFromEnv, erpSandboxConfigFromEnv, parseErpClientConfig } from './config.ts';
import { ErpConfigError } from './errors.ts';

describe('ERP client config', () => {
  it('fills every default', () => {
    expect(parseErpClientConfig()).toEqual({
      baseUrl: 'http://127.0.0.1:8090',
      clientId: 'billstream',
      clientSecret: '',
      batchSize: 200,
      maxAttempts: 8,
      initialBackoffMs: 200,
      maxBackoffMs: 10_000,
      maxRetryAfterMs: 60_000,
      requestTimeoutMs: 15_000,
    });
  });

  it.each([
    [{ baseUrl: 'ftp://erp' }, 'baseUrl'],
    [{ batchSize: 0 }, 'batchSize'],
    [{ batchSize: 1001 }, 'batchSize'],
    [{ maxAttempts: 1.5 }, 'maxAttempts'],
    [{ initialBackoffMs: 500, maxBackoffMs: 100 }, 'initialBackoffMs'],
  ])('refuses %j naming %s', (input, field) => {
    let failure: unknown;
    try {
      parseErpClientConfig(input);
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(ErpConfigError);
    expect((failure as ErpConfigError).fields.map((f) => f.field)).toContain(field);
  });

  it('reads the contract environment variables', () => {
    expect(erpClientConfigFromEnv({ ERP_BASE_URL: 'https://erp.example.com', ERP_CLIENT_ID: 'bs', ERP_CLIENT_SECRET: 'x' })).toEqual({
      baseUrl: 'https://erp.example.com',
      clientId: 'bs',
      clientSecret: 'x',
    });
    expect(erpClientConfigFromEnv({})).toEqual({});
    expect(erpSandboxConfigFromEnv({ DATABASE_URL: 'postgres://db', ERP_SANDBOX_PORT: '9000' })).toMatchObject({
      databaseUrl: 'postgres://db',
      port: 9000,
      host: '127.0.0.1',
      tokenTtlSeconds: 3600,
    });
    expect(() => erpSandboxConfigFromEnv({})).toThrow(/databaseUrl/);
  });

  it('documents every field with its description and default', () => {
    const docs = erpClientConfigDocs() as { properties: Record<string, { description?: string; default?: unknown }> };
    for (const [field, spec] of Object.entries(docs.properties)) {
      expect(spec.description, field).toBeTruthy();
      expect(spec.default, field).toBeDefined();
    }
    expect(docs.properties.batchSize?.default).toBe(200);
  });
});
