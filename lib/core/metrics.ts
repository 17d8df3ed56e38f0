import type { HistoryEvent } from './history.ts';

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
  const byDay = new Map<string, number>();
  const byTask = new Map<string, number>();
  for (const e of events) {
    if (!(e.at >= sinceMs && e.at < untilMs)) continue;
    const cost = e.costUsd;
    if (cost === undefined || !Number.isFinite(cost) || cost === 0) continue;
    const day = new Date(e.at).toISOString().slice(0, 10);
    byDay.set(day, (byDay.get(day) ?? 0) + cost);
    byTask.set(e.taskId, (byTask.get(e.taskId) ?? 0) + cost);
  }
  const perTask = [...byTask.values()].sort((a, b) => a - b);
  const total = perTask.reduce((a, b) => a + b, 0);
  return {
    perDay: [...byDay.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([day, usd]) => ({ day, usd: round6(usd) })),
    perTask: {
      tasks: perTask.length,
      avg: perTask.length === 0 ? 0 : round6(total / perTask.length),
      p50: perTask.length === 0 ? 0 : round6(percentileNearestRank(perTask, 50)),
      p95: perTask.length === 0 ? 0 : round6(percentileNearestRank(perTask, 95)),
      max: perTask.length === 0 ? 0 : round6(perTask[perTask.length - 1] as number),
    },
  };
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
  // p·n/100 rather than p/100·n: with integer p the product is exact, so 95 of 100 is rank 95, never 95.000…01 → 96.
  const rank = Math.min(n, Math.max(1, Math.ceil((p * n) / 100)));
  return sorted[rank - 1] as number;
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

interface TypeAcc {
  completed: number;
  failed: number;
  costUsd: number;
  durationSum: number;
  durations: number[];
}

function usable(x: number | undefined): x is number {
  return x !== undefined && Number.isFinite(x) && x >= 0;
}

/** Sorts `durations` in place: callers pass buffers they own. */
function summarize(durations: Float64Array, sum: number): LatencySummary & { max: number } {
  const n = durations.length;
  if (n === 0) return { avg: 0, p50: 0, p95: 0, max: 0 };
  durations.sort();
  return {
    avg: Math.round(sum / n),
    p50: Math.round(percentileNearestRank(durations, 50)),
    p95: Math.round(percentileNearestRank(durations, 95)),
    max: Math.round(durations[n - 1] as number),
  };
}

/**
 * One pass over `events` in any order. Per event the work is a few comparisons and counter updates; the only memory
 * that grows with the input is the durations of completed runs, which exact percentiles need. Those are sorted
 * (per type, as typed arrays), never the events themselves.
 */
export function computeMetrics(source: Iterable<HistoryEvent>, window: MetricsWindow): Metrics {
  // Read twice (the figures, then the cost breakdown), so a one-shot iterable is materialised first.
  const events: readonly HistoryEvent[] = Array.isArray(source) ? source : [...source];
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
  const firstBucketMs = Math.floor(sinceMs / bucketMs) * bucketMs;
  const bCompleted = new Float64Array(buckets);
  const bFailed = new Float64Array(buckets);
  const bCost = new Float64Array(buckets);
  const bDurationSum = new Float64Array(buckets);
  const bDurationCount = new Float64Array(buckets);

  let completed = 0;
  let failed = 0;
  let retried = 0;
  let costUsd = 0;
  let durationSum = 0;
  let durationCount = 0;
  const types = new Map<string, TypeAcc>();

  for (const e of events) {
    const at = e.at;
    // Written as a negated conjunction so a NaN `at` falls outside the window too.
    if (!(at >= sinceMs && at < untilMs)) continue;

    let acc = types.get(e.taskType);
    if (acc === undefined) {
      acc = { completed: 0, failed: 0, costUsd: 0, durationSum: 0, durations: [] };
      types.set(e.taskType, acc);
    }
    const b = Math.floor((at - firstBucketMs) / bucketMs);

    const cost = e.costUsd;
    if (cost !== undefined && Number.isFinite(cost)) {
      costUsd += cost;
      acc.costUsd += cost;
      bCost[b] = (bCost[b] as number) + cost;
    }

    if (e.to === 'done') {
      completed++;
      acc.completed++;
      bCompleted[b] = (bCompleted[b] as number) + 1;
      const d = e.durationMs;
      // A completion without a recorded duration still counts as completed; it just cannot inform latency.
      if (usable(d)) {
        durationSum += d;
        durationCount++;
        acc.durationSum += d;
        acc.durations.push(d);
        bDurationSum[b] = (bDurationSum[b] as number) + d;
        bDurationCount[b] = (bDurationCount[b] as number) + 1;
      }
    } else if (e.to === 'failed') {
      failed++;
      acc.failed++;
      bFailed[b] = (bFailed[b] as number) + 1;
    } else if (e.to === 'retry_wait') {
      retried++;
    }
  }

  // Each type's durations are copied into its own segment of one buffer and sorted there for the per-type
  // percentiles; sorting the whole buffer afterwards gives the overall ones without a second copy.
  const all = new Float64Array(durationCount);
  let offset = 0;
  const typeEntries: Array<[string, TypeMetrics]> = [];
  for (const [type, acc] of [...types].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const segment = all.subarray(offset, offset + acc.durations.length);
    segment.set(acc.durations);
    offset += acc.durations.length;
    acc.durations = [];
    const { avg, p50, p95 } = summarize(segment, acc.durationSum);
    typeEntries.push([
      type,
      {
        completed: acc.completed,
        failed: acc.failed,
        errorRate: rate(acc.failed, acc.completed),
        costUsd: round6(acc.costUsd),
        latencyMs: { avg, p50, p95 },
      },
    ]);
  }
  // fromEntries defines own properties, so a task type named "__proto__" stays data instead of replacing the prototype.
  const byType: Record<string, TypeMetrics> = Object.fromEntries(typeEntries);

  const series: SeriesBucket[] = new Array<SeriesBucket>(buckets);
  for (let i = 0; i < buckets; i++) {
    const count = bDurationCount[i] as number;
    series[i] = {
      start: new Date(firstBucketMs + i * bucketMs).toISOString(),
      completed: bCompleted[i] as number,
      failed: bFailed[i] as number,
      costUsd: round6(bCost[i] as number),
      latencyMsAvg: count === 0 ? 0 : Math.round((bDurationSum[i] as number) / count),
    };
  }

  const hours = (untilMs - sinceMs) / HOUR_MS;
  return {
    since: window.since.toISOString(),
    until: window.until.toISOString(),
    completed,
    failed,
    retried,
    throughputPerHour: hours > 0 ? round6(completed / hours) : 0,
    errorRate: rate(failed, completed),
    latencyMs: summarize(all, durationSum),
    costUsd: round6(costUsd),
    byType,
    series,
    cost: costBreakdown(events, sinceMs, untilMs),
  };
}

function rate(failed: number, completed: number): number {
  const finished = failed + completed;
  return finished === 0 ? 0 : round6(failed / finished);
}

/** When the last task completed, in epoch ms, or null if none did. Events may come in any order. */
export function lastCompletionAt(events: Iterable<HistoryEvent>): number | null {
  let last: number | null = null;
  for (const e of events) {
    if (e.to === 'done' && Number.isFinite(e.at) && (last === null || e.at > last)) last = e.at;
  }
  return last;
}
