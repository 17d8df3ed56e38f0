import { FteError } from './errors.ts';
import type { ErrorClass } from './retry.ts';

/**
 * The task state machine, defined once as data. The local engine drives tasks through `transition()`, the store
 * adapters enforce the same table in their conditional writes, and the Step Functions graph is checked against
 * `TRANSITIONS` in a test — so a change here is a change everywhere, or a failing test.
 *
 * `approved` is added to the seed's states: an approved task may wait for a free slot (concurrency cap, stop flag)
 * before it executes, and the vault shows it in `Approved/`. Without the state, "approved but not yet running" would be
 * a flag hidden inside `pending_approval`, and the only door into `executing` for a task that needs approval would no
 * longer be a state only a human can open.
 */
export const TASK_STATES = [
  'needs_action',
  'planning',
  'pending_approval',
  'approved',
  'executing',
  'retry_wait',
  'done',
  'rejected',
  'expired',
  'failed',
  'cancelled',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set<TaskState>([
  'done',
  'rejected',
  'expired',
  'failed',
  'cancelled',
]);

/** States in which an agent process is (or should be) running for the task. */
export const RUNNING_STATES: ReadonlySet<TaskState> = new Set<TaskState>(['planning', 'executing']);

export function isTerminal(state: TaskState): boolean {
  return TERMINAL_STATES.has(state);
}

export const TASK_EVENT_TYPES = [
  'plan',
  'execute',
  'plan_ready',
  'approve',
  'reject',
  'expire',
  'succeed',
  'fail',
  'dead_letter',
  'retry',
  'interrupt',
  'cancel',
  'requeue',
] as const;
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];

/** Who may fire a transition: the engine itself, a human (CLI, API, a file move), or a clock. */
export type Actor = 'engine' | 'human' | 'timer';

/** A condition on the task record that selects between transitions sharing a source state and event. */
export type Guard = 'approval_required' | 'approval_not_required' | 'approved' | 'not_approved';

export interface TransitionDef {
  readonly from: TaskState;
  readonly event: TaskEventType;
  readonly to: TaskState;
  readonly actor: Actor;
  readonly guard?: Guard;
  readonly description: string;
}

const NON_TERMINAL: readonly TaskState[] = TASK_STATES.filter((s) => !TERMINAL_STATES.has(s));

export const TRANSITIONS: readonly TransitionDef[] = [
  { from: 'needs_action', event: 'plan', to: 'planning', actor: 'engine', guard: 'approval_required',
    description: 'dispatch a planning run so the human approves a concrete plan' },
  { from: 'needs_action', event: 'execute', to: 'executing', actor: 'engine', guard: 'approval_not_required',
    description: 'dispatch a task that needs no approval' },
  { from: 'planning', event: 'plan_ready', to: 'pending_approval', actor: 'engine',
    description: 'the plan is written; ask a human' },
  { from: 'pending_approval', event: 'approve', to: 'approved', actor: 'human',
    description: 'a human approved this exact task' },
  { from: 'pending_approval', event: 'expire', to: 'expired', actor: 'timer',
    description: 'nobody answered before the approval timeout' },
  { from: 'approved', event: 'execute', to: 'executing', actor: 'engine',
    description: 'dispatch an approved task' },
  { from: 'executing', event: 'succeed', to: 'done', actor: 'engine',
    description: 'the agent run succeeded' },
  { from: 'planning', event: 'fail', to: 'retry_wait', actor: 'engine',
    description: 'the planning run failed with a retryable error; wait out the backoff' },
  { from: 'executing', event: 'fail', to: 'retry_wait', actor: 'engine',
    description: 'the run failed with a retryable error; wait out the backoff' },
  { from: 'planning', event: 'dead_letter', to: 'failed', actor: 'engine',
    description: 'non-retryable error or attempts exhausted' },
  { from: 'executing', event: 'dead_letter', to: 'failed', actor: 'engine',
    description: 'non-retryable error or attempts exhausted' },
  { from: 'retry_wait', event: 'retry', to: 'needs_action', actor: 'timer', guard: 'not_approved',
    description: 'backoff elapsed; queue again' },
  { from: 'retry_wait', event: 'retry', to: 'approved', actor: 'timer', guard: 'approved',
    description: 'backoff elapsed; the approval of this task still stands' },
  { from: 'planning', event: 'interrupt', to: 'needs_action', actor: 'engine',
    description: 'stop --now or a crash ended the run; queue again' },
  { from: 'executing', event: 'interrupt', to: 'needs_action', actor: 'engine', guard: 'not_approved',
    description: 'stop --now or a crash ended the run; queue again' },
  { from: 'executing', event: 'interrupt', to: 'approved', actor: 'engine', guard: 'approved',
    description: 'stop --now or a crash ended the run; the approval still stands' },
  { from: 'failed', event: 'requeue', to: 'needs_action', actor: 'human',
    description: 'an operator retries a dead-lettered task from scratch' },
  { from: 'expired', event: 'requeue', to: 'needs_action', actor: 'human',
    description: 'an operator asks again for an expired approval' },
  ...NON_TERMINAL.map((from): TransitionDef => ({
    from, event: 'reject', to: 'rejected', actor: 'human', description: 'a human said no',
  })),
  ...NON_TERMINAL.map((from): TransitionDef => ({
    from, event: 'cancel', to: 'cancelled', actor: 'human', description: 'an operator withdrew the task',
  })),
];

export interface ApprovalRecord {
  readonly by: string;
  readonly at: Date;
}

