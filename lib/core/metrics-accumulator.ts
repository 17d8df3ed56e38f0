import type { CostBreakdown, LatencySummary, Metrics, SeriesBucket, TypeMetrics } from './metrics.ts';
import { nearestRank, valuesAtSortedPositions } from './order-statistics.ts';
import { borrow, giveBack, regrow } from './scratch-arrays.ts';

/**
 * The one pass behind computeMetrics, fed events in batches of columns, so the same arithmetic serves events held as
 * objects (copied into a small batch first) and events a store already holds as columns. Every sum is added in event
 * order, exactly as a loop over the events would, so the figures do not depend on how the events were stored. Nothing
 * is allocated per event: counters live in typed arrays indexed by bucket, type, task and day, and the loop calls no
 * function in the common case (a call taking doubles would box them); percentiles are selected, not sorted.
 */

export const OUTCOME_OTHER = 0;
export const OUTCOME_DONE = 1;
export const OUTCOME_FAILED = 2;
export const OUTCOME_RETRIED = 3;
export type Outcome = typeof OUTCOME_OTHER | typeof OUTCOME_DONE | typeof OUTCOME_FAILED | typeof OUTCOME_RETRIED;

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** A validated window: [sinceMs, untilMs) cut into `buckets` buckets of `bucketMs` aligned to the epoch. */
export interface AccumulatorWindow {
  readonly sinceMs: number;
  readonly untilMs: number;
  readonly bucketMs: number;
  readonly buckets: number;
}

/**
 * Events as columns, row i being one event. `code[i]` is looked up in the `outcomes` table given with the batch (so a
 * store's state codes and a batch's outcome codes both work). `type` and `task` are dense indices below the counts
 * announced with `reserve`; `durationMs` and `costUsd` are NaN when absent, and `task` is only read for a finite,
 * non-zero cost.
 */
export interface EventBatch {
  readonly at: Float64Array;
  readonly code: Uint8Array;
  readonly type: Uint32Array;
  readonly task: Uint32Array;
  readonly durationMs: Float64Array;
  readonly costUsd: Float64Array;
}

export class MetricsAccumulator {
  readonly sinceMs: number;
  readonly untilMs: number;
  private readonly bucketMs: number;
  private readonly firstBucketMs: number;
  private readonly bCompleted: Float64Array;
  private readonly bFailed: Float64Array;
  private readonly bCost: Float64Array;
  private readonly bDurationSum: Float64Array;
  private readonly bDurationCount: Float64Array;

  private completed = 0;
  private failed = 0;
  private retried = 0;
  private costUsd = 0;
  private durationSum = 0;

  private typeSeen = new Uint8Array(0);
  private typeCompleted = new Float64Array(0);
  private typeFailed = new Float64Array(0);
  private typeCost = new Float64Array(0);
  private typeDurationSum = new Float64Array(0);
  private typeDurationCount = new Float64Array(0);

  /** Durations of completed runs and their types, in arrival order; segmented by type only at the end. */
  private durations = new Float64Array(0);
  private durationTypes = new Uint32Array(0);
  private durationCount = 0;

  private taskCost = new Float64Array(0);
  private taskSeen = new Uint8Array(0);
  /** Tasks in the order they first spent something, as the Map this replaces would have listed them. */
  private spenders = new Uint32Array(0);
  private spenderCount = 0;

  private readonly dayIndex = new Map<number, number>();
  private readonly days: number[] = [];
  private dayCost = new Float64Array(64);

  constructor(window: AccumulatorWindow) {
    this.sinceMs = window.sinceMs;
    this.untilMs = window.untilMs;
    this.bucketMs = window.bucketMs;
    this.firstBucketMs = Math.floor(this.sinceMs / window.bucketMs) * window.bucketMs;
    this.bCompleted = new Float64Array(window.buckets);
    this.bFailed = new Float64Array(window.buckets);
    this.bCost = new Float64Array(window.buckets);
    this.bDurationSum = new Float64Array(window.buckets);
    this.bDurationCount = new Float64Array(window.buckets);
  }

