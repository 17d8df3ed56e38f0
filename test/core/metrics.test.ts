import { describe, expect, it } from 'vitest';
import type { HistoryEvent } from '../../lib/core/history.ts';
import {
  chooseBucketMs,
  computeMetrics,
  lastCompletionAt,
  percentileNearestRank,
} from '../../lib/core/metrics.ts';
import type { TaskEventType, TaskState } from '../../lib/core/state-machine.ts';
import { mulberry32 as rng } from '../prng.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.parse('2025-03-10T00:00:00.000Z');

const EVENT_FOR: Partial<Record<TaskState, { from: TaskState; event: TaskEventType }>> = {
  done: { from: 'executing', event: 'succeed' },
  failed: { from: 'executing', event: 'dead_letter' },
  retry_wait: { from: 'executing', event: 'fail' },
  executing: { from: 'needs_action', event: 'execute' },
  needs_action: { from: 'retry_wait', event: 'retry' },
  cancelled: { from: 'needs_action', event: 'cancel' },
};

function ev(
  to: TaskState,
  at: number,
  extra: { type?: string; durationMs?: number; costUsd?: number; id?: string } = {},
): HistoryEvent {
  const shape = EVENT_FOR[to] ?? { from: 'needs_action', event: 'execute' };
  return {
    taskId: extra.id ?? `t-${at}`,
    taskType: extra.type ?? 'general',
    from: shape.from,
    to,
    event: shape.event,
    at,
    attempt: 1,
    ...(extra.durationMs !== undefined ? { durationMs: extra.durationMs } : {}),
    ...(extra.costUsd !== undefined ? { costUsd: extra.costUsd } : {}),
  };
}

const window4h = { since: new Date(T0), until: new Date(T0 + 4 * HOUR) };

const handBuilt: HistoryEvent[] = [
  ev('done', T0, { type: 'email', durationMs: 100, costUsd: 0.1 }), // exactly at since: in
  ev('done', T0 + 30 * MIN, { type: 'email', durationMs: 300, costUsd: 0.2 }),
  ev('done', T0 + 70 * MIN, { type: 'code', durationMs: 200, costUsd: 0.05 }),
  ev('failed', T0 + 2 * HOUR, { type: 'code', durationMs: 50, costUsd: 0.3 }), // a failed run's duration is no latency
  ev('retry_wait', T0 + 150 * MIN, { type: 'code', durationMs: 40, costUsd: 0.01 }),
  ev('executing', T0 + 3 * HOUR, { type: 'email' }),
  ev('done', T0 + 4 * HOUR, { type: 'email', durationMs: 999, costUsd: 5 }), // exactly at until: out
  ev('done', T0 - 1, { type: 'email', durationMs: 999, costUsd: 5 }), // just before since: out
  ev('failed', T0 + 4 * HOUR + 1, { type: 'code', costUsd: 5 }),
];

