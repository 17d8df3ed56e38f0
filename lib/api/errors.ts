/**
 * Errors of the HTTP layer itself, and how every error fte raises maps to an HTTP status. Callers branch on `code`
 * (stable, SCREAMING_SNAKE) and never on the message; the body is always `{"error": {"code", "message"}}`.
 */

export type ApiErrorCode =
  | 'BAD_REQUEST'
  | 'INVALID_JSON'
  | 'VALIDATION_FAILED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'PAYLOAD_TOO_LARGE'
  | 'RESPONSE_INVALID'
  | 'INTERNAL';

export type ApiStatus = 400 | 401 | 404 | 409 | 413 | 415 | 500 | 503;

export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    readonly status: ApiStatus,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Domain error codes (lib/core/errors.ts, the store, the vault) and the status each one means over HTTP. */
const STATUS_OF_CODE: Readonly<Record<string, ApiStatus>> = {
  // The caller sent something fte cannot accept.
  SINCE_INVALID: 400,
  INVALID_TASK_ID: 400,
  TASK_PARSE_ERROR: 400,
  // It names nothing fte knows.
  TASK_NOT_FOUND: 404,
  // It is valid but conflicts with the task's current state: approving a task that is not pending, a write that lost
  // the race against the orchestrator, a note name already taken.
  INVALID_TRANSITION: 409,
  STALE_WRITE: 409,
  VAULT_CONFLICT: 409,
  // Cloud: an approval that arrived before the state machine's approval wait stored its token; asking again works.
  APPROVAL_NOT_READY: 409,
  // The store cannot be used right now; retrying later may work.
  STORE_UNAVAILABLE: 503,
};

export interface ErrorMapping {
  status: ApiStatus;
  code: string;
  message: string;
  /** Not an error the caller can act on: log it (the message sent is generic). */
  internal: boolean;
}

function ownCode(err: unknown): string | null {
  if (!(err instanceof Error) || !('code' in err)) return null;
  const code = err.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code) ? code : null;
}

export function mapError(err: unknown): ErrorMapping {
  if (err instanceof ApiError) {
    return { status: err.status, code: err.code, message: err.message, internal: err.status >= 500 };
  }
  const code = ownCode(err);
  const status = code === null ? undefined : STATUS_OF_CODE[code];
  if (code !== null && status !== undefined) {
    return { status, code, message: (err as Error).message, internal: status >= 500 };
  }
  // Anything else is a bug or an unexpected failure; its message may carry paths or internals, so it is not sent.
  return { status: 500, code: 'INTERNAL', message: 'internal error; see the orchestrator log', internal: true };
}