  /**
   * Room for `types` type indices, `tasks` task indices and `events` more events, before a batch is added. The large
   * arrays are borrowed (scratch-arrays.ts) and given back by `finish`.
   */
  reserve(types: number, tasks: number, events: number): void {
    if (types > this.typeSeen.length) {
      const n = Math.max(types, this.typeSeen.length * 2, 8);
      this.typeSeen = grown(this.typeSeen, new Uint8Array(n));
      this.typeCompleted = grown(this.typeCompleted, new Float64Array(n));
      this.typeFailed = grown(this.typeFailed, new Float64Array(n));
      this.typeCost = grown(this.typeCost, new Float64Array(n));
      this.typeDurationSum = grown(this.typeDurationSum, new Float64Array(n));
      this.typeDurationCount = grown(this.typeDurationCount, new Float64Array(n));
    }
    if (tasks > this.taskSeen.length) {
      const n = Math.max(tasks, 1024);
      this.taskCost = regrow(Float64Array, this.taskCost, n);
      this.taskSeen = regrow(Uint8Array, this.taskSeen, n);
      // A task is listed once at most, so the list never outgrows the task arrays.
      this.spenders = regrow(Uint32Array, this.spenders, n);
    }
    if (this.durationCount + events > this.durations.length) {
      const n = Math.max(this.durationCount + events, 1024);
      // Written before they are read, so not zeroed.
      this.durations = regrow(Float64Array, this.durations, n, false);
      this.durationTypes = regrow(Uint32Array, this.durationTypes, n, false);
    }
  }

  /** Rows [0, count) of `batch`; those outside [since, until) are skipped. Call `reserve` first. */
  addBatch(batch: EventBatch, count: number, outcomes: ArrayLike<number>): void {
    const { at, code, type, task, durationMs, costUsd } = batch;
    const { sinceMs, untilMs, firstBucketMs, bucketMs, bCompleted, bFailed, bCost, bDurationSum, bDurationCount } = this;
    const { typeSeen, typeCompleted, typeFailed, typeCost, typeDurationSum, typeDurationCount } = this;
    const { durations, durationTypes, taskCost, taskSeen, spenders } = this;
    let { completed, failed, retried, durationSum, durationCount, spenderCount } = this;
    let totalCost = this.costUsd;
    let dayCost = this.dayCost;
    let lastDay = Number.NaN;
    let daySlot = 0;
    for (let i = 0; i < count; i++) {
      const t = at[i] as number;
      // Written as a negated conjunction so a NaN `at` falls outside the window too.
      if (!(t >= sinceMs && t < untilMs)) continue;
      const ty = type[i] as number;
      typeSeen[ty] = 1;
      const b = Math.floor((t - firstBucketMs) / bucketMs);

      const cost = costUsd[i] as number;
      if (Number.isFinite(cost)) {
        totalCost += cost;
        typeCost[ty] = (typeCost[ty] as number) + cost;
        bCost[b] = (bCost[b] as number) + cost;
        if (cost !== 0) {
          // The UTC day as Date would name it: Date truncates fractional milliseconds toward zero first.
          const day = Math.floor(Math.trunc(t) / DAY_MS);
          if (day !== lastDay) {
            daySlot = this.daySlot(day);
            dayCost = this.dayCost;
            lastDay = day;
          }
          dayCost[daySlot] = (dayCost[daySlot] as number) + cost;
          const k = task[i] as number;
          if (taskSeen[k] === 0) {
            taskSeen[k] = 1;
            spenders[spenderCount++] = k;
          }
          taskCost[k] = (taskCost[k] as number) + cost;
        }
      }

      const outcome = outcomes[code[i] as number];
      if (outcome === OUTCOME_DONE) {
        completed++;
        typeCompleted[ty] = (typeCompleted[ty] as number) + 1;
        bCompleted[b] = (bCompleted[b] as number) + 1;
        const d = durationMs[i] as number;
        // A completion without a recorded duration still counts as completed; it just cannot inform latency.
        if (Number.isFinite(d) && d >= 0) {
          durationSum += d;
          typeDurationSum[ty] = (typeDurationSum[ty] as number) + d;
          typeDurationCount[ty] = (typeDurationCount[ty] as number) + 1;
          bDurationSum[b] = (bDurationSum[b] as number) + d;
          bDurationCount[b] = (bDurationCount[b] as number) + 1;
          durations[durationCount] = d;
          durationTypes[durationCount] = ty;
          durationCount++;
        }
      } else if (outcome === OUTCOME_FAILED) {
        failed++;
        typeFailed[ty] = (typeFailed[ty] as number) + 1;
        bFailed[b] = (bFailed[b] as number) + 1;
      } else if (outcome === OUTCOME_RETRIED) {
        retried++;
      }
    }
    this.completed = completed;
    this.failed = failed;
    this.retried = retried;
    this.durationSum = durationSum;
    this.durationCount = durationCount;
    this.spenderCount = spenderCount;
    this.costUsd = totalCost;
  }