export interface TaskError {
  readonly class: ErrorClass;
  readonly message: string;
}

/** The part of a task's runtime record the state machine reads and writes. */
export interface TaskStatus {
  readonly id: string;
  readonly state: TaskState;
  /** Decided by the approval policy when the task was admitted; never relaxed afterwards. */
  readonly approvalRequired: boolean;
  readonly approval: ApprovalRecord | null;
  /** Runs started (planning and execution), across retries. */
  readonly attempts: number;
  readonly retryAt: Date | null;
  readonly lastError: TaskError | null;
  /** Why the task was rejected, cancelled or interrupted, as given by who did it. */
  readonly reason: string | null;
  readonly stateSince: Date;
}

export type TaskEvent =
  | { type: 'plan' }
  | { type: 'execute' }
  | { type: 'plan_ready' }
  | { type: 'approve'; by: string }
  | { type: 'reject'; by: string; reason?: string }
  | { type: 'expire' }
  | { type: 'succeed' }
  | { type: 'fail'; error: TaskError; retryAt: Date }
  | { type: 'dead_letter'; error: TaskError }
  | { type: 'retry' }
  | { type: 'interrupt'; reason: string }
  | { type: 'cancel'; by: string; reason?: string }
  | { type: 'requeue'; by: string };

export interface TransitionRecord {
  readonly taskId: string;
  readonly from: TaskState;
  readonly to: TaskState;
  readonly event: TaskEventType;
  readonly at: Date;
}

export type TransitionRejection = 'no_such_transition' | 'guard_failed' | 'too_early';

export class InvalidTransitionError extends FteError {
  constructor(
    readonly taskId: string,
    readonly from: TaskState,
    readonly event: TaskEventType,
    readonly rejection: TransitionRejection,
    detail: string,
  ) {
    super('INVALID_TRANSITION', `task ${taskId}: cannot ${event} from ${from}: ${detail}`);
  }
}

function guardHolds(guard: Guard | undefined, task: TaskStatus): boolean {
  switch (guard) {
    case undefined:
      return true;
    case 'approval_required':
      return task.approvalRequired;
    case 'approval_not_required':
      return !task.approvalRequired;
    case 'approved':
      return task.approval !== null;
    case 'not_approved':
      return task.approval === null;
  }
}

/** The transitions leaving `from` on `event`, whatever their guards. */
export function transitionsFor(from: TaskState, event: TaskEventType): TransitionDef[] {
  return TRANSITIONS.filter((t) => t.from === from && t.event === event);
}

/** Events the table allows from `state` for this task (guards applied) — what a UI may offer. */
export function allowedEvents(task: TaskStatus): TaskEventType[] {
  const events = TRANSITIONS.filter((t) => t.from === task.state && guardHolds(t.guard, task)).map((t) => t.event);
  return [...new Set(events)];
}

/**
 * Apply `event` to `task` at `now`. Pure: returns the next status and the record of the step, or throws
 * InvalidTransitionError when the table does not allow it.
 */
export function transition(
  task: TaskStatus,
  event: TaskEvent,
  now: Date,
): { status: TaskStatus; record: TransitionRecord } {
  const candidates = transitionsFor(task.state, event.type);
  if (candidates.length === 0) {
    throw new InvalidTransitionError(task.id, task.state, event.type, 'no_such_transition',
      `no transition on ${event.type} leaves ${task.state}`);
  }
  const def = candidates.find((t) => guardHolds(t.guard, task));
  if (def === undefined) {
    const guards = candidates.map((t) => t.guard).join(' or ');
    throw new InvalidTransitionError(task.id, task.state, event.type, 'guard_failed',
      `requires ${guards}`);
  }
  if (event.type === 'retry' && task.retryAt !== null && now.getTime() < task.retryAt.getTime()) {
    throw new InvalidTransitionError(task.id, task.state, event.type, 'too_early',
      `backoff runs until ${task.retryAt.toISOString()}`);
  }

  const status: TaskStatus = { ...task, ...effects(task, event, now), state: def.to, stateSince: now };
  return { status, record: { taskId: task.id, from: task.state, to: def.to, event: event.type, at: now } };
}

/** What each event writes besides the state. */
function effects(task: TaskStatus, event: TaskEvent, now: Date): Partial<TaskStatus> {
  switch (event.type) {
    case 'plan':
    case 'execute':
      return { attempts: task.attempts + 1, retryAt: null };
    case 'approve':
      return { approval: { by: event.by, at: now } };
    case 'reject':
    case 'cancel':
      return { reason: event.reason ?? null, retryAt: null };
    case 'fail':
      return { lastError: event.error, retryAt: event.retryAt };
    case 'dead_letter':
      return { lastError: event.error, retryAt: null };
    case 'interrupt':
      return { reason: event.reason };
    case 'requeue':
      // A revived task starts over: a fresh attempt budget, and a fresh approval for whatever plan it makes next.
      return { attempts: 0, approval: null, retryAt: null, lastError: null, reason: null };
    case 'plan_ready':
    case 'expire':
    case 'succeed':
    case 'retry':
      return {};
  }
}

/** A freshly admitted task. */
export function newTaskStatus(id: string, approvalRequired: boolean, now: Date): TaskStatus {
  return {
    id,
    state: 'needs_action',
    approvalRequired,
    approval: null,
    attempts: 0,
    retryAt: null,
    lastError: null,
    reason: null,
    stateSince: now,
  };
}
