import { createHash } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { ScheduledEvent } from 'aws-lambda';
import type { BudgetBlock, DynamoTaskStore } from '../lib/aws/dynamodb-store.ts';
import { STATE_MACHINE_ARN_ENV } from '../lib/cloud/runtime-env.ts';
import { BUDGET_WINDOW_MS, budgetState } from '../lib/core/budget.ts';
import type { Config } from '../lib/core/config.ts';
import { rankTasks } from '../lib/core/scoring.ts';
import { InvalidTransitionError } from '../lib/core/state-machine.ts';
import type { TaskState } from '../lib/core/state-machine.ts';
import { StaleWriteError, TaskNotFoundError } from '../lib/core/store.ts';
import type { TaskRecord } from '../lib/core/store.ts';
import { METRICS, MetricUnit, createLogger, createMetrics, flushMetrics } from './observability.ts';
import { inLambda, loadConfig, requireEnv, storeFromEnv } from './runtime.ts';
import type { Env } from './runtime.ts';
import type { ExecutionInput } from './step-contract.ts';

/**
 * The scheduler, run by EventBridge every minute: it reads the stop flag, counts the running tasks, ranks the queue
 * with the core scorer and starts at most `cap − running` Step Functions executions, best first. With budgets
 * configured it first draws the rolling daily line with the core `budgetState` over the table's history (the cost of
 * every finished run is on the event that ended it) plus what running loops have spent so far: a spent daily budget
 * starts nothing, as if stopped, and a spent type budget skips that type. The verdict is kept on the control item,
 * where CheckStop, running loops, status and health read it. It holds no state of its own: everything it decides from
 * is in the table, and everything it starts is named so that starting it twice (a retried invocation, two
 * overlapping ticks) is a no-op.
 */

export interface SchedulerDeps {
  readonly store: DynamoTaskStore;
  readonly sfn: SFNClient;
  readonly stateMachineArn: string;
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Written to the control item's heartbeat: which scheduler ran last. */
  readonly owner: string;
}

export interface StartedExecution {
  readonly taskId: string;
  readonly executionName: string;
  /** Step Functions already had an execution of this name: an earlier tick or a retried invocation started it. */
  readonly alreadyExisted: boolean;
}

export interface SchedulerResult {
  readonly stopped: boolean;
  /** This tick's budget verdict; null when no daily budget is configured. `budget.exhausted` set: nothing started. */
  readonly budget: BudgetBlock | null;
  readonly cap: number;
  readonly running: number;
  readonly queued: number;
  readonly started: readonly StartedExecution[];
  readonly skipped: readonly { readonly taskId: string; readonly why: string }[];
}

/** Starting an execution failed for a reason other than it existing already; the tick's Lambda invocation fails. */
export class SchedulerStartError extends Error {
  readonly code = 'SCHEDULER_START_FAILED' as const;

  constructor(
    readonly taskId: string,
    options: { cause: unknown },
  ) {
    super(`could not start the execution of task ${taskId}: ${describe(options.cause)}`, options);
    this.name = new.target.name;
  }
}

const RUNNING_STATES: readonly TaskState[] = ['planning', 'executing'];
const QUEUED_STATES: readonly TaskState[] = ['needs_action', 'approved', 'retry_wait'];

/**
 * A task in retry_wait belongs to the execution that is waiting out its backoff; the scheduler takes it over only when
 * its retry time is this far behind, i.e. when that execution is evidently gone (failed, timed out, aborted).
 */
export const ORPHANED_RETRY_GRACE_MS = 5 * 60_000;

/**
 * Execution names include the dispatch window, so a task whose execution ended without moving it (the stop flag was
 * set in between, or the execution failed before its first step) is started again in the next window; within one
 * window, repeated starts of the same task collapse into one execution.
 */
export const DISPATCH_WINDOW_MS = 5 * 60_000;

const MAX_EXECUTION_NAME = 80;

/**
 * The name of the execution that starts attempt `attempts + 1` of `task` at `now`: the same for every tick of one
 * dispatch window, different after any write to the task (a requeue restarts attempts, but not the version). Step
 * Functions allows 80 characters and, for executions whose logs go to CloudWatch, only `[A-Za-z0-9_-]`; a task id is
 * reduced to those, and a digest of the full id keeps two ids that reduce alike from sharing a name.
 */
export function executionName(task: Pick<TaskRecord, 'id' | 'attempts' | 'version'>, now: Date): string {
  const digest = createHash('sha256').update(task.id).digest('hex').slice(0, 10);
  const window = Math.floor(now.getTime() / DISPATCH_WINDOW_MS).toString(36);
  const suffix = `-${digest}-a${task.attempts + 1}-v${task.version}-w${window}`;
  const readable = task.id.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, Math.max(0, MAX_EXECUTION_NAME - suffix.length));
  return `${readable}${suffix}`.slice(-MAX_EXECUTION_NAME);
}

