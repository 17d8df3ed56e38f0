import { ERROR_CLASSES } from '../core/retry.ts';
import type { ErrorClass } from '../core/retry.ts';

/**
 * How the Fargate runner tells the state machine WHY a run failed. `ecs:runTask.sync` hands Step Functions nothing but
 * the stopped task's description, so the container's exit code is the only channel: 0 is success, `BASE + i` is
 * ERROR_CLASSES[i], and anything else (1 from an uncaught exception, 137 from an out-of-memory kill, ...) is a crash.
 * The runner (container/runner.ts) and the state machine's exit-code Choice (task-state-machine.ts) both read this
 * table, so the retry policy sees the same class a local run would report — a spent budget is not retried, a rate
 * limit is.
 *
 * The base stays clear of 1 and 2 (Node's own failures) and below 126 (shell and signal conventions).
 */
export const RUNNER_EXIT_BASE = 10;

export const RUNNER_EXIT_CODES: Readonly<Record<ErrorClass, number>> = Object.fromEntries(
  ERROR_CLASSES.map((errorClass, i) => [errorClass, RUNNER_EXIT_BASE + i]),
) as Record<ErrorClass, number>;

export function runnerExitCode(errorClass: ErrorClass): number {
  return RUNNER_EXIT_CODES[errorClass];
}

/** The class an exit code stands for, or null when the runner did not choose it (a crash). */
export function errorClassOfExitCode(code: number): ErrorClass | null {
  return ERROR_CLASSES[code - RUNNER_EXIT_BASE] ?? null;
}

/**
 * The persistence loop paused between iterations (the stop flag, or the daily budget the scheduler found spent): not a
 * failure and not an error class, so no retry is decided — the state machine records `interrupt` and ends, and the
 * next attempt resumes from the checkpoint. Outside the class range, below 126, and clear of the codes Node itself
 * exits with (1–14).
 */
export const RUNNER_PAUSED_EXIT_CODE = 100;
