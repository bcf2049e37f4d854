/**
 * The one error type of plugin-gate. Its `code` is stable snake_case: it is a log
 * field, a metric label and a value in `/status`, so it must come from the closed
 * set below and never from input.
 */
export const ERROR_CODES = [
  // status readers (one poll of one source on one pod)
  'status_timeout',
  'status_refused',
  'status_reset',
  'status_unreachable',
  'status_http_error',
  'status_unparseable',
  'status_too_large',
  // discovery
  'discovery_failed',
  'discovery_empty',
  // Kubernetes discovery: the API server refused the credentials (401), RBAC
  // refused the read (403), or the Service (or its namespace) does not exist
  'discovery_unauthorized',
  'discovery_forbidden',
  'discovery_service_not_found',
  // configuration
  'config_invalid',
  // requests
  'invalid_request',
  'headers_too_large',
  // anything not mapped above
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class GateError extends Error {
  override readonly name = 'GateError';
  readonly code: ErrorCode;
  /**
   * One line each, for errors that are a list (a configuration with several bad
   * keys: one line per key, as the command prints them); else the message alone.
   */
  readonly problems: readonly string[];

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; problems?: readonly string[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.problems = options?.problems ?? [message];
  }

  /** A configuration that cannot run: every problem one line naming the key. */
  static invalidConfig(problems: readonly string[]): GateError {
    return new GateError('config_invalid', problems.join('\n'), { problems: [...problems] });
  }

  /** A plain object for logs and `/status`: code and message, never a stack. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }

  /**
   * Normalises anything caught at a boundary. Socket errors are mapped here and
   * only here, so every reader reports them with the same codes.
   */
  static from(err: unknown, fallback: ErrorCode = 'internal'): GateError {
    if (err instanceof GateError) return err;
    const code = socketCode(err);
    const message = err instanceof Error ? err.message : String(err);
    if (code !== undefined) return new GateError(code, message, { cause: err });
    return new GateError(fallback, message, { cause: err });
  }
}

/** The `code` a Node, undici or c-ares error carries (`ECONNREFUSED`, `ENOTFOUND`, …), if any. */
export function errorCodeOf(err: unknown): string | undefined {
  const c = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof c === 'string' ? c : undefined;
}

/** Node / undici error codes → our codes. */
function socketCode(err: unknown): ErrorCode | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const raw = errorCodeOf(err);
  const name = (err as { name?: unknown }).name;
  // llhttp parse errors: whatever answered is not speaking HTTP.
  if (name === 'HTTPParserError' || raw?.startsWith('HPE_') === true) return 'status_unparseable';
  switch (raw) {
    case 'ECONNREFUSED':
      return 'status_refused';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return 'status_reset';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'status_timeout';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL':
      return 'status_unreachable';
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return 'status_too_large';
    default:
      break;
  }
  if (name === 'TimeoutError' || name === 'AbortError') return 'status_timeout';
  return undefined;
}
