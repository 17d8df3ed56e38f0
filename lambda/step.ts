import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoTaskStore } from '../lib/aws/dynamodb-store.ts';
import type { Config } from '../lib/core/config.ts';
import { decideRetry } from '../lib/core/retry.ts';
import { TaskNotFoundError } from '../lib/core/store.ts';
import type { ApplyOptions, RunRecord, TaskRecord } from '../lib/core/store.ts';
import { METRICS, MetricUnit, createLogger, createMetrics, flushMetrics } from './observability.ts';
import { inLambda, loadConfig, storeFromEnv } from './runtime.ts';
import type { Env } from './runtime.ts';
import { eventFromJson, parseStepAction, runFromJson } from './step-contract.ts';
import type {
  AwaitApprovalAction,
  AwaitApprovalResult,
  CheckStopAction,
  CheckStopResult,
  DecideRetryAction,
  DecideRetryResult,
  StepAction,
  StepResult,
  TransitionAction,
  TransitionResult,
} from './step-contract.ts';

/**
 * The Lambda every step of the task state machine invokes (lambda/step-contract.ts has the input shapes). Thin on
 * purpose: each action is one call into the store or the core, so the rules live in lib/core and the state machine
 * only sequences them. Errors are thrown with their class name, which is what a state machine Catch matches.
 */

export interface StepDeps {
  readonly store: DynamoTaskStore;
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now?: () => Date;
  /** [0, 1); the jitter of the retry backoff. */
  readonly random?: () => number;
}

/** Longest error message kept on the task and its event: a Fargate failure's cause can be a whole task description. */
const MAX_ERROR_MESSAGE_CHARS = 2_000;

export async function handleStep(deps: StepDeps, raw: unknown): Promise<StepResult<StepAction>> {
  const action = parseStepAction(raw);
  try {
    switch (action.action) {
      case 'transition':
        return await transitionStep(deps, action);
      case 'check_stop':
        return await checkStopStep(deps, action);
      case 'await_approval':
        return await awaitApprovalStep(deps, action);
      case 'decide_retry':
        return await decideRetryStep(deps, action);
    }
  } finally {
    flushMetrics(deps.metrics);
  }
}

/**
 * Record one transition. The machine sends no run with its transitions: the runner wrote its run itself, so a step that
 * ends a run lets the store attach that run to the history event (its cost counts against the daily budget, and in the
 * run metrics), or rebuild the run of a container that was killed from the iterations it journaled.
 */
export async function transitionStep(deps: StepDeps, action: TransitionAction): Promise<TransitionResult> {
  const now = (deps.now ?? (() => new Date()))();
  const event = eventFromJson(action.event);
  let record: TaskRecord;
  let run: RunRecord | null;
  if (action.run !== undefined) {
    const options: ApplyOptions = { run: runFromJson(action.run) };
    record =
      action.stepKey !== undefined
        ? await deps.store.applyStep(action.taskId, action.stepKey, event, now, options)
        : await deps.store.apply(action.taskId, event, now, options);
    run = options.run ?? null;
  } else {
    const applied = await deps.store.applyStepEndingRun(action.taskId, action.stepKey ?? null, event, now);
    record = applied.record;
    run = applied.run?.run ?? null;
  }

  deps.logger.info('transition recorded', { taskId: record.id, event: event.type, state: record.state, version: record.version });
  if (record.state === 'done' && event.type === 'succeed') deps.metrics.addMetric(METRICS.succeeded, MetricUnit.Count, 1);
  if (record.state === 'failed' && event.type === 'dead_letter') deps.metrics.addMetric(METRICS.failed, MetricUnit.Count, 1);
  if (record.state === 'retry_wait' && event.type === 'fail') deps.metrics.addMetric(METRICS.retried, MetricUnit.Count, 1);
  if (run !== null) {
    deps.metrics.addMetric(METRICS.runDuration, MetricUnit.Milliseconds, run.durationMs);
    deps.metrics.addMetric(METRICS.runCost, MetricUnit.NoUnit, run.costUsd);
  }
  return { taskId: record.id, state: record.state, attempts: record.attempts, version: record.version };
}

/**
 * The stop flag first, then the scheduler's budget verdict (the whole daily budget, or the task's type): a task that
 * comes back from a retry re-enters execution here without passing the scheduler, and must not start either.
 */
export async function checkStopStep(deps: StepDeps, action: CheckStopAction): Promise<CheckStopResult> {
  const control = await deps.store.cloudControl();
  if (control.stopRequested) return { stopped: true, reason: `stopped${control.stopReason ? `: ${control.stopReason}` : ''}` };
  const budget = control.budget;
  if (budget?.exhausted) return { stopped: true, reason: budget.exhausted };
  if (budget !== null && action.taskId !== undefined && Object.keys(budget.exhaustedTypes).length > 0) {
    const task = await deps.store.get(action.taskId);
    const reason = task === null ? undefined : budget.exhaustedTypes[task.type];
    if (reason !== undefined) return { stopped: true, reason };
  }
  return { stopped: false };
}

export async function awaitApprovalStep(deps: StepDeps, action: AwaitApprovalAction): Promise<AwaitApprovalResult> {
  await deps.store.setApprovalToken(action.taskId, action.token);
  deps.logger.info('approval requested', { taskId: action.taskId });
  return { taskId: action.taskId, tokenStored: true };
}

/**
 * The core retry policy applied to the failed attempt: the task's own attempt count and type pick the settings, so a
 * per-type `max_attempts` holds in the cloud exactly as it does locally.
 */
export async function decideRetryStep(deps: StepDeps, action: DecideRetryAction): Promise<DecideRetryResult> {
  const now = (deps.now ?? (() => new Date()))();
  const record = await deps.store.get(action.taskId);
  if (record === null) throw new TaskNotFoundError(action.taskId);
  const error = { class: action.error.class, message: action.error.message.slice(0, MAX_ERROR_MESSAGE_CHARS) };
  const decision = decideRetry(deps.config, {
    // A failure is always of a started attempt; 0 would only come from a record written by hand.
    attempt: Math.max(1, record.attempts),
    taskType: record.type,
    errorClass: error.class,
    random: deps.random ?? Math.random,
  });
  if (!decision.retry) {
    deps.logger.info('no retry', { taskId: record.id, errorClass: error.class, why: decision.reason });
    return { retry: false, waitSeconds: 0, event: { type: 'dead_letter', error } };
  }
  // Whole seconds for the Wait state; the task's retryAt is the same instant, so the retry after the wait is never early.
  const waitSeconds = Math.ceil(decision.delayMs / 1000);
  const retryAt = new Date(now.getTime() + waitSeconds * 1000);
  deps.logger.info('retry decided', { taskId: record.id, errorClass: error.class, waitSeconds, nextAttempt: decision.nextAttempt });
  return { retry: true, waitSeconds, event: { type: 'fail', error, retryAt: retryAt.toISOString() } };
}

// ---- Lambda entry point

function initialise(env: Env): StepDeps {
  const config = loadConfig(env);
  return {
    store: storeFromEnv(env, config),
    config,
    logger: createLogger('fte-step'),
    metrics: createMetrics('fte-step'),
  };
}

// Inside Lambda the settings are read while the container starts, so a bad deployment fails before any step runs.
let deps: StepDeps | undefined = inLambda(process.env) ? initialise(process.env) : undefined;

export async function handler(event: unknown): Promise<StepResult<StepAction>> {
  deps ??= initialise(process.env);
  return handleStep(deps, event);
}