function dispatchable(task: TaskRecord, now: Date): boolean {
  if (task.state === 'needs_action' || task.state === 'approved') return true;
  if (task.state !== 'retry_wait') return false;
  return task.retryAt === null || task.retryAt.getTime() + ORPHANED_RETRY_GRACE_MS <= now.getTime();
}

function oldestAgeSeconds(tasks: readonly TaskRecord[], now: Date): number {
  const oldest = Math.min(...tasks.map((t) => t.stateSince.getTime()));
  return Number.isFinite(oldest) ? Math.max(0, Math.floor((now.getTime() - oldest) / 1000)) : 0;
}

export async function runScheduler(deps: SchedulerDeps, now: Date): Promise<SchedulerResult> {
  const { store, config, logger, metrics } = deps;
  try {
    const control = await store.cloudControl();
    await store.heartbeat(deps.owner, now);
    const [running, queued, awaiting] = await Promise.all([
      store.countByState(RUNNING_STATES),
      store.list({ states: QUEUED_STATES }),
      store.list({ states: ['pending_approval'] }),
    ]);
    metrics.addMetric(METRICS.queueDepth, MetricUnit.Count, queued.length);
    metrics.addMetric(METRICS.running, MetricUnit.Count, running);
    metrics.addMetric(METRICS.oldestQueuedAge, MetricUnit.Seconds, oldestAgeSeconds(queued, now));
    metrics.addMetric(METRICS.oldestApprovalAge, MetricUnit.Seconds, oldestAgeSeconds(awaiting, now));

    const budget = await checkBudget(deps, control.budget, now);

    const cap = control.concurrencyCap ?? config.orchestrator.max_concurrent_tasks;
    const base = { cap, running, queued: queued.length, budget };
    if (control.stopRequested) {
      logger.info('stop flag set; starting nothing', { ...base, stopReason: control.stopReason });
      metrics.addMetric(METRICS.started, MetricUnit.Count, 0);
      return { ...base, stopped: true, started: [], skipped: [] };
    }
    if (budget?.exhausted) {
      logger.info('daily budget spent; starting nothing', { ...base, reason: budget.exhausted, freesAt: budget.freesAt });
      metrics.addMetric(METRICS.started, MetricUnit.Count, 0);
      return { ...base, stopped: false, started: [], skipped: [] };
    }

    const slots = Math.max(0, cap - running);
    const started: StartedExecution[] = [];
    const skipped: { taskId: string; why: string }[] = [];
    for (const { task } of rankTasks(queued.filter((t) => dispatchable(t, now)), now, config)) {
      if (started.length >= slots) break;
      const typeBlock = budget?.exhaustedTypes[task.type];
      if (typeBlock !== undefined) {
        // Not a slot taken: a task of another type may still start.
        skipped.push({ taskId: task.id, why: typeBlock });
        continue;
      }
      const record = await takeOver(deps, task, now, skipped);
      if (record === null) continue;
      const outcome = await start(deps, record, now);
      started.push(outcome);
    }

    const fresh = started.filter((s) => !s.alreadyExisted).length;
    metrics.addMetric(METRICS.started, MetricUnit.Count, fresh);
    logger.info('scheduler tick', { ...base, slots, started: started.length, fresh, skipped: skipped.length });
    return { ...base, stopped: false, started, skipped };
  } finally {
    flushMetrics(metrics);
  }
}

/**
 * The rolling 24 h budgets, as the local engine draws them: the cost on the history events of the window plus, for
 * each execution in flight, what its loop's journaled iterations of the current attempt have cost so far (a finished
 * run's cost reaches the history only when the state machine records its end, and the task has left `executing` by
 * then, so nothing counts twice). Recorded on the control item every tick, so what status shows is at most a tick old;
 * a change is logged as `budget_exhausted` / `budget_available`, the events a local orchestrator would send.
 */
