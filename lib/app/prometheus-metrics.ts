import type { HealthReport, HealthStatus } from '../core/health.ts';
import { eventCode, recycleColumns, stateCode, type HistoryColumns } from '../core/history-columns.ts';
import type { HistoryEvent } from '../core/history.ts';
import {
  addBuckets,
  emptyBuckets,
  observe,
  toHistogramSample,
  type BucketCounts,
  type MetricFamily,
} from '../core/prometheus.ts';
import { TASK_EVENT_TYPES, TASK_STATES, type TaskEventType, type TaskState } from '../core/state-machine.ts';
import type { TaskStore } from '../core/store.ts';

/**
 * fte's figures as Prometheus metric families. Gauges are the state now (queue depth, ages, the stop flag); counters
 * are totals over the whole history in the store, so they survive an orchestrator restart and are the same whichever
 * process serves the scrape (Prometheus treats a drop, e.g. after history is pruned, as a counter reset).
 */

/** Run durations in seconds: agent runs take seconds to an hour, so the buckets span that range. */
export const RUN_DURATION_BUCKETS_S: readonly number[] = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];

/** How an agent run ended, by the event that recorded its end. */
export type RunOutcome = 'succeeded' | 'failed' | 'planned' | 'interrupted';
export const RUN_OUTCOMES: readonly RunOutcome[] = ['succeeded', 'failed', 'planned', 'interrupted'];

export interface HistoryTotals {
  /** Planning and execution runs started. */
  started: number;
  /** Tasks that reached done. */
  succeeded: number;
  /** Tasks dead-lettered to failed (not retried attempts). */
  failed: number;
  /** Failed attempts that will be retried. */
  retried: number;
  costUsd: number;
  durations: Record<RunOutcome, BucketCounts>;
}

export function emptyTotals(): HistoryTotals {
  return {
    started: 0,
    succeeded: 0,
    failed: 0,
    retried: 0,
    costUsd: 0,
    durations: {
      succeeded: emptyBuckets(RUN_DURATION_BUCKETS_S),
      failed: emptyBuckets(RUN_DURATION_BUCKETS_S),
      planned: emptyBuckets(RUN_DURATION_BUCKETS_S),
      interrupted: emptyBuckets(RUN_DURATION_BUCKETS_S),
    },
  };
}

function outcomeOf(event: TaskEventType): RunOutcome | null {
  switch (event) {
    case 'succeed':
      return 'succeeded';
    case 'fail':
    case 'dead_letter':
      return 'failed';
    case 'plan_ready':
      return 'planned';
    case 'interrupt':
      return 'interrupted';
    default:
      return null;
  }
}

export function addEvent(totals: HistoryTotals, e: HistoryEvent): void {
  if (e.event === 'plan' || e.event === 'execute') totals.started += 1;
  if (e.to === 'done') totals.succeeded += 1;
  else if (e.to === 'failed') totals.failed += 1;
  else if (e.to === 'retry_wait') totals.retried += 1;
  if (e.costUsd !== undefined && Number.isFinite(e.costUsd) && e.costUsd > 0) totals.costUsd += e.costUsd;
  const outcome = outcomeOf(e.event);
  if (outcome !== null && e.durationMs !== undefined && Number.isFinite(e.durationMs) && e.durationMs >= 0) {
    observe(totals.durations[outcome], e.durationMs / 1000);
  }
}

/** Per TASK_EVENT_TYPES index, the outcome of the run the event ends, if it ends one. */
const OUTCOME_BY_EVENT_CODE: readonly (RunOutcome | null)[] = TASK_EVENT_TYPES.map(outcomeOf);
const PLAN = eventCode('plan');
const EXECUTE = eventCode('execute');
const DONE = stateCode('done');
const FAILED = stateCode('failed');
const RETRY_WAIT = stateCode('retry_wait');

/**
 * addEvent over every row of `columns`, in their order: the same totals to the bit (sums are added in the same order),
 * without an object per event — the first scrape of a process folds in the whole history, a year of it is 300k events.
 */
