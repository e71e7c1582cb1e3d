// One error class per way a call to the ERP can fail, so callers branch on the
// failure (retry later, quarantine the lines, fix the config) and not on text.
import type { ErpLineError } from './types.ts';

export const ErpErrorCode = {
  /** The ERP stayed unreachable, overloaded or failing for every attempt; try again later. */
  Unavailable: 'erp_unavailable',
  /** The ERP refused lines of a posting (422); retrying the same lines will not help. */
  Rejected: 'erp_rejected',
  /** The client credentials or the token were refused. */
  AuthFailed: 'erp_auth_failed',
  /** The request conflicts with the ERP's books (409), e.g. a document already invoiced. */
  Conflict: 'erp_conflict',
  /** The resource asked for does not exist (404). */
  NotFound: 'erp_not_found',
  /** The ERP refused the request itself (another 4xx), a bug on our side. */
  BadRequest: 'erp_bad_request',
  /** The ERP answered something that is not the contract's shape. */
  Protocol: 'erp_protocol',
  /** The connector's configuration is invalid. */
  ConfigInvalid: 'erp_config_invalid',
  /** More lines in one posting than `batchSize` allows. */
  BatchTooLarge: 'erp_batch_too_large',
  /** The client was used before `start()` or after `stop()`. */
  NotRunning: 'erp_client_not_running',
} as const;
export type ErpErrorCode = (typeof ErpErrorCode)[keyof typeof ErpErrorCode];

export interface ErpErrorOptions {
  cause?: unknown;
}

export abstract class ErpError extends Error {
  abstract readonly code: ErpErrorCode;
}

export class ErpUnavailableError extends ErpError {
  readonly code = ErpErrorCode.Unavailable;
  /** Requests made before giving up. */
  readonly attempts: number;
  /** HTTP status of the last answer; null when the last attempt got none (network error, timeout). */
  readonly lastStatus: number | null;
  /** Set when the ERP asked us to wait longer than we are willing to block. */
  readonly retryAfterMs: number | null;

  constructor(
    message: string,
    options: ErpErrorOptions & { attempts: number; lastStatus: number | null; retryAfterMs?: number | null },
  ) {
    super(message, { cause: options.cause });
    this.name = 'ErpUnavailableError';
    this.attempts = options.attempts;
    this.lastStatus = options.lastStatus;
    this.retryAfterMs = options.retryAfterMs ?? null;
  }
}

export class ErpRejectedError extends ErpError {
  readonly code = ErpErrorCode.Rejected;
  /** Every refused line with its reason; the ERP created none of the request's lines. */
  readonly errors: ErpLineError[];

  constructor(errors: ErpLineError[], options: ErpErrorOptions = {}) {
    const shown = errors
      .slice(0, 3)
      .map((e) => `${e.externalId ?? `line ${e.index ?? '?'}`}${e.field ? ` ${e.field}` : ''}: ${e.message}`)
      .join('; ');
    const more = errors.length > 3 ? ` (and ${errors.length - 3} more)` : '';
    super(`ERP rejected the posting: ${shown || 'no reason given'}${more}`, { cause: options.cause });
    this.name = 'ErpRejectedError';
    this.errors = errors;
  }

  /** The refusals grouped by externalId, for quarantining each line with its own reasons. */
  byExternalId(): Map<string | null, ErpLineError[]> {
    const grouped = new Map<string | null, ErpLineError[]>();
    for (const error of this.errors) {
      const list = grouped.get(error.externalId) ?? [];
      list.push(error);
      grouped.set(error.externalId, list);
    }
    return grouped;
  }
}

export class ErpAuthError extends ErpError {
  readonly code = ErpErrorCode.AuthFailed;
  readonly status: number;

  constructor(message: string, options: ErpErrorOptions & { status: number }) {
    super(message, { cause: options.cause });
    this.name = 'ErpAuthError';
    this.status = options.status;
  }
}

export class ErpConflictError extends ErpError {
  readonly code = ErpErrorCode.Conflict;
  /** The ERP's own code, e.g. `document_already_invoiced`. */
  readonly erpCode: string;
  readonly details: unknown;

