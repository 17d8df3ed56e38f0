import { approvalDecision } from '../core/approval.ts';
import { BUDGET_WINDOW_MS, budgetState } from '../core/budget.ts';
import type { Config } from '../core/config.ts';
import { evaluateHealth, type HealthReport } from '../core/health.ts';
import { averageCostByType, chooseBucketMs, computeMetrics } from '../core/metrics.ts';
import { formatExposition } from '../core/prometheus.ts';
import { buildQueueView, type QueueCandidate } from '../core/queue-view.ts';
import { compareRanked, scoreTask } from '../core/scoring.ts';
import { RUNNING_STATES, TASK_STATES, TERMINAL_STATES, allowedEvents, type TaskState } from '../core/state-machine.ts';
import type { HistoryEvent } from '../core/history.ts';
import type { ControlState, TaskRecord, TaskStore } from '../core/store.ts';
import { TaskNotFoundError } from '../core/store.ts';
import type { TaskDoc } from '../core/task.ts';
import type {
  DashboardReport,
  HealthReportWire,
  InvalidNote,
  MetricsReport,
  QueueReport,
  QueueRowWire,
  RecentCompletion,
  ResourceUsage,
  StatusReport,
  TaskDetail,
} from './contracts.ts';
import { fteMetricFamilies, HistoryTotalsCache } from './prometheus-metrics.ts';
import { historyToWire, runToWire, taskToWire } from './wire.ts';

/**
 * The read side of fte, computed from the store port and the settings with the pure core functions. The HTTP API (both
 * runtimes) and the CLI (when no API is up) call these same functions, so a figure never differs by where it was read.
 * What only one runtime can see — the vault's stop file and unadmitted notes, local processes — comes in through
 * optional hooks of ReadSources.
 */

export interface NoteScan {
  docs: TaskDoc[];
  invalid: InvalidNote[];
}

export interface ReadSources {
  readonly store: TaskStore;
  readonly config: Config;
  readonly clock: () => Date;
  /** Where the tasks live, for the status report: the vault folder, the stack name. */
  readonly location: string;
  /** Whether the stop file exists (local runtime). */
  readonly stopFilePresent?: () => boolean;
  /** Whether the orchestrator process runs; without this hook a heartbeat younger than the limit counts as running. */
  readonly orchestratorProcess?: () => { running: boolean; pid: number | null };
  /** CPU and memory of the orchestrator and its agents; without it metrics report resources as unavailable. */
  readonly resources?: () => ResourceUsage;
  /** Notes in Needs_Action/ that the store does not know yet (local runtime: no orchestrator has admitted them). */
  readonly unadmittedNotes?: (known: ReadonlySet<string>) => NoteScan;
  /** Where a task's note is (local runtime). */
  readonly taskLocation?: (record: TaskRecord) => { folder: string; notePath: string } | null;
}

export interface TimeWindow {
  since: Date;
  until: Date;
}

/** Waiting to run, as the backlog health check and the queue-depth gauge count it. */
export const QUEUED_STATES: readonly TaskState[] = ['needs_action', 'approved', 'retry_wait'];
/** How far back finished runs inform the queue's ETA, and how many of the latest count. */
export const ETA_LOOKBACK_MS = 24 * 3_600_000;
export const ETA_SAMPLE_LIMIT = 200;
export const DASHBOARD_QUEUE_HEAD = 10;
export const DEFAULT_WINDOW_MS = 24 * 3_600_000;

/** One consistent look at the store, shared by the parts of a composite report (the dashboard). */
interface Snapshot {
  now: Date;
  tasks: TaskRecord[];
  control: ControlState;
  stopFile: boolean;
  notes: () => NoteScan;
  /**
   * History events from `sinceMs` up to and including now. The widest range asked for is read once and narrower ones
   * are cut from it, so a dashboard (metrics window, ETA, budget, error rate) reads the history once, not five times.
   */
  history: (sinceMs: number) => Promise<HistoryEvent[]>;
}

