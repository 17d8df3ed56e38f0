import type { HistoryEvent } from '../../lib/core/history.ts';
import type { MetricsWindow } from '../../lib/core/metrics.ts';
import { TASK_STATES, type TaskState } from '../../lib/core/state-machine.ts';
import { mulberry32 as prng } from '../prng.ts';

/**
 * Random histories for the metrics tests, built to sit on every edge the arithmetic has: window, bucket and UTC-day
 * boundaries, fractional times, durations and costs that are missing, zero, -0, negative, NaN, infinite or huge,
 * repeated task ids, types that are also Object.prototype names. Deterministic per seed.
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export { prng };

export type Random = () => number;
export const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

/** Outcomes metrics count, weighted up; every other state still appears (it makes its type show up in byType). */
const STATES: readonly TaskState[] = [...TASK_STATES, 'done', 'done', 'done', 'failed', 'retry_wait'];
const TYPES = ['email', 'code', 'général', '__proto__', 'a b', 'constructor'];

/** Times on and around every boundary a window of [T0 - 1 day, T0 + 2 days) with buckets of up to a day can have. */
export function edgeTime(random: Random, startMs: number, spanMs: number): number {
  const r = random();
  if (r < 0.35) return startMs + Math.floor(random() * spanMs);
  if (r < 0.45) return startMs + random() * spanMs; // fractional milliseconds
  const unit = pick(random, [1, 7, MIN, 5 * MIN, HOUR, 6 * HOUR, DAY]);
  const k = Math.floor(((random() * spanMs) / unit) | 0);
  return Math.floor(startMs / unit) * unit + k * unit + pick(random, [-1, -0.5, 0, 0, 0, 0.5, 1]);
}

function randomDuration(random: Random): number | undefined {
  return pick(random, [
    undefined,
    Math.floor(random() * 600_000),
    Math.floor(random() * 600_000),
    Math.floor(random() * 100),
    random() * 10_000,
    0,
    -0,
    -5,
    Number.NaN,
    Infinity,
    1e15,
    12.5,
  ]);
}

function randomCost(random: Random): number | undefined {
  return pick(random, [
    undefined,
    undefined,
    Math.round(random() * 2e6) / 1e6,
    Math.round(random() * 2e6) / 1e6,
    random() * 3, // full precision: sums that depend on their order
    random() / 7,
    0,
    -0,
    -0.25,
    Number.NaN,
    Infinity,
    0.0000005, // round6 ties
    2.5e-7,
  ]);
}

export function randomHistory(random: Random, n: number, startMs: number, spanMs: number, taskCount: number): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  for (let i = 0; i < n; i++) {
    const e: { -readonly [K in keyof HistoryEvent]: HistoryEvent[K] } = {
      taskId: random() < 0.05 ? `tâche-${Math.floor(random() * 3)}` : `t-${Math.floor(random() * taskCount)}`,
      taskType: pick(random, TYPES),
      from: 'executing',
      to: pick(random, STATES),
      event: 'succeed',
      at: edgeTime(random, startMs, spanMs),
      attempt: 1,
    };
    const d = randomDuration(random);
    if (d !== undefined) e.durationMs = d;
    const c = randomCost(random);
    if (c !== undefined) e.costUsd = c;
    events.push(e);
  }
  return events;
}

export function randomWindow(random: Random, startMs: number, spanMs: number): MetricsWindow {
  let since = edgeTime(random, startMs, spanMs);
  let until = edgeTime(random, startMs, spanMs);
  if (until < since) [since, until] = [until, since];
  const bucketMs = pick(random, [undefined, undefined, 1_000, MIN, 7 * MIN, HOUR, DAY, 86_399_999]);
  // Explicit widths stay under MAX_BUCKETS for the window drawn; an automatic one always does.
  const fits = bucketMs === undefined || (until - since) / bucketMs < 9_000;
  return { since: new Date(since), until: new Date(until), ...(fits && bucketMs !== undefined ? { bucketMs } : {}) };
}

