// The ops server documents itself: every route's zod schemas (params,
// querystring, body, and the responses it answers with) are what validates its
// requests and what `/openapi.json` is generated from, so the document cannot
// drift from the code. Routes add `summary`, `description`, `tags` and
// `security` to their fastify schema; responses are zod schemas (JSON) or a
// {@link ResponseDoc} for other media types.
import type { FastifyInstance, RouteOptions } from 'fastify';
import { z, type ZodType } from 'zod';

declare module 'fastify' {
  interface FastifySchema {
    summary?: string;
    description?: string;
    tags?: readonly string[];
    /** Security schemes (by name) of which a request must satisfy one. */
    security?: readonly string[];
  }
}

/** A documented response that is not JSON, or has no body. */
export interface ResponseDoc {
  description: string;
  mediaType?: string;
  schema?: ZodType;
}

export interface OpenApiInfo {
  title: string;
  version: string;
  description: string;
}

type JsonObject = Record<string, unknown>;

interface CollectedRoute {
  method: string;
  url: string;
  schema: NonNullable<RouteOptions['schema']>;
}

const STATUS_TEXT: Record<string, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 400: 'Invalid request', 401: 'Missing or wrong bearer token', 404: 'Not found',
  409: 'Conflict with the current state', 413: 'Payload too large', 415: 'Unsupported media type', 500: 'Internal error', 502: 'Upstream (ERP) failure', 503: 'Unavailable',
};

/** The bearer token schemes the routes name in `security`. */
export const SECURITY_SCHEMES = {
  ingestToken: { type: 'http', scheme: 'bearer', description: 'INGEST_TOKEN, required by POST /v1/ingest/{kind} when set' },
  opsToken: { type: 'http', scheme: 'bearer', description: 'OPS_TOKEN, required by the workbench and billing actions when set' },
} as const;

function isZod(value: unknown): value is ZodType {
  return value instanceof z.ZodType;
}

function jsonSchema(schema: ZodType, io: 'input' | 'output'): JsonObject {
  const generated = z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }) as JsonObject;
  delete generated.$schema;
  return generated;
}

/** `/v1/entries/:entryId` → `/v1/entries/{entryId}` */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function parametersOf(schema: unknown, location: 'path' | 'query'): JsonObject[] {
  if (!isZod(schema)) return [];
  const object = jsonSchema(schema, 'input');
  const properties = (object.properties ?? {}) as Record<string, JsonObject>;
  const required = new Set((object.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return { name, in: location, required: location === 'path' || required.has(name), ...(description === undefined ? {} : { description }), schema: rest };
  });
}

function responsesOf(responses: unknown): JsonObject {
  const out: JsonObject = {};
  for (const [status, value] of Object.entries((responses ?? {}) as Record<string, unknown>)) {
    if (isZod(value)) {
      // Success bodies say what they are; error bodies share one schema, so their status says why.
      const description = (status.startsWith('2') ? value.description : undefined) ?? STATUS_TEXT[status] ?? status;
      out[status] = { description, content: { 'application/json': { schema: jsonSchema(value, 'output') } } };
    } else if (value !== null && typeof value === 'object') {
      const doc = value as ResponseDoc;
      out[status] = {
        description: doc.description,
        ...(doc.mediaType === undefined ? {} : {
          content: { [doc.mediaType]: { schema: doc.schema ? jsonSchema(doc.schema, 'output') : { type: doc.mediaType.includes('json') ? 'object' : 'string' } } },
        }),
      };
    }
  }
  if (Object.keys(out).length === 0) out.default = { description: 'Response' };
  return out;
}

/** Builds the OpenAPI 3.0 document of the routes collected so far. */
export function openApiDocument(routes: readonly CollectedRoute[], info: OpenApiInfo, components: Record<string, ZodType> = {}): JsonObject {
  const paths: Record<string, JsonObject> = {};
  for (const route of routes) {
    const { schema } = route;
    const operation: JsonObject = {
      operationId: `${route.method.toLowerCase()}${openApiPath(route.url).replace(/[{}]/g, '').split(/[/_-]/).filter(Boolean).map((p) => p[0]?.toUpperCase() + p.slice(1)).join('')}`,
      ...(schema.summary ? { summary: schema.summary } : {}),
      ...(schema.description ? { description: schema.description } : {}),
      ...(schema.tags ? { tags: [...schema.tags] } : {}),
    };
    const parameters = [...parametersOf(schema.params, 'path'), ...parametersOf(schema.querystring, 'query')];
    if (parameters.length > 0) operation.parameters = parameters;
    if (isZod(schema.body)) {
      // fastify hands an absent body over as null: a schema that accepts null makes the body optional.
      const required = !schema.body.safeParse(null).success;
      operation.requestBody = { required, content: { 'application/json': { schema: jsonSchema(schema.body, 'input') } } };
    }
    if (schema.security && schema.security.length > 0) operation.security = schema.security.map((name) => ({ [name]: [] }));
    operation.responses = responsesOf(schema.response);
    const path = openApiPath(route.url);
    paths[path] = { ...(paths[path] ?? {}), [route.method.toLowerCase()]: operation };
  }
  const schemas = Object.fromEntries(Object.entries(components).map(([name, schema]) => [name, jsonSchema(schema, 'input')]));
  return {
    openapi: '3.0.3',
    info,
    paths,
    components: { securitySchemes: SECURITY_SCHEMES, schemas },
  };
}

/**
 * Collects every route registered after this call (HEAD twins excluded) and
 * serves their document at `GET /openapi.json`, built on first request.
 * Response schemas are documentation: the serializer below writes JSON as is,
 * so a zod schema is never handed to fastify's JSON-schema serializer.
 */
export function installOpenApi(app: FastifyInstance, info: OpenApiInfo, components: Record<string, ZodType> = {}): void {
  const routes: CollectedRoute[] = [];
  app.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data));
  app.addHook('onRoute', (options) => {
    const methods = Array.isArray(options.method) ? options.method : [options.method];
    for (const method of methods) {
      if (method === 'HEAD' || options.schema === undefined) continue;
      routes.push({ method, url: options.url, schema: options.schema });
    }
  });
  let document: JsonObject | null = null;
  app.get('/openapi.json', {
    schema: {
      summary: 'This API as an OpenAPI 3.0 document',
      tags: ['ops'],
      response: { 200: { description: 'The OpenAPI document', mediaType: 'application/json' } satisfies ResponseDoc },
    },
  }, async () => {
    document ??= openApiDocument(routes, info, components);
    return document;
  });
}