async function snapshot(src: ReadSources): Promise<Snapshot> {
  const now = src.clock();
  const [tasks, control] = await Promise.all([src.store.list(), src.store.control()]);
  let scanned: NoteScan | null = null;
  let cached: { sinceMs: number; events: HistoryEvent[] } | null = null;
  return {
    now,
    tasks,
    control,
    stopFile: src.stopFilePresent?.() ?? false,
    notes: () => {
      scanned ??= src.unadmittedNotes?.(new Set(tasks.map((t) => t.id))) ?? { docs: [], invalid: [] };
      return scanned;
    },
    history: async (sinceMs) => {
      if (cached !== null && sinceMs >= cached.sinceMs) {
        const from = sinceMs;
        return sinceMs === cached.sinceMs ? cached.events : cached.events.filter((e) => e.at >= from);
      }
      // until is exclusive; +1 ms includes an event stamped exactly now.
      const events = await src.store.history({ since: new Date(sinceMs), until: new Date(now.getTime() + 1) });
      cached = { sinceMs, events };
      return events;
    },
  };
}

function ageSeconds(now: Date, then: Date): number {
  return Math.max(0, Math.round((now.getTime() - then.getTime()) / 1000));
}

function stateCounts(tasks: readonly TaskRecord[]): Record<TaskState, number> {
  const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
  for (const t of tasks) counts[t.state] += 1;
  return counts;
}

// ---------------------------------------------------------------------------------------------------------------
// Status

async function budgetFrom(src: ReadSources, snap: Snapshot): Promise<StatusReport['budget']> {
  const { now } = snap;
  const state = budgetState(await snap.history(now.getTime() - BUDGET_WINDOW_MS), src.config, now);
  return {
    spentUsd: Math.round(state.spentUsd * 1e6) / 1e6,
    spentByType: state.spentByType,
    dailyUsd: state.dailyUsd,
    exhausted: state.exhausted,
    exhaustedTypes: state.exhaustedTypes,
    freesAt: state.freesAt === null ? null : new Date(state.freesAt).toISOString(),
  };
}

async function statusFrom(src: ReadSources, snap: Snapshot): Promise<StatusReport> {
  const { now, tasks, control } = snap;
  const heartbeatAge = control.heartbeatAt === null ? null : ageSeconds(now, control.heartbeatAt);
  const process = src.orchestratorProcess?.() ?? {
    running: heartbeatAge !== null && heartbeatAge <= src.config.health_check.max_heartbeat_age,
    pid: null,
  };
  const stopName = src.config.orchestrator.stop_hook_file;
  return {
    generatedAt: now.toISOString(),
    vault: src.location,
    orchestrator: {
      running: process.running,
      pid: process.running ? process.pid : null,
      heartbeatAt: control.heartbeatAt?.toISOString() ?? null,
      heartbeatAgeSeconds: heartbeatAge,
    },
    stop: {
      stopped: control.stopRequested || snap.stopFile,
      reason: snap.stopFile ? `stop file ${stopName}` : control.stopReason,
      stopFile: snap.stopFile,
    },
    counts: stateCounts(tasks),
    running: tasks
      .filter((t) => RUNNING_STATES.has(t.state))
      .map((t) => ({ id: t.id, title: t.title, state: t.state, attempt: t.attempts, elapsedSeconds: ageSeconds(now, t.stateSince) })),
    pendingApproval: tasks
      .filter((t) => t.state === 'pending_approval')
      .map((t) => ({ id: t.id, title: t.title, waitingSeconds: ageSeconds(now, t.stateSince), reasons: [...t.approvalReasons] })),
    budget: await budgetFrom(src, snap),
  };
}

export async function readStatus(src: ReadSources): Promise<StatusReport> {
  return statusFrom(src, await snapshot(src));
}

// ---------------------------------------------------------------------------------------------------------------
// Queue

/** Durations of the latest successful runs, for the ETA model of lib/core/queue-view.ts. */
async function recentDurations(snap: Snapshot): Promise<number[]> {
  const events = await snap.history(snap.now.getTime() - ETA_LOOKBACK_MS);
  const done = events.filter((e) => e.to === 'done' && e.durationMs !== undefined);
  return done.slice(-ETA_SAMPLE_LIMIT).map((e) => e.durationMs as number);
}

