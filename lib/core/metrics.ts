import type { HistoryColumns } from './history-columns.ts';
import type { HistoryEvent } from './history.ts';
import {
  type AccumulatorWindow,
  MetricsAccumulator,
  OUTCOME_DONE,
  OUTCOME_FAILED,
  OUTCOME_OTHER,
  OUTCOME_RETRIED,
  type Outcome,
  round6,
} from './metrics-accumulator.ts';
import { nearestRank } from './order-statistics.ts';
import { TASK_STATES } from './state-machine.ts';
import { StringIndex } from './string-index.ts';

/**
 * Performance figures over a window [since, until) of the task history. The JSON shape is a contract with other
 * tools (dashboards, the cloud API, scripts): keys are never renamed, times are ISO strings.
 *
 * Percentiles use the nearest-rank method: the p-th percentile of n sorted values is the value at rank ⌈p·n/100⌉
 * (1-based), so it is always one of the observed durations — p50 of 1..100 is 50, p95 is 95.
 */
export interface LatencySummary {
  avg: number;
  p50: number;
  p95: number;
}

export interface TypeMetrics {
  completed: number;
  failed: number;
  errorRate: number;
  costUsd: number;
  latencyMs: LatencySummary;
}

export interface SeriesBucket {
  start: string;
  completed: number;
  failed: number;
  costUsd: number;
  latencyMsAvg: number;
}

export interface Metrics {
  since: string;
  until: string;
  /** Events with to === 'done' in the window. */
  completed: number;
  /** Events with to === 'failed' in the window: dead-lettered tasks, not retried attempts. */
  failed: number;
  /** Events with to === 'retry_wait' in the window. */
  retried: number;
  throughputPerHour: number;
  /** failed / (completed + failed); 0 when nothing finished. */
  errorRate: number;
  /** Over durationMs of 'done' events only; all 0 when there are none. */
  latencyMs: LatencySummary & { max: number };
  /** Every run's cost in the window, failed and retried runs included: that money was spent. */
  costUsd: number;
  byType: Record<string, TypeMetrics>;
  series: SeriesBucket[];
  /** Where the money went: per UTC day, and the distribution of what one task cost in the window. */
  cost: CostBreakdown;
}

export interface CostBreakdown {
  perDay: Array<{ day: string; usd: number }>;
  /** Over the tasks that spent anything in the window (a task's runs summed). */
  perTask: { tasks: number; avg: number; p50: number; p95: number; max: number };
}

/** Cost per UTC day and per task over the events in [sinceMs, untilMs). */
export function costBreakdown(events: Iterable<HistoryEvent>, sinceMs: number, untilMs: number): CostBreakdown {
  const acc = new MetricsAccumulator({ sinceMs, untilMs, bucketMs: 1, buckets: 0 });
  const tasks = new StringIndex();
  for (const e of events) {
    if (!(e.at >= sinceMs && e.at < untilMs)) continue;
    const cost = e.costUsd;
    if (cost === undefined || !Number.isFinite(cost) || cost === 0) continue;
    acc.addSpending(e.at, tasks.indexOf(e.taskId), cost);
  }
  tasks.release();
  return acc.finishCostBreakdown();
}

/**
 * What a task of each type has cost on average, over the tasks of that type that finished (done or failed) among
 * `events`, counting all their runs: the estimate the queue shows for work that waits.
 */
export function averageCostByType(events: Iterable<HistoryEvent>): Record<string, number> {
  const cost = new Map<string, number>();
  const finished = new Map<string, { type: string }>();
  for (const e of events) {
    if (e.costUsd !== undefined && Number.isFinite(e.costUsd)) cost.set(e.taskId, (cost.get(e.taskId) ?? 0) + e.costUsd);
    if (e.to === 'done' || e.to === 'failed') finished.set(e.taskId, { type: e.taskType });
  }
  const sums = new Map<string, { usd: number; n: number }>();
  for (const [taskId, { type }] of finished) {
    const acc = sums.get(type) ?? { usd: 0, n: 0 };
    acc.usd += cost.get(taskId) ?? 0;
    acc.n += 1;
    sums.set(type, acc);
  }
  return Object.fromEntries([...sums].map(([type, { usd, n }]) => [type, round6(usd / n)]));
}