describe('computeMetrics on a hand-built history', () => {
  const m = computeMetrics(handBuilt, { ...window4h, bucketMs: HOUR });

  it('counts, rates and cost', () => {
    expect(m.since).toBe('2025-03-10T00:00:00.000Z');
    expect(m.until).toBe('2025-03-10T04:00:00.000Z');
    expect(m.completed).toBe(3);
    expect(m.failed).toBe(1);
    expect(m.retried).toBe(1);
    expect(m.throughputPerHour).toBe(0.75);
    expect(m.errorRate).toBe(0.25);
    expect(m.costUsd).toBe(0.66);
  });

  it('latency over completed runs only, nearest rank', () => {
    // [100, 200, 300]: p50 rank ⌈1.5⌉ = 2 → 200; p95 rank ⌈2.85⌉ = 3 → 300.
    expect(m.latencyMs).toEqual({ avg: 200, p50: 200, p95: 300, max: 300 });
  });

  it('breaks down by type, sorted by name', () => {
    expect(Object.keys(m.byType)).toEqual(['code', 'email']);
    expect(m.byType['code']).toEqual({
      completed: 1,
      failed: 1,
      errorRate: 0.5,
      costUsd: 0.36,
      latencyMs: { avg: 200, p50: 200, p95: 200 },
    });
    // [100, 300]: p50 rank 1 → 100, p95 rank ⌈1.9⌉ = 2 → 300.
    expect(m.byType['email']).toEqual({
      completed: 2,
      failed: 0,
      errorRate: 0,
      costUsd: 0.3,
      latencyMs: { avg: 200, p50: 100, p95: 300 },
    });
  });

  it('fills a series of hourly buckets, empty ones included', () => {
    expect(m.series).toEqual([
      { start: '2025-03-10T00:00:00.000Z', completed: 2, failed: 0, costUsd: 0.3, latencyMsAvg: 200 },
      { start: '2025-03-10T01:00:00.000Z', completed: 1, failed: 0, costUsd: 0.05, latencyMsAvg: 200 },
      { start: '2025-03-10T02:00:00.000Z', completed: 0, failed: 1, costUsd: 0.31, latencyMsAvg: 0 },
      { start: '2025-03-10T03:00:00.000Z', completed: 0, failed: 0, costUsd: 0, latencyMsAvg: 0 },
    ]);
  });

  it('is JSON with exactly the contracted keys', () => {
    const json = JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual([
      'since', 'until', 'completed', 'failed', 'retried', 'throughputPerHour', 'errorRate', 'latencyMs', 'costUsd',
      'byType', 'series', 'cost',
    ]);
  });

  it('breaks cost down per UTC day and per task', () => {
    const day1 = Date.parse('2025-03-10T23:00:00Z');
    const day2 = Date.parse('2025-03-11T01:00:00Z');
    const r = computeMetrics(
      [
        ev('retry_wait', day1, { costUsd: 1, id: 'a' }),
        ev('done', day2, { costUsd: 2, id: 'a' }),
        ev('done', day2 + 1, { costUsd: 0.5, id: 'b' }),
        ev('failed', day2 + 2, { costUsd: 10, id: 'c' }),
      ],
      { since: new Date('2025-03-10T00:00:00Z'), until: new Date('2025-03-12T00:00:00Z') },
    );
    expect(r.cost.perDay).toEqual([
      { day: '2025-03-10', usd: 1 },
      { day: '2025-03-11', usd: 12.5 },
    ]);
    // Per task: a 3, b 0.5, c 10 → nearest-rank p50 is 3, p95 is 10.
    expect(r.cost.perTask).toEqual({ tasks: 3, avg: 4.5, p50: 3, p95: 10, max: 10 });
  });

  it('counts a completion without a duration but leaves latency alone', () => {
    const r = computeMetrics([ev('done', T0 + 1, { durationMs: 400 }), ev('done', T0 + 2)], window4h);
    expect(r.completed).toBe(2);
    expect(r.latencyMs).toEqual({ avg: 400, p50: 400, p95: 400, max: 400 });
  });

  it('accepts any iterable, read once', () => {
    function* once() {
      yield* handBuilt;
    }
    expect(computeMetrics(once(), { ...window4h, bucketMs: HOUR })).toEqual(m);
  });

  it('keeps a task type called __proto__ as data', () => {
    const r = computeMetrics([ev('done', T0, { type: '__proto__', durationMs: 5 })], window4h);
    expect(Object.prototype.hasOwnProperty.call(r.byType, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(r.byType)).toBe(Object.prototype);
  });
});

describe('computeMetrics edge cases', () => {
  it('an empty history is all zeros, errorRate 0', () => {
    const m = computeMetrics([], { ...window4h, bucketMs: 2 * HOUR });
    expect(m).toEqual({
      since: '2025-03-10T00:00:00.000Z',
      until: '2025-03-10T04:00:00.000Z',
      completed: 0,
      failed: 0,
      retried: 0,
      throughputPerHour: 0,
      errorRate: 0,
      latencyMs: { avg: 0, p50: 0, p95: 0, max: 0 },
      costUsd: 0,
      byType: {},
      series: [
        { start: '2025-03-10T00:00:00.000Z', completed: 0, failed: 0, costUsd: 0, latencyMsAvg: 0 },
        { start: '2025-03-10T02:00:00.000Z', completed: 0, failed: 0, costUsd: 0, latencyMsAvg: 0 },
      ],
      cost: { perDay: [], perTask: { tasks: 0, avg: 0, p50: 0, p95: 0, max: 0 } },
    });
  });

  it('p95 of 1..100 in any order is 95, p50 is 50', () => {
    const values = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    expect(new Set(values).size).toBe(100);
    const m = computeMetrics(values.map((d, i) => ev('done', T0 + i, { durationMs: d })), window4h);
    expect(m.latencyMs).toEqual({ avg: 51, p50: 50, p95: 95, max: 100 }); // avg 50.5 rounds to 51
  });

  it('percentileNearestRank on small arrays', () => {
    expect(percentileNearestRank([], 50)).toBe(0);
    expect(percentileNearestRank([7], 95)).toBe(7);
    expect(percentileNearestRank([1, 2, 3, 4], 50)).toBe(2);
    expect(percentileNearestRank([1, 2, 3, 4], 95)).toBe(4);
    expect(percentileNearestRank([1, 2, 3, 4], 0)).toBe(1);
  });

  it('aligns buckets to epoch multiples and covers [since, until)', () => {
    const since = new Date(T0 + 7 * MIN);
    const until = new Date(T0 + 2 * HOUR + 7 * MIN);
    const m = computeMetrics(
      [
        ev('done', T0 + 5 * MIN, { durationMs: 1, costUsd: 1 }), // in the first bucket's span, but before since
        ev('done', T0 + 7 * MIN, { durationMs: 10, costUsd: 0.5 }),
        ev('failed', T0 + 2 * HOUR + 6 * MIN, { costUsd: 0.25 }),
      ],
      { since, until, bucketMs: HOUR },
    );
    expect(m.series.map((b) => b.start)).toEqual([
      '2025-03-10T00:00:00.000Z',
      '2025-03-10T01:00:00.000Z',
      '2025-03-10T02:00:00.000Z',
    ]);
    expect(m.series.map((b) => [b.completed, b.failed, b.costUsd, b.latencyMsAvg])).toEqual([
      [1, 0, 0.5, 10],
      [0, 0, 0, 0],
      [0, 1, 0.25, 0],
    ]);
  });

  it.each([
    ['30 min', 30 * MIN, MIN, 30],
    ['48 min', 48 * MIN, MIN, 48],
    ['49 min', 49 * MIN, 5 * MIN, 10],
    ['4 h', 4 * HOUR, 5 * MIN, 48],
    ['24 h', DAY, HOUR, 24],
    ['7 d', 7 * DAY, 6 * HOUR, 28],
    ['30 d', 30 * DAY, DAY, 30],
    ['90 d', 90 * DAY, DAY, 90],
  ])('chooses the bucket for a %s window', (_label, length, expectedBucket, expectedCount) => {
    const w = { since: new Date(T0), until: new Date(T0 + length) };
    expect(chooseBucketMs(w.since, w.until)).toBe(expectedBucket);
    expect(computeMetrics([], w).series).toHaveLength(expectedCount);
  });

  it('counts alignment when choosing: 2 h starting at :07 needs 25 five-minute buckets', () => {
    const since = new Date(T0 + 7 * MIN);
    const until = new Date(T0 + 2 * HOUR + 7 * MIN);
    expect(chooseBucketMs(since, until)).toBe(5 * MIN);
    const series = computeMetrics([], { since, until }).series;
    expect(series).toHaveLength(25);
    expect(series[0]?.start).toBe('2025-03-10T00:05:00.000Z');
    expect(series[24]?.start).toBe('2025-03-10T02:05:00.000Z');
  });

  it('an empty window has no buckets and zero throughput', () => {
    const m = computeMetrics([ev('done', T0, { durationMs: 5 })], { since: new Date(T0), until: new Date(T0) });
    expect(m.completed).toBe(0);
    expect(m.throughputPerHour).toBe(0);
    expect(m.series).toEqual([]);
  });

  it('rejects a reversed window and a bucket width that would explode the series', () => {
    expect(() => computeMetrics([], { since: new Date(T0 + 1), until: new Date(T0) })).toThrow(RangeError);
    expect(() => computeMetrics([], { ...window4h, bucketMs: 0 })).toThrow(RangeError);
    expect(() => computeMetrics([], { ...window4h, bucketMs: 1 })).toThrow(RangeError);
  });

  it('rounds cost to 6 decimals', () => {
    const m = computeMetrics(
      [ev('done', T0, { costUsd: 0.1 }), ev('done', T0 + 1, { costUsd: 0.2 }), ev('retry_wait', T0 + 2, { costUsd: 1e-7 })],
      window4h,
    );
    expect(m.costUsd).toBe(0.3);
  });
});

describe('lastCompletionAt', () => {
  it('is the latest done event in any order, or null', () => {
    expect(lastCompletionAt([])).toBeNull();
    expect(lastCompletionAt([ev('failed', T0 + 9)])).toBeNull();
    expect(lastCompletionAt([ev('done', T0 + 5), ev('done', T0 + 9), ev('failed', T0 + 20), ev('done', T0 + 1)])).toBe(
      T0 + 9,
    );
  });
});


/** The p-th percentile by definition: the smallest observed value with at least p % of values at or below it. */
function naivePercentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  for (const v of sorted) {
    if (sorted.filter((x) => x <= v).length * 100 >= p * sorted.length) return v;
  }
  return sorted[sorted.length - 1] as number;
}