type Ranked = QueueCandidate & { state: QueueRowWire['state']; created: Date };

/**
 * The runnable tasks in the order the local engine dispatches them (Engine.runnable): approved work first — a person
 * is waiting on it — then score, created, id. Notes nobody admitted yet rank as needs_action would.
 */
function rankRunnable(src: ReadSources, snap: Snapshot): Ranked[] {
  const { now, tasks } = snap;
  const { config } = src;
  const ranked: Ranked[] = [];
  for (const r of tasks) {
    if (r.state !== 'needs_action' && r.state !== 'approved') continue;
    const score = scoreTask(r, now, config);
    ranked.push({
      id: r.id,
      title: r.title,
      type: r.type,
      score: score.score,
      breakdown: score.breakdown,
      queuedAt: r.created,
      created: r.created,
      approvalRequired: r.approvalRequired,
      approvalReasons: r.approvalReasons,
      state: r.state,
    });
  }
  for (const doc of snap.notes().docs) {
    const score = scoreTask(doc, now, config);
    const approval = approvalDecision(doc, config);
    ranked.push({
      id: doc.id,
      title: doc.title,
      type: doc.type,
      score: score.score,
      breakdown: score.breakdown,
      queuedAt: doc.created,
      created: doc.created,
      approvalRequired: approval.required,
      approvalReasons: approval.reasons,
      state: null,
    });
  }
  ranked.sort((a, b) => {
    const aa = a.state === 'approved' ? 0 : 1;
    const bb = b.state === 'approved' ? 0 : 1;
    return aa - bb || compareRanked(a, b);
  });
  return ranked;
}

function queueFrom(src: ReadSources, snap: Snapshot, durations: readonly number[], costByType: Readonly<Record<string, number>>): QueueReport {
  const ranked = rankRunnable(src, snap);
  const running = snap.tasks.filter((t) => RUNNING_STATES.has(t.state)).length;
  const concurrency = src.config.orchestrator.max_concurrent_tasks;
  const rows = buildQueueView({ ranked, now: snap.now, running, concurrency, recentDurationsMs: durations });
  return {
    generatedAt: snap.now.toISOString(),
    tasks: rows.map((row, i) => ({
      position: row.position,
      id: row.id,
      title: row.title,
      type: row.type,
      score: row.score,
      breakdown: { ...row.breakdown },
      waitSeconds: row.waitSeconds,
      etaSeconds: row.etaSeconds,
      approvalRequired: row.approvalRequired,
      approvalReasons: [...row.approvalReasons],
      state: (ranked[i] as Ranked).state,
      estimatedCostUsd: costByType[row.type] ?? null,
    })),
    invalid: snap.notes().invalid,
    retrying: snap.tasks
      .filter((t) => t.state === 'retry_wait')
      .sort((a, b) => (a.retryAt?.getTime() ?? 0) - (b.retryAt?.getTime() ?? 0))
      .map((t) => ({ id: t.id, title: t.title, attempts: t.attempts, retryAt: t.retryAt?.toISOString() ?? null })),
    running,
    concurrency,
    estimatedCostUsd: rows.reduce((sum, row) => sum + (costByType[row.type] ?? 0), 0),
  };
}

/** Recent per-type average cost of a finished task (24 h), for the queue's estimate of what waits. */
async function recentCostByType(snap: Snapshot): Promise<Record<string, number>> {
  return averageCostByType(await snap.history(snap.now.getTime() - DEFAULT_WINDOW_MS));
}

export async function readQueue(src: ReadSources): Promise<QueueReport> {
  const snap = await snapshot(src);
  return queueFrom(src, snap, await recentDurations(snap), await recentCostByType(snap));
}

// ---------------------------------------------------------------------------------------------------------------
// Metrics

export function unavailableResources(now: Date): ResourceUsage {
  return { sampledAt: now.toISOString(), available: false, orchestrator: null, agents: [], totalCpuSeconds: 0, totalRssBytes: 0 };
}

