import type { Config } from './config.ts';
import { formatSeconds } from './duration.ts';

/**
 * Whether the orchestrator is doing its job, as a monitor (a cron probe, a load balancer, Datadog) wants it: one
 * overall status plus the checks behind it. Check names and the JSON shape are a contract with those monitors.
 *
 * "degraded" means a human should look soon; "unhealthy" means the orchestrator is not working (no scheduler, a flood
 * of work, most runs failing). The overall status is the worst check.
 */
export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthInput {
  now: Date;
  heartbeatAt: Date | null;
  stopped: boolean;
  /** Tasks waiting to run: needs_action + approved + retry_wait. */
  queued: number;
  running: number;
  /** Completions over health_check.error_rate_window. */
  recentCompleted: number;
  /** Dead-lettered tasks over health_check.error_rate_window. */
  recentFailed: number;
  lastCompletionAt: Date | null;
  oldestQueuedAt: Date | null;
  oldestApprovalRequestedAt: Date | null;
  /** Spend over the rolling 24 h budget window; absent where the caller does not track it. */
  budget?: { spentUsd: number; dailyUsd: number | null; exhausted: string | null };
}

export interface HealthCheck {
  name: string;
  status: HealthStatus;
  value: number | null;
  threshold: number;
  message: string;
}

export interface HealthReport {
  status: HealthStatus;
  checks: HealthCheck[];
}

/** Finished runs below which an error rate is too noisy to call the orchestrator unhealthy (1 of 2 is 50 %). */
export const MIN_ERROR_RATE_SAMPLES = 5;
export const BACKLOG_UNHEALTHY_FACTOR = 5;
export const ERROR_RATE_UNHEALTHY_FACTOR = 3;
/** Half the runs failing is broken whatever the configured tolerance, as long as that tolerance is below it. */
export const ERROR_RATE_UNHEALTHY_CEILING = 0.5;

const RANK: Readonly<Record<HealthStatus, number>> = { healthy: 0, degraded: 1, unhealthy: 2 };

export function worstStatus(statuses: Iterable<HealthStatus>): HealthStatus {
  let worst: HealthStatus = 'healthy';
  for (const s of statuses) if (RANK[s] > RANK[worst]) worst = s;
  return worst;
}

/** 0 healthy, 1 degraded, 2 unhealthy — the Nagios plugin convention (0 OK, 1 WARNING, 2 CRITICAL). */
export function healthExitCode(status: HealthStatus): 0 | 1 | 2 {
  return RANK[status] as 0 | 1 | 2;
}