export function addColumns(totals: HistoryTotals, columns: HistoryColumns): void {
  const { event, to, costUsd, durationMs } = columns;
  let { started, succeeded, failed, retried, costUsd: cost } = totals;
  for (let i = 0; i < columns.length; i++) {
    const code = event[i] as number;
    if (code === PLAN || code === EXECUTE) started += 1;
    const state = to[i] as number;
    if (state === DONE) succeeded += 1;
    else if (state === FAILED) failed += 1;
    else if (state === RETRY_WAIT) retried += 1;
    const c = costUsd[i] as number;
    // NaN (no cost) fails both tests, as an absent cost fails them in addEvent.
    if (Number.isFinite(c) && c > 0) cost += c;
    const outcome = OUTCOME_BY_EVENT_CODE[code] ?? null;
    const d = durationMs[i] as number;
    if (outcome !== null && Number.isFinite(d) && d >= 0) observe(totals.durations[outcome], d / 1000);
  }
  totals.started = started;
  totals.succeeded = succeeded;
  totals.failed = failed;
  totals.retried = retried;
  totals.costUsd = cost;
}

function cloneTotals(t: HistoryTotals): HistoryTotals {
  const copy = emptyTotals();
  copy.started = t.started;
  copy.succeeded = t.succeeded;
  copy.failed = t.failed;
  copy.retried = t.retried;
  copy.costUsd = t.costUsd;
  for (const outcome of RUN_OUTCOMES) addBuckets(copy.durations[outcome], t.durations[outcome]);
  return copy;
}

/**
 * Counter totals kept incrementally, so a scrape reads only the history written since the previous one instead of
 * every event ever. Events older than `settleMs` are folded into a running sum once; the recent tail is re-read on each
 * scrape, because another process (the CLI approving a task, a second writer in the cloud) may commit an event stamped
 * a moment before the previous scrape's `now`. An event committed more than `settleMs` after its own timestamp would
 * be missed; writers stamp events with the time of the write, so the margin is generous.
 */
export class HistoryTotalsCache {
  private settledUntil = 0;
  private readonly settled = emptyTotals();
  /** Settling in progress: two scrapes served at once (an HA pair of Prometheus servers) must not both add a range. */
  private settling: Promise<void> = Promise.resolve();

  constructor(private readonly settleMs = 5 * 60_000) {}

  async read(store: TaskStore, now: Date): Promise<HistoryTotals> {
    const nowMs = now.getTime();
    await this.settle(store, nowMs - this.settleMs);
    const totals = cloneTotals(this.settled);
    // until is exclusive; +1 ms includes an event stamped exactly now.
    await fold(store, totals, this.settledUntil, nowMs + 1);
    return totals;
  }

  private settle(store: TaskStore, settleTo: number): Promise<void> {
    const done = this.settling.then(async () => {
      if (settleTo <= this.settledUntil) return;
      await fold(store, this.settled, this.settledUntil, settleTo);
      this.settledUntil = settleTo;
    });
    // A failed read adds nothing (fold adds only once it has every row); the next scrape tries the range again.
    this.settling = done.catch(() => undefined);
    return done;
  }
}

async function fold(store: TaskStore, totals: HistoryTotals, sinceMs: number, untilMs: number): Promise<void> {
  const columns = await store.historyColumns({ since: new Date(sinceMs), until: new Date(untilMs) });
  addColumns(totals, columns);
  recycleColumns(columns);
}

export interface PrometheusInput {
  counts: Readonly<Record<TaskState, number>>;
  /** needs_action + approved + retry_wait, as the backlog health check counts it. */
  queued: number;
  running: number;
  /** null when nothing waits: exported as 0, the age of an empty queue. */
  oldestQueuedAgeSeconds: number | null;
  oldestApprovalAgeSeconds: number | null;
  stopped: boolean;
  /** null when no heartbeat was ever recorded: exported as +Inf, infinitely old, so `> 60` alerts fire. */
  heartbeatAgeSeconds: number | null;
  totals: HistoryTotals;
  health: HealthReport;
  /** Spend in the rolling 24 h budget window, and whether a budget stops dispatch. */
  budgetSpentUsd: number;
  budgetExhausted: boolean;
}