function metricsFrom(src: ReadSources, events: readonly HistoryEvent[], window: TimeWindow): MetricsReport {
  const bucketMs = chooseBucketMs(window.since, window.until);
  // computeMetrics keeps to [since, until) itself, so a wider list of events is fine.
  const m = computeMetrics(events, { ...window, bucketMs });
  return {
    ...m,
    bucketSeconds: bucketMs / 1000,
    resources: src.resources?.() ?? unavailableResources(src.clock()),
  };
}

export async function readMetrics(src: ReadSources, window: TimeWindow): Promise<MetricsReport> {
  return metricsFrom(src, await src.store.history(window), window);
}

// ---------------------------------------------------------------------------------------------------------------
// Health

async function healthFrom(src: ReadSources, snap: Snapshot): Promise<HealthReport> {
  const { now, tasks, control } = snap;
  const { config } = src;
  const windowStart = new Date(now.getTime() - config.health_check.error_rate_window * 1000);
  let recentCompleted = 0;
  let recentFailed = 0;
  for (const e of await snap.history(windowStart.getTime())) {
    if (e.to === 'done') recentCompleted++;
    else if (e.to === 'failed') recentFailed++;
  }
  let queued = 0;
  let running = 0;
  let lastCompletion: number | null = null;
  let oldestQueued: number | null = null;
  let oldestApproval: number | null = null;
  for (const t of tasks) {
    if (QUEUED_STATES.includes(t.state)) {
      queued++;
      // `created` is the admission time: how long the task has been waiting for fte, retries included.
      oldestQueued = Math.min(oldestQueued ?? Infinity, t.created.getTime());
    } else if (RUNNING_STATES.has(t.state)) {
      running++;
    } else if (t.state === 'done') {
      // done is terminal, so stateSince is when the task completed.
      lastCompletion = Math.max(lastCompletion ?? -Infinity, t.stateSince.getTime());
    } else if (t.state === 'pending_approval') {
      oldestApproval = Math.min(oldestApproval ?? Infinity, t.stateSince.getTime());
    }
  }
  // Notes nobody admitted are waiting work too. Their own `created` is not counted as queue time: a note can claim any
  // date, and a back-dated one would make the idle check fire for a queue that is minutes old.
  queued += snap.notes().docs.length;
  return evaluateHealth(
    {
      now,
      heartbeatAt: control.heartbeatAt,
      stopped: control.stopRequested || snap.stopFile,
      queued,
      running,
      recentCompleted,
      recentFailed,
      lastCompletionAt: lastCompletion === null ? null : new Date(lastCompletion),
      oldestQueuedAt: oldestQueued === null ? null : new Date(oldestQueued),
      oldestApprovalRequestedAt: oldestApproval === null ? null : new Date(oldestApproval),
      budget: await budgetFrom(src, snap),
    },
    config,
  );
}

function healthToWire(report: HealthReport, now: Date): HealthReportWire {
  return { generatedAt: now.toISOString(), status: report.status, checks: report.checks.map((c) => ({ ...c })) };
}

export async function readHealth(src: ReadSources): Promise<HealthReportWire> {
  const snap = await snapshot(src);
  return healthToWire(await healthFrom(src, snap), snap.now);
}

// ---------------------------------------------------------------------------------------------------------------
// Dashboard

function recentFrom(src: ReadSources, snap: Snapshot, durations: ReadonlyMap<string, number>): RecentCompletion[] {
  return snap.tasks
    .filter((t) => TERMINAL_STATES.has(t.state))
    .sort((a, b) => b.stateSince.getTime() - a.stateSince.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, src.config.dashboard.max_recent_tasks)
    .map((t) => ({
      id: t.id,
      title: t.title,
      type: t.type,
      state: t.state,
      finishedAt: t.stateSince.toISOString(),
      attempts: t.attempts,
      costUsd: t.costUsd,
      durationMs: durations.get(t.id) ?? null,
      detail: t.state === 'failed' && t.lastError !== null ? `${t.lastError.class}: ${t.lastError.message}` : t.reason,
    }));
}

