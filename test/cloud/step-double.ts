import type { Config } from '../../lib/core/config.ts';
import { decideRetry } from '../../lib/core/retry.ts';
import { InvalidTransitionError, newTaskStatus, transition } from '../../lib/core/state-machine.ts';
import type { TaskError, TaskEvent, TaskEventType, TaskState, TaskStatus } from '../../lib/core/state-machine.ts';
import {
  STEP_ERROR_NAMES,
  eventFromJson,
  eventToJson,
  parseStepAction,
} from '../../lambda/step-contract.ts';
import type {
  CheckStopResult,
  DecideRetryResult,
  StepAction,
  TransitionResult,
} from '../../lambda/step-contract.ts';

/**
 * An implementation of the step Lambda's contract (lambda/step-contract.ts) for executing the state machine locally:
 * every input is validated with the contract's own parser, `transition` runs the core `transition()` on one in-memory
 * task, `decide_retry` runs the core retry policy. Errors are thrown with the names the real handler uses, because the
 * machine's Retry and Catch match on them.
 */

export interface RecordedTransition {
  readonly from: TaskState;
  readonly event: TaskEventType;
  readonly to: TaskState;
}

/** A thrown error whose name a Step Functions Retry/Catch sees, as a Lambda error's errorType. */
export function namedError(name: string, message: string): Error {
  const err = new Error(message);
  err.name = name;
  return err;
}

export interface StepDoubleOptions {
  readonly config: Config;
  readonly taskId: string;
  readonly approvalRequired: boolean;
  /** Start from an approved task (as the scheduler restarts one after a stop). */
  readonly approved?: boolean;
  readonly taskType?: string;
  /** Decides check_stop; default: never stopped. */
  readonly stopFlag?: () => boolean;
  /** Decides decide_retry instead of the core policy (exploration). */
  readonly retryChoice?: (status: TaskStatus) => boolean;
}

export class StepDouble {
  status: TaskStatus;
  /** Transitions the state machine recorded, in order. */
  readonly recorded: RecordedTransition[] = [];
  /** Transitions a human made (through the API, in the real system). */
  readonly human: RecordedTransition[] = [];
  /** `transition` calls the core refused, with the state the task was in. */
  readonly refused: { event: TaskEventType; from: TaskState }[] = [];
  readonly tokens: string[] = [];
  private clockMs = Date.UTC(2026, 0, 1);

  constructor(private readonly options: StepDoubleOptions) {
    let status = newTaskStatus(options.taskId, options.approvalRequired, this.now());
    if (options.approved === true) {
      // The path a real task took to `approved`; not part of what the machine under test records.
      for (const event of [{ type: 'plan' }, { type: 'plan_ready' }, { type: 'approve', by: 'setup' }] as const) {
        status = transition(status, event, this.now()).status;
      }
    }
    this.status = status;
  }

  /**
   * Each step happens an hour after the previous one: a Wait state overridden to 0 ms must not make `retry` arrive
   * before the retryAt the failure recorded (the core refuses that as too_early).
   */
  now(): Date {
    this.clockMs += 3_600_000;
    return new Date(this.clockMs);
  }

  /** The step Lambda: one action in, its result out, or a named error. */
  handle(raw: unknown): TransitionResult | CheckStopResult | DecideRetryResult | { taskId: string; tokenStored: true } {
    const action: StepAction = parseStepAction(raw);
    switch (action.action) {
      case 'check_stop':
        return { stopped: this.options.stopFlag?.() ?? false };
      case 'transition':
        this.requireTask(action.taskId);
        return this.apply(eventFromJson(action.event), this.recorded);
      case 'await_approval':
        this.requireTask(action.taskId);
        if (this.status.state !== 'pending_approval') {
          throw namedError('NotAwaitingApprovalError', `task is ${this.status.state}`);
        }
        this.tokens.push(action.token);
        return { taskId: action.taskId, tokenStored: true };
      case 'decide_retry':
        this.requireTask(action.taskId);
        return this.decide(action.error);
    }
  }

  /** What the API does for a human: record the decision (the machine only reads the answer). */
  humanDoes(event: TaskEvent): void {
    this.apply(event, this.human);
  }

  private apply(event: TaskEvent, log: RecordedTransition[]): TransitionResult {
    try {
      const from = this.status.state;
      const { status } = transition(this.status, event, this.now());
      this.status = status;
      log.push({ from, event: event.type, to: status.state });
      return { taskId: status.id, state: status.state, attempts: status.attempts, version: log.length };
    } catch (err) {
      if (err instanceof InvalidTransitionError) {
        this.refused.push({ event: event.type, from: this.status.state });
        throw namedError(STEP_ERROR_NAMES.invalidTransition, err.message);
      }
      throw err;
    }
  }

  private decide(error: TaskError): DecideRetryResult {
    const now = this.now();
    const override = this.options.retryChoice;
    if (override !== undefined) {
      return override(this.status)
        ? { retry: true, waitSeconds: 1, event: { type: 'fail', error, retryAt: new Date(now.getTime() + 1000).toISOString() } }
        : { retry: false, waitSeconds: 0, event: { type: 'dead_letter', error } };
    }
    const decision = decideRetry(this.options.config, {
      attempt: this.status.attempts,
      taskType: this.options.taskType ?? 'general',
      errorClass: error.class,
      random: () => 0.5,
    });
    if (!decision.retry) return { retry: false, waitSeconds: 0, event: { type: 'dead_letter', error } };
    const retryAt = new Date(now.getTime() + decision.delayMs);
    const event = eventToJson({ type: 'fail', error, retryAt });
    if (event.type !== 'fail') throw new Error('unreachable: a fail event stays a fail event');
    return { retry: true, waitSeconds: Math.ceil(decision.delayMs / 1000), event };
  }

  private requireTask(taskId: string): void {
    if (taskId !== this.status.id) throw namedError(STEP_ERROR_NAMES.taskNotFound, `no task ${taskId}`);
  }
}