const HEALTH_VALUE: Readonly<Record<HealthStatus, number>> = { healthy: 0, degraded: 1, unhealthy: 2 };

export function fteMetricFamilies(input: PrometheusInput): MetricFamily[] {
  const { totals } = input;
  return [
    {
      name: 'fte_tasks',
      help: 'Tasks in the store by state.',
      type: 'gauge',
      samples: TASK_STATES.map((state) => ({ labels: { state }, value: input.counts[state] })),
    },
    {
      name: 'fte_queue_depth',
      help: 'Tasks waiting to run: needs_action + approved + retry_wait.',
      type: 'gauge',
      samples: [{ value: input.queued }],
    },
    { name: 'fte_running_tasks', help: 'Tasks with an agent running (planning or executing).', type: 'gauge', samples: [{ value: input.running }] },
    {
      name: 'fte_oldest_queued_age_seconds',
      help: 'Age of the oldest task waiting to run; 0 when none waits.',
      type: 'gauge',
      samples: [{ value: input.oldestQueuedAgeSeconds ?? 0 }],
    },
    {
      name: 'fte_oldest_approval_age_seconds',
      help: 'Age of the oldest pending approval request; 0 when none is pending.',
      type: 'gauge',
      samples: [{ value: input.oldestApprovalAgeSeconds ?? 0 }],
    },
    { name: 'fte_stop_flag', help: '1 when dispatch is stopped (stop flag or stop file), else 0.', type: 'gauge', samples: [{ value: input.stopped ? 1 : 0 }] },
    {
      name: 'fte_heartbeat_age_seconds',
      help: 'Seconds since the scheduler last recorded a heartbeat; +Inf when it never did.',
      type: 'gauge',
      samples: [{ value: input.heartbeatAgeSeconds ?? Infinity }],
    },
    { name: 'fte_tasks_started_total', help: 'Agent runs started (planning and execution).', type: 'counter', samples: [{ value: totals.started }] },
    { name: 'fte_tasks_succeeded_total', help: 'Tasks that reached done.', type: 'counter', samples: [{ value: totals.succeeded }] },
    { name: 'fte_tasks_failed_total', help: 'Tasks dead-lettered to failed (retried attempts not included).', type: 'counter', samples: [{ value: totals.failed }] },
    { name: 'fte_tasks_retried_total', help: 'Failed attempts scheduled for a retry.', type: 'counter', samples: [{ value: totals.retried }] },
    { name: 'fte_cost_usd_total', help: 'Cost of every agent run, in US dollars.', type: 'counter', samples: [{ value: Math.round(totals.costUsd * 1e6) / 1e6 }] },
    {
      name: 'fte_run_duration_seconds',
      help: 'Wall time of agent runs, by how the run ended.',
      type: 'histogram',
      samples: RUN_OUTCOMES.map((outcome) => toHistogramSample(totals.durations[outcome], { outcome })),
    },
    {
      name: 'fte_budget_spent_usd',
      help: 'Spend of the rolling 24 h budget window, in US dollars.',
      type: 'gauge',
      samples: [{ value: input.budgetSpentUsd }],
    },
    {
      name: 'fte_budget_exhausted',
      help: '1 when budget.daily_usd stops dispatch, else 0.',
      type: 'gauge',
      samples: [{ value: input.budgetExhausted ? 1 : 0 }],
    },
    {
      name: 'fte_health_status',
      help: 'Overall health: 0 healthy, 1 degraded, 2 unhealthy.',
      type: 'gauge',
      samples: [{ value: HEALTH_VALUE[input.health.status] }],
    },
    {
      name: 'fte_health_check_status',
      help: 'Each health check: 0 healthy, 1 degraded, 2 unhealthy.',
      type: 'gauge',
      samples: input.health.checks.map((c) => ({ labels: { check: c.name }, value: HEALTH_VALUE[c.status] })),
    },
  ];
}