async function checkBudget(deps: SchedulerDeps, previous: BudgetBlock | null, now: Date): Promise<BudgetBlock | null> {
  const { store, config, logger, metrics } = deps;
  const configured = config.budget.daily_usd !== undefined || Object.keys(config.budget.per_type_daily_usd).length > 0;
  if (!configured) {
    // Budgets removed from the config: a verdict left on the control item would keep blocking.
    if (previous !== null) await store.recordBudget(null);
    return null;
  }
  const [events, executing] = await Promise.all([
    store.history({ since: new Date(now.getTime() - BUDGET_WINDOW_MS), until: new Date(now.getTime() + 1) }),
    store.list({ states: ['executing'] }),
  ]);
  const inFlight: Record<string, number> = {};
  for (const task of executing) {
    const spent = (await store.iterations(task.id))
      .filter((it) => it.attempt === task.attempts)
      .reduce((sum, it) => sum + it.costUsd, 0);
    if (spent > 0) inFlight[task.type] = (inFlight[task.type] ?? 0) + spent;
  }
  const state = budgetState(events, config, now, inFlight);
  const block: BudgetBlock = {
    exhausted: state.exhausted,
    exhaustedTypes: state.exhaustedTypes,
    spentUsd: state.spentUsd,
    dailyUsd: state.dailyUsd,
    freesAt: state.freesAt === null ? null : new Date(state.freesAt),
    checkedAt: now,
  };
  await store.recordBudget(block);
  metrics.addMetric(METRICS.budgetSpent, MetricUnit.NoUnit, state.spentUsd);
  metrics.addMetric(METRICS.budgetExhausted, MetricUnit.Count, state.exhausted === null ? 0 : 1);
  const was = previous?.exhausted ?? null;
  if (state.exhausted !== null && was === null) {
    logger.warn('budget_exhausted', { reason: state.exhausted, spentUsd: state.spentUsd, freesAt: block.freesAt });
  } else if (state.exhausted === null && was !== null) {
    logger.info('budget_available', { spentUsd: state.spentUsd, was });
  }
  return block;
}

/**
 * The record an execution can start from: needs_action and approved as they are; an orphaned retry_wait task moved
 * back to the queue first (conditionally, so a late execution and this tick cannot both do it).
 */
async function takeOver(
  deps: SchedulerDeps,
  task: TaskRecord,
  now: Date,
  skipped: { taskId: string; why: string }[],
): Promise<TaskRecord | null> {
  if (task.state !== 'retry_wait') return task;
  try {
    return await deps.store.apply(task.id, { type: 'retry' }, now, { expectedVersion: task.version });
  } catch (err) {
    if (err instanceof StaleWriteError || err instanceof InvalidTransitionError || err instanceof TaskNotFoundError) {
      skipped.push({ taskId: task.id, why: `${err.name}: ${err.message}` });
      deps.logger.info('retry_wait task moved on before the take-over', { taskId: task.id, error: err.name });
      return null;
    }
    throw err;
  }
}

async function start(deps: SchedulerDeps, record: TaskRecord, now: Date): Promise<StartedExecution> {
  if (record.state !== 'needs_action' && record.state !== 'approved') {
    // Only dispatchable states reach here; a record in another state is a bug in this module, not in the data.
    throw new RangeError(`task ${record.id} is ${record.state}; only needs_action and approved tasks are started`);
  }
  const input: ExecutionInput = {
    taskId: record.id,
    attempt: record.attempts + 1,
    state: record.state,
    approvalRequired: record.approvalRequired,
    firstEvent: record.state === 'needs_action' && record.approvalRequired ? 'plan' : 'execute',
  };
  const name = executionName(record, now);
  try {
    await deps.sfn.send(
      new StartExecutionCommand({ stateMachineArn: deps.stateMachineArn, name, input: JSON.stringify(input) }),
    );
    deps.logger.info('execution started', { taskId: record.id, executionName: name, firstEvent: input.firstEvent });
    return { taskId: record.id, executionName: name, alreadyExisted: false };
  } catch (err) {
    if (err instanceof ExecutionAlreadyExists) {
      deps.logger.info('execution already started', { taskId: record.id, executionName: name });
      return { taskId: record.id, executionName: name, alreadyExisted: true };
    }
    throw new SchedulerStartError(record.id, { cause: err });
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

// ---- Lambda entry point

function initialise(env: Env): SchedulerDeps {
  const config = loadConfig(env);
  return {
    store: storeFromEnv(env, config),
    sfn: new SFNClient({}),
    stateMachineArn: requireEnv(env, STATE_MACHINE_ARN_ENV),
    config,
    logger: createLogger('fte-scheduler'),
    metrics: createMetrics('fte-scheduler'),
    owner: `scheduler:${env['AWS_LAMBDA_FUNCTION_NAME'] ?? 'local'}`,
  };
}

let deps: SchedulerDeps | undefined = inLambda(process.env) ? initialise(process.env) : undefined;

export async function handler(_event: ScheduledEvent): Promise<SchedulerResult> {
  deps ??= initialise(process.env);
  // The clock, not the event's time: the heartbeat must say when the scheduler last ran, retries included.
  return runScheduler(deps, new Date());
}