/** Seconds from `then` to `now`, never negative: a clock a little ahead on the writer's side is not an age. */
function ageSeconds(now: Date, then: Date): number {
  return Math.max(0, (now.getTime() - then.getTime()) / 1000);
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function percent(x: number): string {
  return `${round6(x * 100).toFixed(1).replace(/\.0$/, '')}%`;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function schedulerCheck(input: HealthInput, config: Config): HealthCheck {
  const threshold = config.health_check.max_heartbeat_age;
  if (input.heartbeatAt === null) {
    return { name: 'scheduler', status: 'unhealthy', value: null, threshold,
      message: 'No scheduler heartbeat has ever been recorded; the scheduler is not running.' };
  }
  const age = ageSeconds(input.now, input.heartbeatAt);
  if (age > threshold) {
    return { name: 'scheduler', status: 'unhealthy', value: age, threshold,
      message: `Last scheduler heartbeat was ${formatSeconds(age)} ago, older than the limit of ${formatSeconds(threshold)}.` };
  }
  return { name: 'scheduler', status: 'healthy', value: age, threshold,
    message: `Last scheduler heartbeat was ${formatSeconds(age)} ago, within the limit of ${formatSeconds(threshold)}.` };
}

function backlogCheck(input: HealthInput, config: Config): HealthCheck {
  const threshold = config.health_check.max_backlog;
  const queued = input.queued;
  const waiting = plural(queued, 'task', 'tasks');
  if (queued > BACKLOG_UNHEALTHY_FACTOR * threshold) {
    return { name: 'backlog', status: 'unhealthy', value: queued, threshold,
      message: `${waiting} waiting, more than ${BACKLOG_UNHEALTHY_FACTOR}× the limit of ${threshold}.` };
  }
  if (queued > threshold) {
    return { name: 'backlog', status: 'degraded', value: queued, threshold,
      message: `${waiting} waiting, above the limit of ${threshold}.` };
  }
  return { name: 'backlog', status: 'healthy', value: queued, threshold,
    message: `${waiting} waiting, within the limit of ${threshold}.` };
}

function errorRateCheck(input: HealthInput, config: Config): HealthCheck {
  const { max_error_rate: threshold, error_rate_window: windowSeconds } = config.health_check;
  const failed = Math.max(0, input.recentFailed);
  const finished = Math.max(0, input.recentCompleted) + failed;
  const rate = finished === 0 ? 0 : round6(failed / finished);
  const what = `${failed} of ${plural(finished, 'finished run', 'finished runs')} failed in the last ${formatSeconds(windowSeconds)} (${percent(rate)})`;
  // Unhealthy only ever escalates a breach: a configured tolerance above the ceiling is the operator's call.
  if (rate > threshold) {
    const severe = rate > round6(ERROR_RATE_UNHEALTHY_FACTOR * threshold) || rate >= ERROR_RATE_UNHEALTHY_CEILING;
    if (severe && finished >= MIN_ERROR_RATE_SAMPLES) {
      return { name: 'error_rate', status: 'unhealthy', value: rate, threshold,
        message: `${what}, far above the limit of ${percent(threshold)}.` };
    }
    const caveat = severe ? `; only ${finished} runs, too few to call it unhealthy` : '';
    return { name: 'error_rate', status: 'degraded', value: rate, threshold,
      message: `${what}, above the limit of ${percent(threshold)}${caveat}.` };
  }
  return { name: 'error_rate', status: 'healthy', value: rate, threshold,
    message: `${what}, within the limit of ${percent(threshold)}.` };
}

/**
 * Idle time counts only while work is waiting, and only from when it started waiting: a quiet night with an empty
 * queue is not a fault, and a task queued a minute ago after a quiet day has not waited a day. So the clock runs from
 * the later of the last completion and the arrival of the oldest waiting task.
 */
function idleCheck(input: HealthInput, config: Config): HealthCheck {
  const threshold = config.health_check.max_idle_time;
  const sinceCompletion = input.lastCompletionAt === null ? null : ageSeconds(input.now, input.lastCompletionAt);
  if (input.queued <= 0 || input.stopped) {
    const why = input.stopped ? 'the orchestrator is stopped' : 'no work is waiting';
    return { name: 'idle', status: 'healthy', value: sinceCompletion, threshold,
      message: `Idle time does not count because ${why}.` };
  }
  const starts = [input.lastCompletionAt, input.oldestQueuedAt].filter((d): d is Date => d !== null);
  if (starts.length === 0) {
    return { name: 'idle', status: 'healthy', value: null, threshold,
      message: `${plural(input.queued, 'task is', 'tasks are')} waiting; no completion or queue time is known yet.` };
  }
  const from = new Date(Math.max(...starts.map((d) => d.getTime())));
  const idle = ageSeconds(input.now, from);
  const detail = sinceCompletion === null
    ? `no task has completed since work started waiting ${formatSeconds(idle)} ago`
    : `nothing has completed for ${formatSeconds(idle)} while work was waiting`;
  if (idle > threshold) {
    return { name: 'idle', status: 'degraded', value: idle, threshold,
      message: `${plural(input.queued, 'task is', 'tasks are')} waiting and ${detail}, above the limit of ${formatSeconds(threshold)}.` };
  }
  return { name: 'idle', status: 'healthy', value: idle, threshold,
    message: `${plural(input.queued, 'task is', 'tasks are')} waiting and ${detail}, within the limit of ${formatSeconds(threshold)}.` };
}

function approvalAgeCheck(input: HealthInput, config: Config): HealthCheck {
  const threshold = config.health_check.max_approval_age;
  if (input.oldestApprovalRequestedAt === null) {
    return { name: 'approval_age', status: 'healthy', value: null, threshold,
      message: 'No approval requests are pending.' };
  }
  const age = ageSeconds(input.now, input.oldestApprovalRequestedAt);
  if (age > threshold) {
    return { name: 'approval_age', status: 'degraded', value: age, threshold,
      message: `The oldest pending approval was requested ${formatSeconds(age)} ago, above the limit of ${formatSeconds(threshold)}.` };
  }
  return { name: 'approval_age', status: 'healthy', value: age, threshold,
    message: `The oldest pending approval was requested ${formatSeconds(age)} ago, within the limit of ${formatSeconds(threshold)}.` };
}

function stopFlagCheck(input: HealthInput): HealthCheck {
  return input.stopped
    ? { name: 'stop_flag', status: 'degraded', value: 1, threshold: 0,
      message: 'The stop flag is set; no new tasks will start until it is cleared.' }
    : { name: 'stop_flag', status: 'healthy', value: 0, threshold: 0, message: 'The stop flag is not set.' };
}

/**
 * A spent daily budget stops dispatch as surely as the stop flag, so it is degraded the same way: nothing is broken,
 * but nothing new starts until spend leaves the window or the budget is raised.
 */
function budgetCheck(budget: NonNullable<HealthInput['budget']>): HealthCheck {
  const spent = Math.round(budget.spentUsd * 100) / 100;
  if (budget.dailyUsd === null) {
    return { name: 'budget', status: 'healthy', value: spent, threshold: 0, message: `No daily budget is set ($${spent.toFixed(2)} spent in the last 24h).` };
  }
  return budget.exhausted !== null
    ? { name: 'budget', status: 'degraded', value: spent, threshold: budget.dailyUsd, message: `${budget.exhausted}; no new task starts.` }
    : { name: 'budget', status: 'healthy', value: spent, threshold: budget.dailyUsd, message: `$${spent.toFixed(2)} spent in the last 24h, within the daily budget of $${budget.dailyUsd.toFixed(2)}.` };
}

export function evaluateHealth(input: HealthInput, config: Config): HealthReport {
  const checks = [
    schedulerCheck(input, config),
    backlogCheck(input, config),
    errorRateCheck(input, config),
    idleCheck(input, config),
    approvalAgeCheck(input, config),
    stopFlagCheck(input),
    ...(input.budget !== undefined ? [budgetCheck(input.budget)] : []),
  ];
  return { status: worstStatus(checks.map((c) => c.status)), checks };
}