export interface MetricsWindow {
  since: Date;
  until: Date;
  /** Series bucket width; chosen from BUCKET_LADDER_MS when absent. */
  bucketMs?: number;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;

/** Candidate bucket widths, finest first: 1 min, 5 min, 15 min, 1 h, 6 h, 1 day. */
export const BUCKET_LADDER_MS: readonly number[] = [
  MINUTE_MS,
  5 * MINUTE_MS,
  15 * MINUTE_MS,
  HOUR_MS,
  6 * HOUR_MS,
  24 * HOUR_MS,
];

/** A chart wants a few dozen points; more is noise on a terminal and in a JSON payload. */
export const MAX_AUTO_BUCKETS = 48;

/** Guard against an explicit bucketMs so small that the series alone would exhaust memory. */
export const MAX_BUCKETS = 10_000;

/** Buckets are aligned to multiples of bucketMs since the epoch, so series of overlapping windows line up. */
function bucketCount(sinceMs: number, untilMs: number, bucketMs: number): number {
  if (untilMs <= sinceMs) return 0;
  const first = Math.floor(sinceMs / bucketMs) * bucketMs;
  return Math.ceil((untilMs - first) / bucketMs);
}

/**
 * The finest ladder width giving at most MAX_AUTO_BUCKETS buckets; windows longer than ~47 days get daily buckets
 * even though that exceeds the target, because a coarser unit than a day reads badly on a chart.
 */
export function chooseBucketMs(since: Date, until: Date): number {
  const sinceMs = since.getTime();
  const untilMs = until.getTime();
  for (const width of BUCKET_LADDER_MS) {
    if (bucketCount(sinceMs, untilMs, width) <= MAX_AUTO_BUCKETS) return width;
  }
  return BUCKET_LADDER_MS[BUCKET_LADDER_MS.length - 1] as number;
}

/** Nearest-rank percentile of an ascending array; 0 for an empty one. */
export function percentileNearestRank(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  return sorted[nearestRank(n, p) - 1] as number;
}

/** Checks the window and settles the bucket width; throws RangeError for a window no figure can be computed over. */
function resolveWindow(window: MetricsWindow): AccumulatorWindow {
  const sinceMs = window.since.getTime();
  const untilMs = window.until.getTime();
  if (Number.isNaN(sinceMs) || Number.isNaN(untilMs)) throw new RangeError('metrics window has an invalid date');
  if (untilMs < sinceMs) throw new RangeError('metrics window ends before it starts');
  const bucketMs = window.bucketMs ?? chooseBucketMs(window.since, window.until);
  if (!(Number.isFinite(bucketMs) && bucketMs > 0)) throw new RangeError(`invalid bucketMs ${bucketMs}`);
  const buckets = bucketCount(sinceMs, untilMs, bucketMs);
  if (buckets > MAX_BUCKETS) {
    throw new RangeError(`${buckets} series buckets of ${bucketMs} ms exceed the limit of ${MAX_BUCKETS}`);
  }
  return { sinceMs, untilMs, bucketMs, buckets };
}

function outcomeOf(to: string): Outcome {
  return to === 'done' ? OUTCOME_DONE : to === 'failed' ? OUTCOME_FAILED : to === 'retry_wait' ? OUTCOME_RETRIED : OUTCOME_OTHER;
}

/** HistoryColumns.to holds TASK_STATES indices; this turns one into what metrics count it as. */
const OUTCOME_BY_STATE_CODE: readonly Outcome[] = TASK_STATES.map(outcomeOf);
/** A batch copied from objects holds the outcome itself. */
const OUTCOME_IDENTITY: readonly Outcome[] = [OUTCOME_OTHER, OUTCOME_DONE, OUTCOME_FAILED, OUTCOME_RETRIED];

const BATCH = 4096;

/**
 * One pass over `events` in any order: each event in the window is copied into a small batch of columns (its type and,
 * when it cost something, its task numbered on the way) and the batches go through the same accumulator as
 * computeMetricsFromColumns.
 */
export function computeMetrics(source: Iterable<HistoryEvent>, window: MetricsWindow): Metrics {
  const resolved = resolveWindow(window);
  const events: readonly HistoryEvent[] = Array.isArray(source) ? source : [...source];
  const acc = new MetricsAccumulator(resolved);
  const { sinceMs, untilMs } = resolved;
  const batch = {
    at: new Float64Array(BATCH),
    code: new Uint8Array(BATCH),
    type: new Uint32Array(BATCH),
    task: new Uint32Array(BATCH),
    durationMs: new Float64Array(BATCH),
    costUsd: new Float64Array(BATCH),
  };
  const typeNames: string[] = [];
  const types = new Map<string, number>();
  const tasks = new StringIndex();
  // Types are few and often repeat; remembering the last one skips most lookups.
  let lastType: string | null = null;
  let lastTypeIndex = 0;
  let n = 0;
  const flush = (): void => {
    acc.reserve(typeNames.length, tasks.size, n);
    acc.addBatch(batch, n, OUTCOME_IDENTITY);
    n = 0;
  };
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as HistoryEvent;
    const at = e.at;
    if (!(at >= sinceMs && at < untilMs)) continue;
    const typeName = e.taskType;
    if (typeName !== lastType) {
      let t = types.get(typeName);
      if (t === undefined) {
        t = typeNames.length;
        typeNames.push(typeName);
        types.set(typeName, t);
      }
      lastType = typeName;
      lastTypeIndex = t;
    }
    const cost = e.costUsd ?? Number.NaN;
    batch.at[n] = at;
    batch.code[n] = outcomeOf(e.to);
    batch.type[n] = lastTypeIndex;
    // Numbering task ids is the costliest step left, and only spending needs it.
    batch.task[n] = cost !== 0 && Number.isFinite(cost) ? tasks.indexOf(e.taskId) : 0;
    batch.durationMs[n] = e.durationMs ?? Number.NaN;
    batch.costUsd[n] = cost;
    if (++n === BATCH) flush();
  }
  flush();
  tasks.release();
  return acc.finish(typeNames, window);
}

/** computeMetrics over events already in columns (TaskStore.historyColumns): the same figures, without the objects. */
export function computeMetricsFromColumns(columns: HistoryColumns, window: MetricsWindow): Metrics {
  const acc = new MetricsAccumulator(resolveWindow(window));
  acc.reserve(columns.types.length, columns.taskCount, columns.length);
  acc.addBatch({ ...columns, code: columns.to }, columns.length, OUTCOME_BY_STATE_CODE);
  return acc.finish(columns.types, window);
}

/** When the last task completed, in epoch ms, or null if none did. Events may come in any order. */
export function lastCompletionAt(events: Iterable<HistoryEvent>): number | null {
  let last: number | null = null;
  for (const e of events) {
    if (e.to === 'done' && Number.isFinite(e.at) && (last === null || e.at > last)) last = e.at;
  }
  return last;
}
