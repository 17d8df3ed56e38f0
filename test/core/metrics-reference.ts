/**
 * The metrics computation as it was before it became one pass over columns (lib/core/metrics.ts at 6c6d626): kept
 * verbatim as the oracle the new implementation must match number for number — same figures, same rounding, same
 * zeros, over any history. Only what computeMetrics needed is kept; nothing here is used outside tests.
 */
import type { HistoryEvent } from '../../lib/core/history.ts';
import type { CostBreakdown, LatencySummary, Metrics, MetricsWindow, TypeMetrics, SeriesBucket } from '../../lib/core/metrics.ts';
import { MAX_BUCKETS, chooseBucketMs } from '../../lib/core/metrics.ts';

/** Cost per UTC day and per task over the events in [sinceMs, untilMs). */
const HOUR_MS = 3_600_000;

function costBreakdown(events: Iterable<HistoryEvent>, sinceMs: number, untilMs: number): CostBreakdown {
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

/** Buckets are aligned to multiples of bucketMs since the epoch, so series of overlapping windows line up. */
function bucketCount(sinceMs: number, untilMs: number, bucketMs: number): number {
  if (untilMs <= sinceMs) return 0;
  const first = Math.floor(sinceMs / bucketMs) * bucketMs;
  return Math.ceil((untilMs - first) / bucketMs);
}

/** Nearest-rank percentile of an ascending array; 0 for an empty one. */
function percentileNearestRank(sorted: ArrayLike<number>, p: number): number {
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
export function referenceMetrics(source: Iterable<HistoryEvent>, window: MetricsWindow): Metrics {
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