/** Status, health, the head of the queue, the latest finished tasks and the metrics of a window, in one call. */
export async function readDashboard(src: ReadSources, window: TimeWindow): Promise<DashboardReport> {
  const snap = await snapshot(src);
  const nowMs = snap.now.getTime();
  // The widest range any part needs, read once: the metrics window, and 24 h for the ETA, budget and durations.
  const events = await snap.history(Math.min(window.since.getTime(), nowMs - DEFAULT_WINDOW_MS));
  const metrics = metricsFrom(src, window.until.getTime() > nowMs ? await src.store.history(window) : events, window);
  const health = await healthFrom(src, snap);
  const queue = queueFrom(src, snap, await recentDurations(snap), await recentCostByType(snap));
  // The run that ended each task, from the last 24 h of history (older completions show no duration).
  const finishing = new Map<string, number>();
  for (const e of await snap.history(nowMs - DEFAULT_WINDOW_MS)) {
    if (TERMINAL_STATES.has(e.to) && e.durationMs !== undefined) finishing.set(e.taskId, e.durationMs);
  }
  return {
    generatedAt: snap.now.toISOString(),
    status: await statusFrom(src, snap),
    health: healthToWire(health, snap.now),
    queue: {
      total: queue.tasks.length,
      head: queue.tasks.slice(0, DASHBOARD_QUEUE_HEAD),
      invalid: queue.invalid.length,
      retrying: queue.retrying.length,
    },
    recent: recentFrom(src, snap, finishing),
    metrics,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Task detail

export async function readTaskDetail(src: ReadSources, id: string): Promise<TaskDetail> {
  const task = await src.store.get(id);
  if (task === null) throw new TaskNotFoundError(id);
  const [runs, history] = await Promise.all([
    src.store.runs(id),
    // The store port has no per-task history query; the whole history is filtered. Fine for one task on demand.
    src.store.history({ since: new Date(0), until: new Date(8.64e15) }),
  ]);
  const location = src.taskLocation?.(task) ?? null;
  return {
    task: taskToWire(task),
    folder: location?.folder ?? null,
    notePath: location?.notePath ?? null,
    runs: runs.map(runToWire),
    history: history.filter((e) => e.taskId === id).map(historyToWire),
    allowedEvents: allowedEvents(task),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Prometheus

/** The Prometheus exposition page. `totals` keeps the counters incremental across scrapes of one process. */
export async function readPrometheus(src: ReadSources, totals: HistoryTotalsCache): Promise<string> {
  const snap = await snapshot(src);
  const counts = stateCounts(snap.tasks);
  // The 24 h budget window first: the health check's 1 h window is then cut from it rather than read again.
  const budget = await budgetFrom(src, snap);
  const health = await healthFrom(src, snap);
  let oldestQueued: number | null = null;
  let oldestApproval: number | null = null;
  for (const t of snap.tasks) {
    if (QUEUED_STATES.includes(t.state)) oldestQueued = Math.min(oldestQueued ?? Infinity, t.created.getTime());
    if (t.state === 'pending_approval') oldestApproval = Math.min(oldestApproval ?? Infinity, t.stateSince.getTime());
  }
  const ageOf = (ms: number | null): number | null => (ms === null ? null : Math.max(0, (snap.now.getTime() - ms) / 1000));
  return formatExposition(
    fteMetricFamilies({
      counts,
      queued: QUEUED_STATES.reduce((n, s) => n + counts[s], 0),
      running: [...RUNNING_STATES].reduce((n, s) => n + counts[s], 0),
      oldestQueuedAgeSeconds: ageOf(oldestQueued),
      oldestApprovalAgeSeconds: ageOf(oldestApproval),
      stopped: snap.control.stopRequested || snap.stopFile,
      heartbeatAgeSeconds: ageOf(snap.control.heartbeatAt?.getTime() ?? null),
      totals: await totals.read(src.store, snap.now),
      health,
      budgetSpentUsd: budget.spentUsd,
      budgetExhausted: budget.exhausted !== null,
    }),
  );
}