  constructor(message: string, options: ErpErrorOptions & { erpCode: string; details?: unknown }) {
    super(message, { cause: options.cause });
    this.name = 'ErpConflictError';
    this.erpCode = options.erpCode;
    this.details = options.details ?? null;
  }
}

export class ErpNotFoundError extends ErpError {
  readonly code = ErpErrorCode.NotFound;
  readonly path: string;

  constructor(message: string, options: ErpErrorOptions & { path: string }) {
    super(message, { cause: options.cause });
    this.name = 'ErpNotFoundError';
    this.path = options.path;
  }
}

export class ErpBadRequestError extends ErpError {
  readonly code = ErpErrorCode.BadRequest;
  readonly status: number;
  readonly erpCode: string | null;
  readonly details: unknown;

  constructor(message: string, options: ErpErrorOptions & { status: number; erpCode?: string | null; details?: unknown }) {
    super(message, { cause: options.cause });
    this.name = 'ErpBadRequestError';
    this.status = options.status;
    this.erpCode = options.erpCode ?? null;
    this.details = options.details ?? null;
  }
}

export class ErpProtocolError extends ErpError {
  readonly code = ErpErrorCode.Protocol;

  constructor(message: string, options: ErpErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'ErpProtocolError';
  }
}

export class ErpConfigError extends ErpError {
  readonly code = ErpErrorCode.ConfigInvalid;
  /** Each invalid field with its reason. */
  readonly fields: Array<{ field: string; reason: string }>;

  constructor(fields: Array<{ field: string; reason: string }>, options: ErpErrorOptions = {}) {
    super(`invalid ERP connector config: ${fields.map((f) => `${f.field}: ${f.reason}`).join('; ')}`, {
      cause: options.cause,
    });
    this.name = 'ErpConfigError';
    this.fields = fields;
  }
}

export class ErpBatchTooLargeError extends ErpError {
  readonly code = ErpErrorCode.BatchTooLarge;
  readonly size: number;
  readonly batchSize: number;

  constructor(size: number, batchSize: number, options: ErpErrorOptions = {}) {
    super(`a posting holds ${size} transactions but batchSize allows at most ${batchSize}`, { cause: options.cause });
    this.name = 'ErpBatchTooLargeError';
    this.size = size;
    this.batchSize = batchSize;
  }
}

export class ErpClientNotRunningError extends ErpError {
  readonly code = ErpErrorCode.NotRunning;

  constructor(message: string, options: ErpErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'ErpClientNotRunningError';
  }
}

function hasCode(err: unknown, code: ErpErrorCode): boolean {
  return err instanceof ErpError && err.code === code;
}

export const isErpError = (err: unknown): err is ErpError => err instanceof ErpError;
export const isErpUnavailable = (err: unknown): err is ErpUnavailableError => hasCode(err, ErpErrorCode.Unavailable);
export const isErpRejected = (err: unknown): err is ErpRejectedError => hasCode(err, ErpErrorCode.Rejected);
export const isErpAuthFailed = (err: unknown): err is ErpAuthError => hasCode(err, ErpErrorCode.AuthFailed);
export const isErpConflict = (err: unknown): err is ErpConflictError => hasCode(err, ErpErrorCode.Conflict);
export const isErpNotFound = (err: unknown): err is ErpNotFoundError => hasCode(err, ErpErrorCode.NotFound);
export const isErpBadRequest = (err: unknown): err is ErpBadRequestError => hasCode(err, ErpErrorCode.BadRequest);
export const isErpProtocol = (err: unknown): err is ErpProtocolError => hasCode(err, ErpErrorCode.Protocol);
export const isErpConfigInvalid = (err: unknown): err is ErpConfigError => hasCode(err, ErpErrorCode.ConfigInvalid);
export const isErpBatchTooLarge = (err: unknown): err is ErpBatchTooLargeError =>
  hasCode(err, ErpErrorCode.BatchTooLarge);
export const isErpClientNotRunning = (err: unknown): err is ErpClientNotRunningError =>
  hasCode(err, ErpErrorCode.NotRunning);