describe('computeMetrics on a generated history', () => {
  const random = rng(20250310);
  const since = T0 + 13 * MIN;
  const until = since + 3 * DAY;
  const types = ['email', 'code', 'research', 'payment'];
  const states: TaskState[] = ['done', 'done', 'done', 'failed', 'retry_wait', 'executing', 'needs_action', 'cancelled'];
  const events: HistoryEvent[] = Array.from({ length: 5_000 }, (_, i) => {
    // Some events fall a day either side of the window, in no particular order.
    const at = Math.floor(since - DAY + random() * 5 * DAY);
    const to = states[Math.floor(random() * states.length)] as TaskState;
    const runEnds = to === 'done' || to === 'failed' || to === 'retry_wait';
    return ev(to, at, {
      id: `task-${i}`,
      type: types[Math.floor(random() * types.length)] as string,
      ...(runEnds ? { durationMs: Math.floor(random() * 600_000), costUsd: Math.round(random() * 1e6) / 1e6 } : {}),
    });
  });
  const m = computeMetrics(events, { since: new Date(since), until: new Date(until) });

  const inWindow = events.filter((e) => e.at >= since && e.at < until);
  const done = inWindow.filter((e) => e.to === 'done');
  const failed = inWindow.filter((e) => e.to === 'failed');
  const durations = done.map((e) => e.durationMs as number);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

  it('agrees with a straightforward recomputation', () => {
    expect(inWindow.length).toBeGreaterThan(2_000);
    expect(inWindow.length).toBeLessThan(events.length);
    expect(m.completed).toBe(done.length);
    expect(m.failed).toBe(failed.length);
    expect(m.retried).toBe(inWindow.filter((e) => e.to === 'retry_wait').length);
    expect(m.throughputPerHour).toBeCloseTo(done.length / 72, 6);
    expect(m.errorRate).toBeCloseTo(failed.length / (done.length + failed.length), 6);
    expect(m.costUsd).toBeCloseTo(sum(inWindow.map((e) => e.costUsd ?? 0)), 5);
    expect(m.latencyMs).toEqual({
      avg: Math.round(sum(durations) / durations.length),
      p50: naivePercentile(durations, 50),
      p95: naivePercentile(durations, 95),
      max: Math.max(...durations),
    });
  });

  it('agrees per type', () => {
    expect(Object.keys(m.byType).sort()).toEqual([...types].sort());
    for (const type of types) {
      const d = done.filter((e) => e.taskType === type);
      const f = failed.filter((e) => e.taskType === type);
      const ds = d.map((e) => e.durationMs as number);
      const t = m.byType[type];
      expect(t?.completed).toBe(d.length);
      expect(t?.failed).toBe(f.length);
      expect(t?.errorRate).toBeCloseTo(f.length / (d.length + f.length), 6);
      expect(t?.costUsd).toBeCloseTo(sum(inWindow.filter((e) => e.taskType === type).map((e) => e.costUsd ?? 0)), 5);
      expect(t?.latencyMs).toEqual({
        avg: Math.round(sum(ds) / ds.length),
        p50: naivePercentile(ds, 50),
        p95: naivePercentile(ds, 95),
      });
    }
  });

  it('agrees per bucket', () => {
    // 3 days → 6-hour buckets; since sits at 00:13, so the first bucket starts at 00:00 and there are 13 of them.
    expect(m.series).toHaveLength(13);
    expect(m.series[0]?.start).toBe('2025-03-10T00:00:00.000Z');
    for (const [i, bucket] of m.series.entries()) {
      const start = Date.parse(bucket.start);
      expect(start).toBe(T0 + i * 6 * HOUR);
      const here = inWindow.filter((e) => e.at >= start && e.at < start + 6 * HOUR);
      const hereDone = here.filter((e) => e.to === 'done');
      expect(bucket.completed).toBe(hereDone.length);
      expect(bucket.failed).toBe(here.filter((e) => e.to === 'failed').length);
      expect(bucket.costUsd).toBeCloseTo(sum(here.map((e) => e.costUsd ?? 0)), 5);
      expect(bucket.latencyMsAvg).toBe(
        hereDone.length === 0 ? 0 : Math.round(sum(hereDone.map((e) => e.durationMs as number)) / hereDone.length),
      );
    }
    expect(sum(m.series.map((b) => b.completed))).toBe(m.completed);
  });
});
