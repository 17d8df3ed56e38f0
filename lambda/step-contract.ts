import * as z from 'zod';
import { ERROR_CLASSES } from '../lib/core/retry.ts';
import type { ErrorClass } from '../lib/core/retry.ts';
import type { TaskError, TaskEvent, TaskState } from '../lib/core/state-machine.ts';
import type { RunRecord } from '../lib/core/store.ts';

/**
 * The contract between the Step Functions state machine and `lambda/step.ts`, and between the scheduler and the
 * executions it starts. The state machine definition (lib/cloud) is written against these shapes, and its local
 * execution tests may call the step handler directly, so a change here must be made on both sides.
 *
 * Everything crossing the boundary is JSON: dates travel as ISO-8601 strings and become `Date` only inside the handler.
 *
 * Failures are thrown, never returned: a Lambda error surfaces in Step Functions with `Error` set to the error's
 * `name`, so a `Catch` can match `StaleWriteError`, `InvalidTransitionError`, `TaskNotFoundError` (see
 * STEP_ERROR_NAMES) and route a lost race to a quiet end instead of to `failed`.
 */

// ---- Events as JSON

/** A core TaskEvent as JSON: identical except `fail.retryAt`, which is an ISO-8601 string. */
export type TaskEventJson =
  | Exclude<TaskEvent, { type: 'fail' }>
  | { type: 'fail'; error: TaskError; retryAt: string };

/** A core RunRecord as JSON (the run an event ends), dates as ISO-8601 strings. */
export type RunRecordJson = Omit<RunRecord, 'startedAt' | 'endedAt'> & { startedAt: string; endedAt: string };

// ---- Actions the state machine invokes

/** Apply one state-machine event to the task (conditional write + history). Returns the task's new state. */
export interface TransitionAction {
  action: 'transition';
  taskId: string;
  event: TaskEventJson;
  /** Optional: the agent run this event ends, when the machine has its result; its cost goes onto the task. */
  run?: RunRecordJson;
  /**
   * Optional but recommended: a key unique to this step of this execution, the same on every retry of it — e.g.
   * `States.Format('{}#{}', $$.Execution.Id, $$.State.EnteredTime)`. With it, a step whose Lambda call is retried after
   * its write already happened (a timeout, a lost response) returns the task as that write left it, instead of
   * failing as a stale duplicate and ending the execution while the task sits in the state it just entered.
   */
  stepKey?: string;
}

export interface TransitionResult {
  taskId: string;
  state: TaskState;
  attempts: number;
  version: number;
}

/**
 * Read the stop flag, and the daily-budget block the scheduler keeps on the control item; checked again right before
 * execution, so a task coming back from a retry does not start while dispatch is stopped. With `taskId`, a block on the
 * task's type (`budget.per_type_daily_usd`) stops it too.
 */
export interface CheckStopAction {
  action: 'check_stop';
  taskId?: string;
}

export interface CheckStopResult {
  stopped: boolean;
  /** Why, when stopped: the operator's stop or a spent budget. */
  reason?: string;
}

/**
 * Store the Step Functions task token of the approval wait (`.waitForTaskToken`, token from `$$.Task.Token`) on the
 * task, so approve/reject can complete it. The machine ignores the result: the wait ends on SendTaskSuccess/Failure.
 */
export interface AwaitApprovalAction {
  action: 'await_approval';
  taskId: string;
  token: string;
}

export interface AwaitApprovalResult {
  taskId: string;
  tokenStored: true;
}

/**
 * Decide what follows a failed run, with the core retry policy and the configured retry settings of the task's type.
 * The machine then applies `event` with a `transition` step; when `retry` is true it waits `waitSeconds` (a Wait state
 * with `SecondsPath`) and applies `{ type: 'retry' }`.
 */
export interface DecideRetryAction {
  action: 'decide_retry';
  taskId: string;
  error: TaskError;
}

export type DecideRetryResult =
  | { retry: true; waitSeconds: number; event: Extract<TaskEventJson, { type: 'fail' }> }
  | { retry: false; waitSeconds: 0; event: Extract<TaskEventJson, { type: 'dead_letter' }> };

export type StepAction = TransitionAction | CheckStopAction | AwaitApprovalAction | DecideRetryAction;

export type StepResult<A extends StepAction> = A extends TransitionAction
  ? TransitionResult
  : A extends CheckStopAction
    ? CheckStopResult
    : A extends AwaitApprovalAction
      ? AwaitApprovalResult
      : A extends DecideRetryAction
        ? DecideRetryResult
        : never;

