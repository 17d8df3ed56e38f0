import { approvalDecision } from '../core/approval.ts';
import { BUDGET_WINDOW_MS, budgetState } from '../core/budget.ts';
import type { Config } from '../core/config.ts';
import { evaluateHealth, type HealthReport } from '../core/health.ts';
import { recycleColumns } from '../core/history-columns.ts';
import { averageCostByType, chooseBucketMs, computeMetricsFromColumns } from '../core/metrics.ts';
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

/** Which of `ids` the store holds a task for. */
export type KnownTasks = (ids: readonly string[]) => Promise<ReadonlySet<string>>;

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
  readonly unadmittedNotes?: (known: KnownTasks) => Promise<NoteScan>;
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

/** The states a task can still leave. Reads list these tasks in full; finished ones are only counted or sampled. */
const OPEN_STATES: readonly TaskState[] = TASK_STATES.filter((s) => !TERMINAL_STATES.has(s));

/**
 * One look at the store, shared by the parts of a composite report (the dashboard). It holds the open tasks only: a
 * year of use leaves 100k+ finished ones, and decoding them all made every refresh cost with the whole past.
 */
interface Snapshot {
  now: Date;
  /** The tasks in the open states this read lists (all of them unless it needs fewer), by created, then id. */
  open: TaskRecord[];
  control: ControlState;
  stopFile: boolean;
  /** Tasks per state, all states included. */
  counts: () => Promise<Record<TaskState, number>>;
  notes: () => Promise<NoteScan>;
  /**
   * History events from `sinceMs` up to and including now. The widest range asked for is read once and narrower ones
   * are cut from it, so a dashboard (metrics window, ETA, budget, error rate) reads the history once, not five times.
   */
  history: (sinceMs: number) => Promise<HistoryEvent[]>;
}

/** `fn` called at most once, on first use. */
function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | null = null;
  return () => (result ??= fn());
}

/** The store knows every open task listed; a note may also carry the name of a finished one, looked up by id. */
function knownTasks(store: TaskStore, open: readonly TaskRecord[]): KnownTasks {
  const openIds = new Set(open.map((t) => t.id));
  return async (ids) => {
    const known = new Set<string>();
    for (const id of ids) {
      if (openIds.has(id) || (await store.get(id)) !== null) known.add(id);
    }
    return known;
  };
}

async function snapshot(src: ReadSources, states: readonly TaskState[] = OPEN_STATES): Promise<Snapshot> {
  const now = src.clock();
  const [open, control] = await Promise.all([src.store.list({ states }), src.store.control()]);
  let cached: { sinceMs: number; events: HistoryEvent[] } | null = null;
  return {
    now,
    open,
    control,
    stopFile: src.stopFilePresent?.() ?? false,
    counts: once(() => src.store.stateCounts()),
    notes: once(async () => (await src.unadmittedNotes?.(knownTasks(src.store, open))) ?? { docs: [], invalid: [] }),
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
  const { now, open, control } = snap;
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
    counts: await snap.counts(),
    running: open
      .filter((t) => RUNNING_STATES.has(t.state))
      .map((t) => ({ id: t.id, title: t.title, state: t.state, attempt: t.attempts, elapsedSeconds: ageSeconds(now, t.stateSince) })),
    pendingApproval: open
      .filter((t) => t.state === 'pending_approval')
      .map((t) => ({ id: t.id, title: t.title, waitingSeconds: ageSeconds(now, t.stateSince), reasons: [...t.approvalReasons] })),
    budget: await budgetFrom(src, snap),
  };
}

/** What the status report lists task by task; the queue it only counts, so a long queue costs it nothing. */
const STATUS_STATES: readonly TaskState[] = [...RUNNING_STATES, 'pending_approval'];

