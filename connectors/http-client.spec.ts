import { describe, expect, it } from 'vitest';
import { isConnectorAuthFailed, isConnectorBadRequest, isConnectorProtocol, isConnectorUnavailable } from './connector-errors.ts';
import { ConnectorHttpClient } from './http-client.ts';
import type { AuthConfig, HttpConnectorConfig } from './shared-fields.ts';
import { startFixtureServer } from './sources/fixtures/fixture-server.ts';

function config(origin: string, auth: AuthConfig, overrides: Partial<HttpConnectorConfig> = {}): HttpConnectorConfig {
  return {
    connection: { baseUrl: `${origin}/api/v1`, timeoutMs: 2000 },
    auth,
    retry: { attempts: 3, initialBackoffMs: 5, maxBackoffMs: 20, maxRetryAfterMs: 5000 },
    rateLimit: { ratePerSecond: 500, burst: 10 },
    ...overrides,
  };
}

describe('ConnectorHttpClient', () => {
  it('sends each kind of credentials the way the systems expect them', async () => {
    await using server = await startFixtureServer((url) => {
      if (url.pathname === '/oauth/token') return { body: { access_token: 'oauth-token', token_type: 'Bearer', expires_in: 3600 } };
      return { body: { ok: true } };
    });
    const headerOf = async (auth: AuthConfig) => {
      await new ConnectorHttpClient('test', config(server.origin, auth)).getJson('ping');
      return server.requests.at(-1)?.headers;
    };
    expect((await headerOf({ type: 'token', token: 't0k', header: 'Authorization', scheme: 'Bearer' }))?.authorization).toBe('Bearer t0k');
    expect((await headerOf({ type: 'token', token: 'k3y', header: 'X-Api-Key', scheme: '' }))?.['x-api-key']).toBe('k3y');
    expect((await headerOf({ type: 'basic', username: 'tok', password: 'api_token' }))?.authorization).toBe(`Basic ${Buffer.from('tok:api_token').toString('base64')}`);
    expect((await headerOf({ type: 'oauth', tokenUrl: `${server.origin}/oauth/token`, clientId: 'c', clientSecret: 's' }))?.authorization).toBe('Bearer oauth-token');
    expect(server.requests.find((r) => r.url === '/api/v1/ping')?.headers.accept).toBe('application/json');
  });

  it('retries 5xx and network trouble, then gives up as unavailable', async () => {
    let calls = 0;
    await using server = await startFixtureServer(() => (++calls < 3 ? { status: 503 } : { body: [1, 2] }));
    const client = new ConnectorHttpClient('test', config(server.origin, { type: 'none' }));
    expect((await client.getJson('items')).body).toEqual([1, 2]);
    await using failing = await startFixtureServer(() => ({ status: 502 }));
    const err = await new ConnectorHttpClient('test', config(failing.origin, { type: 'none' })).getJson('items').catch((e: unknown) => e);
    expect(isConnectorUnavailable(err)).toBe(true);
    expect(failing.requests).toHaveLength(3);
  });

  it('does not retry refused credentials or requests', async () => {
    await using server = await startFixtureServer((url) => (url.pathname.endsWith('secret') ? { status: 401 } : { status: 422, body: { message: 'bad filter' } }));
    const client = new ConnectorHttpClient('test', config(server.origin, { type: 'none' }));
    expect(isConnectorAuthFailed(await client.getJson('secret').catch((e: unknown) => e))).toBe(true);
    const bad = await client.getJson('filter').catch((e: unknown) => e);
    expect(isConnectorBadRequest(bad)).toBe(true);
    expect((bad as Error).message).toBe('test: GET /api/v1/filter answered 422: {"message":"bad filter"}');
    expect(server.requests).toHaveLength(2);
  });

  it('follows links on its own origin only, so credentials never leave it', async () => {
    await using server = await startFixtureServer(() => ({ body: {} }));
    const client = new ConnectorHttpClient('test', config(server.origin, { type: 'token', token: 't', header: 'Authorization', scheme: 'Bearer' }));
    await client.getJson(`${server.origin}/api/v1/items?cursor=abc`);
    expect(server.requests[0]?.url).toBe('/api/v1/items?cursor=abc');
    const refused = await client.getJson('https://elsewhere.example.com/api/v1/items').catch((e: unknown) => e);
    expect(isConnectorProtocol(refused)).toBe(true);
  });
});