  /** Only the cost breakdown's part of a batch, for costBreakdown(): rows with a finite non-zero cost in the window. */
  addSpending(at: number, task: number, costUsd: number): void {
    this.reserve(0, task + 1, 0);
    const day = Math.floor(Math.trunc(at) / DAY_MS);
    const slot = this.daySlot(day);
    this.dayCost[slot] = (this.dayCost[slot] as number) + costUsd;
    if (this.taskSeen[task] === 0) {
      this.taskSeen[task] = 1;
      this.spenders[this.spenderCount++] = task;
    }
    this.taskCost[task] = (this.taskCost[task] as number) + costUsd;
  }

  private daySlot(day: number): number {
    let slot = this.dayIndex.get(day);
    if (slot === undefined) {
      slot = this.days.length;
      this.days.push(day);
      this.dayIndex.set(day, slot);
      if (slot === this.dayCost.length) this.dayCost = grown(this.dayCost, new Float64Array(slot * 2));
    }
    return slot;
  }

  /** The figures; `typeNames[i]` names type index i. The accumulator is spent afterwards. */
  finish(typeNames: readonly string[], window: { since: Date; until: Date }): Metrics {
    const segments = this.durationsByType(typeNames.length);
    const typeEntries: Array<[string, TypeMetrics]> = [];
    const order = typeNames
      .map((name, index) => ({ name, index }))
      .filter(({ index }) => index < this.typeSeen.length && this.typeSeen[index] === 1)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const { name, index } of order) {
      const count = this.typeDurationCount[index] as number;
      const lo = segments.offsets[index] as number;
      const { p50, p95 } = percentiles(segments.values.subarray(lo, lo + count));
      typeEntries.push([
        name,
        {
          completed: this.typeCompleted[index] as number,
          failed: this.typeFailed[index] as number,
          errorRate: rate(this.typeFailed[index] as number, this.typeCompleted[index] as number),
          costUsd: round6(this.typeCost[index] as number),
          latencyMs: {
            avg: count === 0 ? 0 : Math.round((this.typeDurationSum[index] as number) / count),
            p50: count === 0 ? 0 : Math.round(p50),
            p95: count === 0 ? 0 : Math.round(p95),
          },
        },
      ]);
    }

    const n = this.durationCount;
    let latencyMs: LatencySummary & { max: number } = { avg: 0, p50: 0, p95: 0, max: 0 };
    if (n > 0) {
      const { p50, p95, max } = percentiles(segments.values);
      latencyMs = { avg: Math.round(this.durationSum / n), p50: Math.round(p50), p95: Math.round(p95), max: Math.round(max) };
    }
    giveBack(segments.values);

    const buckets = this.bCompleted.length;
    const series: SeriesBucket[] = new Array<SeriesBucket>(buckets);
    for (let i = 0; i < buckets; i++) {
      const count = this.bDurationCount[i] as number;
      series[i] = {
        start: new Date(this.firstBucketMs + i * this.bucketMs).toISOString(),
        completed: this.bCompleted[i] as number,
        failed: this.bFailed[i] as number,
        costUsd: round6(this.bCost[i] as number),
        latencyMsAvg: count === 0 ? 0 : Math.round((this.bDurationSum[i] as number) / count),
      };
    }

