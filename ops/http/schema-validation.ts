// Route schemas are zod schemas: fastify hands each request part (params,
// querystring, body) to the route's schema through this compiler, the parsed
// value (with defaults and coercions) replaces the raw one, and a failure
// becomes an `invalid_request` naming every field and its reason.
import type { FastifySchemaCompiler } from 'fastify';
import type { z, ZodType } from 'zod';
import { HTTP_ERROR_CODES, HttpError, type FieldProblem } from './errors.ts';

const PART_NAMES: Record<string, string> = { params: 'path', querystring: 'query', body: 'body', headers: 'headers' };

function fieldProblems(issues: readonly z.core.$ZodIssue[]): FieldProblem[] {
  return issues.map((issue) => ({
    field: issue.path.length === 0 ? '(value)' : issue.path.map(String).join('.'),
    reason: issue.message,
  }));
}

export const zodValidatorCompiler: FastifySchemaCompiler<ZodType> = ({ schema, httpPart }) => {
  const part = PART_NAMES[httpPart ?? ''] ?? httpPart ?? 'request';
  return (data: unknown) => {
    const result = schema.safeParse(data);
    if (result.success) return { value: result.data };
    const problems = fieldProblems(result.error.issues);
    const summary = problems.map((p) => (p.field === '(value)' ? p.reason : `${p.field} ${p.reason}`)).join('; ');
    return { error: new HttpError(400, HTTP_ERROR_CODES.invalidRequest, `invalid ${part}: ${summary}`, { details: problems }) };
  };
};
