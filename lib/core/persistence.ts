import type { ErrorClass } from './retry.ts';
import type { RunKind } from './claude-invocation.ts';
import type { RunRecord } from './store.ts';

/**
 * The pure rules of the per-task persistence loop (the seed's "Ralph Wiggum" loop), shared by the local runtime
 * (lib/local/execution-loop.ts, journaled in files) and the cloud runtime (the Fargate runner, journaled in DynamoDB,
 * and the step Lambda that rebuilds a killed container's run). They live here, without I/O, so that both runtimes
 * stop a loop at the same iteration, for the same reason, with the same words.
 */

/** One Claude run of the persistence loop. */
export interface IterationRecord {
  attempt: number;
  iteration: number;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  costUsd: number;
  numTurns: number | null;
  sessionId: string | null;
  ok: boolean;
  errorClass: ErrorClass | null;
  promiseSeen: boolean;
}

/** Where an unfinished loop stands: enough for a restarted orchestrator (or a retried container) to go on. */
export interface Checkpoint {
  attempt: number;
  iteration: number;
  sessionId: string;
}

/** What the loop may do before its next iteration. */
export type IterationGate =
  | { readonly go: true; readonly remainingUsd: number | null }
  | { readonly go: false; readonly errorClass: 'iterations_exhausted' | 'budget_exceeded'; readonly message: string };

/**
 * Whether iteration `iteration` (1-based) may run: not past `orchestrator.max_iterations`, and not once the task has
 * spent its `budget.per_task_usd`. `remainingUsd` is what the run may spend (passed to Claude as --max-budget-usd).
 */
export function iterationGate(input: {
  iteration: number;
  maxIterations: number;
  spentUsd: number;
  perTaskUsd: number | undefined;
}): IterationGate {
  if (input.iteration > input.maxIterations) {
    return {
      go: false,
      errorClass: 'iterations_exhausted',
      message: `no completion promise after ${input.maxIterations} iteration(s) (orchestrator.max_iterations)`,
    };
  }
  if (input.perTaskUsd === undefined) return { go: true, remainingUsd: null };
  const remaining = input.perTaskUsd - input.spentUsd;
  if (remaining <= 0) return { go: false, errorClass: 'budget_exceeded', message: perTaskBudgetMessage(input.spentUsd, input.perTaskUsd) };
  return { go: true, remainingUsd: remaining };
}

export function perTaskBudgetMessage(spentUsd: number, limitUsd: number): string {
  return `the task has cost $${spentUsd.toFixed(4)}, reaching its budget of $${limitUsd.toFixed(2)} (budget.per_task_usd)`;
}

/**
 * What a task has cost before the execution of `attempt`: every stored run except that attempt's execution run. The
 * per-task budget holds across attempts, planning runs included, as the task's `costUsd` does locally.
 */
export function costBeforeAttempt(runs: Iterable<Pick<RunRecord, 'attempt' | 'kind' | 'costUsd'>>, attempt: number): number {
  let total = 0;
  for (const run of runs) if (!(run.attempt === attempt && run.kind === 'execute')) total += run.costUsd;
  return total;
}

/**
 * The run an attempt never recorded because whatever ran it died (kill -9 of the orchestrator, a killed container),
 * rebuilt from the iterations it journaled so their cost still counts — on the task, in the history, against the
 * budgets. Null when the attempt journaled nothing.
 */
export function runFromIterations(input: {
  taskId: string;
  attempt: number;
  kind: RunKind;
  iterations: readonly IterationRecord[];
  ok: boolean;
  errorClass: ErrorClass | null;
}): RunRecord | null {
  const its = input.iterations.filter((r) => r.attempt === input.attempt);
  const first = its[0];
  const last = its[its.length - 1];
  if (first === undefined || last === undefined) return null;
  return {
    taskId: input.taskId,
    attempt: input.attempt,
    kind: input.kind,
    startedAt: new Date(first.startedAt),
    endedAt: new Date(last.endedAt),
    ok: input.ok,
    errorClass: input.ok ? null : input.errorClass,
    exitCode: null,
    durationMs: its.reduce((sum, r) => sum + r.durationMs, 0),
    costUsd: its.reduce((sum, r) => sum + r.costUsd, 0),
    numTurns: its.some((r) => r.numTurns !== null) ? its.reduce((sum, r) => sum + (r.numTurns ?? 0), 0) : null,
    sessionId: last.sessionId,
    logPath: null,
  };
}
