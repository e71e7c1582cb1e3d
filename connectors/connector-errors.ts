// One error class per way a connector's call to an outside system can fail, so
// a pull loop branches on the failure (wait and resume, fix the credentials,
// report a broken answer) and never on message text.

export const ConnectorErrorCode = {
  /** The system stayed unreachable, throttled or failing for every attempt; resume later from the cursor. */
  Unavailable: 'connector_unavailable',
  /** The credentials were refused (401, 403). */
  AuthFailed: 'connector_auth_failed',
  /** The system refused the request itself (another 4xx), a configuration or programming error. */
  BadRequest: 'connector_bad_request',
  /** The system answered something that is not its documented shape. */
  Protocol: 'connector_protocol',
  /** The connector was stopped while the call was in flight. */
  Stopped: 'connector_stopped',
} as const;
export type ConnectorErrorCode = (typeof ConnectorErrorCode)[keyof typeof ConnectorErrorCode];

export abstract class ConnectorError extends Error {
  abstract readonly code: ConnectorErrorCode;
  /** The connector (source) the call was made for. */
  readonly connector: string;

  constructor(connector: string, message: string, options: { cause?: unknown } = {}) {
    super(`${connector}: ${message}`, { cause: options.cause });
    this.connector = connector;
  }
}

export class ConnectorUnavailableError extends ConnectorError {
  readonly code = ConnectorErrorCode.Unavailable;
  readonly attempts: number;
  /** Status of the last answer; null when none came (network error, timeout). */
  readonly lastStatus: number | null;
  /** Set when the system asked to wait longer than we block for. */
  readonly retryAfterMs: number | null;

  constructor(connector: string, message: string, options: { attempts: number; lastStatus: number | null; retryAfterMs?: number | null; cause?: unknown }) {
    super(connector, message, options);
    this.name = 'ConnectorUnavailableError';
    this.attempts = options.attempts;
    this.lastStatus = options.lastStatus;
    this.retryAfterMs = options.retryAfterMs ?? null;
  }
}

export class ConnectorAuthError extends ConnectorError {
  readonly code = ConnectorErrorCode.AuthFailed;
  readonly status: number;

  constructor(connector: string, message: string, options: { status: number; cause?: unknown }) {
    super(connector, message, options);
    this.name = 'ConnectorAuthError';
    this.status = options.status;
  }
}

export class ConnectorBadRequestError extends ConnectorError {
  readonly code = ConnectorErrorCode.BadRequest;
  readonly status: number;
  readonly body: unknown;

  constructor(connector: string, message: string, options: { status: number; body?: unknown; cause?: unknown }) {
    super(connector, message, options);
    this.name = 'ConnectorBadRequestError';
    this.status = options.status;
    this.body = options.body ?? null;
  }
}

export class ConnectorProtocolError extends ConnectorError {
  readonly code = ConnectorErrorCode.Protocol;

  constructor(connector: string, message: string, options: { cause?: unknown } = {}) {
    super(connector, message, options);
    this.name = 'ConnectorProtocolError';
  }
}

export class ConnectorStoppedError extends ConnectorError {
  readonly code = ConnectorErrorCode.Stopped;

  constructor(connector: string, message: string, options: { cause?: unknown } = {}) {
    super(connector, message, options);
    this.name = 'ConnectorStoppedError';
  }
}

function hasCode(err: unknown, code: ConnectorErrorCode): boolean {
  return err instanceof ConnectorError && err.code === code;
}

export const isConnectorError = (err: unknown): err is ConnectorError => err instanceof ConnectorError;
export const isConnectorUnavailable = (err: unknown): err is ConnectorUnavailableError => hasCode(err, ConnectorErrorCode.Unavailable);
export const isConnectorAuthFailed = (err: unknown): err is ConnectorAuthError => hasCode(err, ConnectorErrorCode.AuthFailed);
export const isConnectorBadRequest = (err: unknown): err is ConnectorBadRequestError => hasCode(err, ConnectorErrorCode.BadRequest);
export const isConnectorProtocol = (err: unknown): err is ConnectorProtocolError => hasCode(err, ConnectorErrorCode.Protocol);
export const isConnectorStopped = (err: unknown): err is ConnectorStoppedError => hasCode(err, ConnectorErrorCode.Stopped);