export async function readStatus(src: ReadSources): Promise<StatusReport> {
  return statusFrom(src, await snapshot(src, STATUS_STATES));
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
async function rankRunnable(src: ReadSources, snap: Snapshot): Promise<Ranked[]> {
  const { now, open } = snap;
  const { config } = src;
  const ranked: Ranked[] = [];
  for (const r of open) {
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
  for (const doc of (await snap.notes()).docs) {
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

function runningCount(snap: Snapshot): number {
  return snap.open.filter((t) => RUNNING_STATES.has(t.state)).length;
}

/**
 * The queue rows of `ranked`, which may be just the head of the ranking: a row depends only on its position, so the
 * dashboard builds its ten without building (and encoding) the thousands behind them.
 */
function queueRows(
  src: ReadSources,
  snap: Snapshot,
  ranked: readonly Ranked[],
  durations: readonly number[],
  costByType: Readonly<Record<string, number>>,
): QueueRowWire[] {
  const running = runningCount(snap);
  const concurrency = src.config.orchestrator.max_concurrent_tasks;
  const rows = buildQueueView({ ranked, now: snap.now, running, concurrency, recentDurationsMs: durations });
  return rows.map((row, i) => ({
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
  }));
}

async function queueFrom(
  src: ReadSources,
  snap: Snapshot,
  durations: readonly number[],
  costByType: Readonly<Record<string, number>>,
): Promise<QueueReport> {
  const tasks = queueRows(src, snap, await rankRunnable(src, snap), durations, costByType);
  return {
    generatedAt: snap.now.toISOString(),
    tasks,
    invalid: (await snap.notes()).invalid,
    retrying: snap.open
      .filter((t) => t.state === 'retry_wait')
      .sort((a, b) => (a.retryAt?.getTime() ?? 0) - (b.retryAt?.getTime() ?? 0))
      .map((t) => ({ id: t.id, title: t.title, attempts: t.attempts, retryAt: t.retryAt?.toISOString() ?? null })),
    running: runningCount(snap),
    concurrency: src.config.orchestrator.max_concurrent_tasks,
    estimatedCostUsd: tasks.reduce((sum, row) => sum + (row.estimatedCostUsd ?? 0), 0),
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

/** The window's events come as columns (TaskStore.historyColumns): a month of them is a million, too many as objects. */
async function metricsFrom(src: ReadSources, window: TimeWindow): Promise<MetricsReport> {
  const bucketMs = chooseBucketMs(window.since, window.until);
  const columns = await src.store.historyColumns(window);
  const m = computeMetricsFromColumns(columns, { ...window, bucketMs });
  // Nothing else holds them: the next read refills the same memory instead of mapping ~30 MB anew for a month.
  recycleColumns(columns);
  return {
    ...m,
    bucketSeconds: bucketMs / 1000,
    resources: src.resources?.() ?? unavailableResources(src.clock()),
  };
}

export async function readMetrics(src: ReadSources, window: TimeWindow): Promise<MetricsReport> {
  return metricsFrom(src, window);
}

// ---------------------------------------------------------------------------------------------------------------
// Health

async function healthFrom(src: ReadSources, snap: Snapshot): Promise<HealthReport> {
  const { now, open, control } = snap;
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
  let oldestQueued: number | null = null;
  let oldestApproval: number | null = null;
  for (const t of open) {
    if (QUEUED_STATES.includes(t.state)) {
      queued++;
      // `created` is the admission time: how long the task has been waiting for fte, retries included.
      oldestQueued = Math.min(oldestQueued ?? Infinity, t.created.getTime());
    } else if (RUNNING_STATES.has(t.state)) {
      running++;
    } else if (t.state === 'pending_approval') {
      oldestApproval = Math.min(oldestApproval ?? Infinity, t.stateSince.getTime());
    }
  }
  // Notes nobody admitted are waiting work too. Their own `created` is not counted as queue time: a note can claim any
  // date, and a back-dated one would make the idle check fire for a queue that is minutes old.
  queued += (await snap.notes()).docs.length;
  // done is terminal, so the stateSince of the latest done task is when the last completion happened.
  const [lastDone] = await src.store.listLatest({ states: ['done'], limit: 1 });
  return evaluateHealth(
    {
      now,
      heartbeatAt: control.heartbeatAt,
      stopped: control.stopRequested || snap.stopFile,
      queued,
      running,
      recentCompleted,
      recentFailed,
      lastCompletionAt: lastDone === undefined ? null : lastDone.stateSince,
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

async function recentFrom(src: ReadSources, durations: ReadonlyMap<string, number>): Promise<RecentCompletion[]> {
  const limit = src.config.dashboard.max_recent_tasks;
  // The store gives its latest with their ties, so the order below (id as JS compares strings) picks the same ones.
  const latest = await src.store.listLatest({ states: [...TERMINAL_STATES], limit });
  return latest
    .sort((a, b) => b.stateSince.getTime() - a.stateSince.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, limit)
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
  // The widest range the other parts need, read once: 24 h for the ETA, budget and durations. The metrics window is
  // read on its own, as columns.
  await snap.history(nowMs - DEFAULT_WINDOW_MS);
  const metrics = await metricsFrom(src, window);
  const health = await healthFrom(src, snap);
  const ranked = await rankRunnable(src, snap);
  const head = queueRows(src, snap, ranked.slice(0, DASHBOARD_QUEUE_HEAD), await recentDurations(snap), await recentCostByType(snap));
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
      total: ranked.length,
      head,
      invalid: (await snap.notes()).invalid.length,
      retrying: snap.open.filter((t) => t.state === 'retry_wait').length,
    },
    recent: await recentFrom(src, finishing),
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
  const counts = await snap.counts();
  // The 24 h budget window first: the health check's 1 h window is then cut from it rather than read again.
  const budget = await budgetFrom(src, snap);
  const health = await healthFrom(src, snap);
  let oldestQueued: number | null = null;
  let oldestApproval: number | null = null;
  for (const t of snap.open) {
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
