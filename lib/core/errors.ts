/**
 * Typed errors of the domain core. Every error fte raises on purpose carries a stable `code` so callers (CLI exit
 * codes, HTTP status mapping, quarantine notes) branch on the code, never on message text.
 */
export type FteErrorCode =
  | 'TASK_PARSE_ERROR'
  | 'INVALID_TASK_ID'
  | 'INVALID_TRANSITION'
  | 'CONFIG_INVALID'
  | 'SINCE_INVALID'
  | 'TASK_NOT_FOUND'
  | 'STALE_WRITE'
  | 'FILE_WRITE_FAILED';

export class FteError extends Error {
  readonly code: FteErrorCode;

  constructor(code: FteErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Why a task note could not be read; each reason names a class of malformed input. */
export type TaskParseReason =
  | 'too_large'
  | 'binary'
  | 'not_utf8'
  | 'empty'
  | 'frontmatter_unterminated'
  | 'frontmatter_too_large'
  | 'frontmatter_too_deep'
  | 'bad_yaml'
  | 'yaml_alias_limit'
  | 'frontmatter_not_mapping'
  | 'invalid_field';

export class TaskParseError extends FteError {
  readonly reason: TaskParseReason;
  /** The frontmatter key at fault, when the reason is a field. */
  readonly field: string | undefined;

  constructor(reason: TaskParseReason, message: string, field?: string) {
    super('TASK_PARSE_ERROR', message);
    this.reason = reason;
    this.field = field;
  }
}

export class InvalidTaskIdError extends FteError {
  constructor(readonly taskId: string, why: string) {
    super('INVALID_TASK_ID', `invalid task id ${JSON.stringify(taskId)}: ${why}`);
  }
}

export interface ConfigIssue {
  /** Dotted path of the offending key, e.g. `orchestrator.max_concurrent_tasks`. */
  path: string;
  message: string;
}

export class ConfigError extends FteError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], source = 'config') {
    const lines = issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`);
    super('CONFIG_INVALID', `${source} is invalid:\n${lines.join('\n')}`);
    this.issues = issues;
  }
}

export class SinceParseError extends FteError {
  constructor(readonly input: string) {
    super(
      'SINCE_INVALID',
      `invalid --since value ${JSON.stringify(input)}: use a duration such as 30m, 24h, 7d, or an ISO timestamp`,
    );
  }
}

/**
 * A file fte writes (a note, a quarantine note, the snapshot of an admitted note, an iteration journal) could not be
 * written. The system's own message for a failed write names no file ("ENOSPC: no space left on device, write"), so an
 * operator with a full disk could not tell which file system to free; this one does. `errno` keeps the system's reason
 * (ENOSPC, EDQUOT, EFBIG, EROFS, EACCES, …) for callers that branch on it.
 */
export class FileWriteError extends FteError {
  readonly errno: string | null;

  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    const errno = errnoOf(cause);
    const why = cause instanceof Error ? cause.message : String(cause);
    super('FILE_WRITE_FAILED', `cannot write ${path}: ${why}`, { cause });
    this.errno = errno;
  }
}

function errnoOf(cause: unknown): string | null {
  if (typeof cause !== 'object' || cause === null || !('code' in cause)) return null;
  return typeof cause.code === 'string' ? cause.code : null;
}