/** Error names the step handler throws on purpose; each is the `Error` a state machine `Catch` can match. */
export const STEP_ERROR_NAMES = {
  staleWrite: 'StaleWriteError',
  invalidTransition: 'InvalidTransitionError',
  taskNotFound: 'TaskNotFoundError',
  invalidInput: 'StepInputError',
  /** await_approval on a task that is not pending_approval (someone rejected or cancelled it first). */
  notAwaitingApproval: 'NotAwaitingApprovalError',
  /** The table could not be used; `DynamoStoreError` is its subclass with a reason (throttled, network, …). */
  storeUnavailable: 'StoreError',
  storeUnavailableDynamo: 'DynamoStoreError',
} as const;

// ---- What the scheduler starts

/**
 * The input of every execution the scheduler starts. An execution begins at `needs_action` or `approved` (the scheduler
 * moves a due `retry_wait` task back first), and its first step applies `firstEvent`: `plan` for a task that needs
 * approval and has none, `execute` otherwise.
 */
export interface ExecutionInput {
  taskId: string;
  /** The attempt this execution starts (the task's attempts + 1 when scheduled); also part of the execution name. */
  attempt: number;
  state: Extract<TaskState, 'needs_action' | 'approved'>;
  approvalRequired: boolean;
  firstEvent: Extract<TaskEvent['type'], 'plan' | 'execute'>;
}

// ---- Runtime validation of what arrives over the wire

const isoDate = z.iso.datetime({ offset: true });
const errorClass = z.enum(ERROR_CLASSES);
const taskError = z.strictObject({ class: errorClass, message: z.string() });

const taskEventJson = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('plan') }),
  z.strictObject({ type: z.literal('execute') }),
  z.strictObject({ type: z.literal('plan_ready') }),
  z.strictObject({ type: z.literal('approve'), by: z.string().min(1) }),
  z.strictObject({ type: z.literal('reject'), by: z.string().min(1), reason: z.string().optional() }),
  z.strictObject({ type: z.literal('expire') }),
  z.strictObject({ type: z.literal('succeed') }),
  z.strictObject({ type: z.literal('fail'), error: taskError, retryAt: isoDate }),
  z.strictObject({ type: z.literal('dead_letter'), error: taskError }),
  z.strictObject({ type: z.literal('retry') }),
  z.strictObject({ type: z.literal('interrupt'), reason: z.string() }),
  z.strictObject({ type: z.literal('cancel'), by: z.string().min(1), reason: z.string().optional() }),
  z.strictObject({ type: z.literal('requeue'), by: z.string().min(1) }),
]);

const runRecordJson = z.strictObject({
  taskId: z.string().min(1),
  attempt: z.number().int().positive(),
  kind: z.enum(['plan', 'execute']),
  startedAt: isoDate,
  endedAt: isoDate,
  ok: z.boolean(),
  errorClass: errorClass.nullable(),
  exitCode: z.number().int().nullable(),
  durationMs: z.number().nonnegative(),
  costUsd: z.number().nonnegative(),
  numTurns: z.number().int().nonnegative().nullable(),
  sessionId: z.string().nullable(),
  logPath: z.string().nullable(),
});

const taskId = z.string().min(1);

export const stepActionSchema = z.discriminatedUnion('action', [
  z.strictObject({
    action: z.literal('transition'),
    taskId,
    event: taskEventJson,
    run: runRecordJson.optional(),
    stepKey: z.string().min(1).max(1024).optional(),
  }),
  z.strictObject({ action: z.literal('check_stop'), taskId: taskId.optional() }),
  z.strictObject({ action: z.literal('await_approval'), taskId, token: z.string().min(1) }),
  z.strictObject({ action: z.literal('decide_retry'), taskId, error: taskError }),
]);

/** The step input was not one of the actions above; a bug in the state machine definition, never retried. */
export class StepInputError extends Error {
  readonly code = 'STEP_INPUT_INVALID' as const;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export function parseStepAction(raw: unknown): StepAction {
  const result = stepActionSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new StepInputError(`invalid step input: ${issues.join('; ')}`);
  }
  return result.data;
}

// ---- Conversions between the JSON and the core shapes

export function eventFromJson(event: TaskEventJson): TaskEvent {
  if (event.type !== 'fail') return event;
  const retryAt = new Date(event.retryAt);
  if (Number.isNaN(retryAt.getTime())) throw new StepInputError(`fail.retryAt is not a date: ${event.retryAt}`);
  return { type: 'fail', error: event.error, retryAt };
}

export function eventToJson(event: TaskEvent): TaskEventJson {
  if (event.type !== 'fail') return event;
  return { type: 'fail', error: event.error, retryAt: event.retryAt.toISOString() };
}

export function runFromJson(run: RunRecordJson): RunRecord {
  return { ...run, startedAt: new Date(run.startedAt), endedAt: new Date(run.endedAt) };
}

export function runToJson(run: RunRecord): RunRecordJson {
  return { ...run, startedAt: run.startedAt.toISOString(), endedAt: run.endedAt.toISOString() };
}

/** Re-exported so the state machine's tests can name error classes without reaching into the core. */
export type { ErrorClass };