    const hours = (this.untilMs - this.sinceMs) / HOUR_MS;
    return {
      since: window.since.toISOString(),
      until: window.until.toISOString(),
      completed: this.completed,
      failed: this.failed,
      retried: this.retried,
      throughputPerHour: hours > 0 ? round6(this.completed / hours) : 0,
      errorRate: rate(this.failed, this.completed),
      latencyMs,
      costUsd: round6(this.costUsd),
      // fromEntries defines own properties, so a task type named "__proto__" stays data instead of replacing the prototype.
      byType: Object.fromEntries(typeEntries),
      series,
      cost: this.finishCostBreakdown(),
    };
  }

  /** The cost breakdown alone (what `finish` includes); the accumulator is spent afterwards. */
  finishCostBreakdown(): CostBreakdown {
    try {
      return this.costBreakdown();
    } finally {
      giveBack(this.taskCost);
      giveBack(this.taskSeen);
      giveBack(this.spenders);
      giveBack(this.durations);
      giveBack(this.durationTypes);
    }
  }

  private costBreakdown(): CostBreakdown {
    const perDay = this.days
      .map((day, slot) => ({ day: new Date(day * DAY_MS).toISOString().slice(0, 10), usd: this.dayCost[slot] as number }))
      .sort((a, b) => (a.day < b.day ? -1 : 1))
      .map(({ day, usd }) => ({ day, usd: round6(usd) }));
    const n = this.spenderCount;
    if (n === 0) return { perDay, perTask: { tasks: 0, avg: 0, p50: 0, p95: 0, max: 0 } };
    // Totals are sums of finite costs, so they are finite or ±Infinity but never NaN: every comparison below (and the
    // subtraction the old sort compared by) orders them totally.
    const values = borrow(Float64Array, n, false);
    for (let i = 0; i < n; i++) values[i] = this.taskCost[this.spenders[i] as number] as number;
    const avg = averageOfAscendingSum(values);
    const { p50, p95, max } = percentiles(values);
    giveBack(values);
    return { perDay, perTask: { tasks: n, avg, p50: round6(p50), p95: round6(p95), max: round6(max) } };
  }

  /** One buffer holding each type's durations contiguously, with where each type's run starts. */
  private durationsByType(typeCount: number): {
    /** Borrowed: given back by `finish`. */
    values: Float64Array;
    offsets: Float64Array;
  } {
    const types = Math.max(typeCount, this.typeDurationCount.length);
    const offsets = new Float64Array(types);
    const next = new Float64Array(types);
    let at = 0;
    for (let t = 0; t < types; t++) {
      offsets[t] = at;
      next[t] = at;
      at += t < this.typeDurationCount.length ? (this.typeDurationCount[t] as number) : 0;
    }
    const values = borrow(Float64Array, this.durationCount, false);
    for (let i = 0; i < this.durationCount; i++) {
      const t = this.durationTypes[i] as number;
      values[next[t] as number] = this.durations[i] as number;
      next[t] = (next[t] as number) + 1;
    }
    return { values, offsets };
  }
}

/** Nearest-rank p50 and p95, and the maximum, exactly as a sort would give them; all 0 when there are no values. */
function percentiles(values: Float64Array): { p50: number; p95: number; max: number } {
  const n = values.length;
  if (n === 0) return { p50: 0, p95: 0, max: 0 };
  const [p50, p95, max] = valuesAtSortedPositions(values, [nearestRank(n, 50) - 1, nearestRank(n, 95) - 1, n - 1]);
  return { p50: p50 as number, p95: p95 as number, max: max as number };
}

/**
 * round6 of the mean, where the sum is taken in ascending order as the published figure always was. Float addition
 * depends on order, but not by much: any two orders differ by at most 2·γ(n-1)·Σ|v| (γ(k) ≈ k·2^-53). The sum is taken
 * in the given order with a bound four times that; when every sum within the bound rounds to the same figure — all
 * but a vanishing fraction of cases — that figure is the answer, otherwise the values are sorted and summed.
 */
function averageOfAscendingSum(values: Float64Array): number {
  const n = values.length;
  let sum = 0;
  let magnitude = 0;
  for (let i = 0; i < n; i++) {
    sum += values[i] as number;
    magnitude += Math.abs(values[i] as number);
  }
  const slack = n * magnitude * 2 ** -50;
  if (Number.isFinite(slack)) {
    const lo = round6((sum - slack) / n);
    const hi = round6((sum + slack) / n);
    if (Object.is(lo, hi)) return lo;
  }
  const sorted = values.slice().sort();
  let total = 0;
  for (let i = 0; i < n; i++) total += sorted[i] as number;
  return round6(total / n);
}

function grown<T extends Float64Array | Uint32Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

export function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export function rate(failed: number, completed: number): number {
  const finished = failed + completed;
  return finished === 0 ? 0 : round6(failed / finished);
}
