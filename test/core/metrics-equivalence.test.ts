import { describe, expect, it } from 'vitest';
import { columnsFromEvents } from '../../lib/core/history-columns.ts';
import type { HistoryEvent } from '../../lib/core/history.ts';
import { computeMetrics, computeMetricsFromColumns, type MetricsWindow } from '../../lib/core/metrics.ts';
import { nearestRank, valuesAtSortedPositions } from '../../lib/core/order-statistics.ts';
import { StringIndex } from '../../lib/core/string-index.ts';
import { referenceMetrics } from './metrics-reference.ts';
import { pick, prng, randomHistory, randomWindow } from './random-history.ts';

/**
 * The one-pass computation (objects and columns alike) against the implementation it replaced, kept verbatim as
 * test/core/metrics-reference.ts: every figure must be the same number — same rounding, same sign of zero — over
 * histories built to sit on every edge the arithmetic has (window, bucket and UTC-day boundaries, fractional and
 * negative times, durations and costs that are missing, zero, -0, negative, NaN, infinite or huge).
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.parse('2026-03-29T00:00:00.000Z');

function expectSameFigures(events: HistoryEvent[], window: MetricsWindow): void {
  const expected = referenceMetrics(events, window);
  expect(computeMetrics(events, window)).toEqual(expected);
  expect(computeMetricsFromColumns(columnsFromEvents(events), window)).toEqual(expected);
  // Columns cut to the window by the store give the same figures as the whole history filtered by computeMetrics.
  expect(computeMetricsFromColumns(columnsFromEvents(events, window), window)).toEqual(expected);
}

describe('computeMetrics matches the implementation it replaced', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('over a random edge-heavy history (seed %i)', (seed) => {
    const random = prng(seed);
    const startMs = T0 - DAY;
    const spanMs = 3 * DAY;
    const events = randomHistory(random, 3_000, startMs, spanMs, 400);
    expectSameFigures(events, { since: new Date(startMs), until: new Date(startMs + spanMs) });
    for (let w = 0; w < 25; w++) expectSameFigures(events, randomWindow(random, startMs, spanMs));
  });

  it('over a history sorted by time, as the stores return it, with windows cut exactly at events', () => {
    const random = prng(99);
    const events = randomHistory(random, 5_000, T0, 2 * DAY, 1_500).sort((a, b) => a.at - b.at);
    for (let w = 0; w < 20; w++) {
      const a = (events[Math.floor(random() * events.length)] as HistoryEvent).at;
      const b = (events[Math.floor(random() * events.length)] as HistoryEvent).at;
      expectSameFigures(events, { since: new Date(Math.min(a, b)), until: new Date(Math.max(a, b)) });
    }
  });

  it('around the epoch, where fractional negative times name their UTC day by truncation', () => {
    const random = prng(5);
    const events = randomHistory(random, 2_000, -2 * DAY, 4 * DAY, 300);
    for (const at of [-0.5, -1, -86_400_000.5, -86_400_000, 0, 0.5]) {
      events.push({ taskId: 'edge', taskType: 'email', from: 'executing', to: 'done', event: 'succeed', at, attempt: 1, costUsd: 0.125, durationMs: 5 });
    }
    expectSameFigures(events, { since: new Date(-2 * DAY), until: new Date(2 * DAY) });
    for (let w = 0; w < 10; w++) expectSameFigures(events, randomWindow(random, -2 * DAY, 4 * DAY));
  });

  it('when per-task totals are large enough that their order of addition shows in the average', () => {
    const costs = [1e16, 3, -1e16, 1, 7e15, 0.1, -7e15, 1e-7, 5e15 + 1, -5e15];
    const events = costs.map((costUsd, i): HistoryEvent => ({
      taskId: `big-${i}`, taskType: 'code', from: 'executing', to: 'done', event: 'succeed', at: T0 + i, attempt: 1, costUsd, durationMs: i,
    }));
    expectSameFigures(events, { since: new Date(T0), until: new Date(T0 + HOUR) });
  });

  it('when per-task totals overflow to ±infinity', () => {
    const tasks = ['up', 'up', 'down', 'down', 'small', 'up-too', 'up-too', 'small'];
    const events = [1e308, 1e308, -1e308, -1e308, 5, 1.5e308, 1e308, 0.25].map((costUsd, i): HistoryEvent => ({
      taskId: tasks[i] as string, taskType: 'code', from: 'executing', to: 'failed', event: 'dead_letter', at: T0 + i, attempt: 1, costUsd,
    }));
    expectSameFigures(events, { since: new Date(T0), until: new Date(T0 + HOUR) });
  });

  it('on durations that are all zeros of both signs (a sort puts -0 first)', () => {
    const zeros = [-0, 0, -0, -0, 0, -0];
    for (let k = 1; k <= zeros.length; k++) {
      const events = zeros.slice(0, k).map((durationMs, i): HistoryEvent => ({
        taskId: `z-${i}`, taskType: i % 2 === 0 ? 'a' : 'b', from: 'executing', to: 'done', event: 'succeed', at: T0 + i, attempt: 1, durationMs,
      }));
      expectSameFigures(events, { since: new Date(T0), until: new Date(T0 + MIN) });
      expectSameFigures([...events].reverse(), { since: new Date(T0), until: new Date(T0 + MIN) });
    }
  });

  it('call after call, large and small, with no working array of one call leaking into the next', () => {
    const random = prng(41);
    const large = randomHistory(random, 30_000, T0, DAY, 12_000);
    const small = randomHistory(random, 400, T0, DAY, 90);
    const whole = { since: new Date(T0), until: new Date(T0 + DAY) };
    for (const events of [large, small, large, small, small, large]) expectSameFigures(events, whole);
  });

  it('on an empty window and an empty history', () => {
    const events = randomHistory(prng(3), 200, T0, DAY, 50);
    expectSameFigures(events, { since: new Date(T0 + 5), until: new Date(T0 + 5) });
    expectSameFigures([], { since: new Date(T0), until: new Date(T0 + DAY) });
  });
});

describe('valuesAtSortedPositions', () => {
  /** Every position of interest, checked against a full sort with Object.is (so -0 and +0 are told apart). */
  function expectAsSorted(values: Float64Array): void {
    const sorted = values.slice().sort();
    const n = values.length;
    const positions = [0, 1, n >> 1, n - 2, n - 1, ...[5, 25, 50, 75, 95, 99].map((p) => nearestRank(n, p) - 1)].filter(
      (k) => k >= 0 && k < n,
    );
    const before = values.slice();
    const found = valuesAtSortedPositions(values, positions);
    positions.forEach((k, i) => expect(Object.is(found[i], sorted[k]), `position ${k} of ${n}`).toBe(true));
    expect(values).toEqual(before);
  }

  it('finds what a sort puts there, on small and large, spread and clustered input', () => {
    const random = prng(17);
    const inputs: Float64Array[] = [
      Float64Array.from({ length: 1_001 }, () => random() * 1000),
      Float64Array.from({ length: 60_000 }, () => Math.floor(random() * 600_000)),
      Float64Array.from({ length: 60_000 }, (_, i) => i),
      Float64Array.from({ length: 60_000 }, (_, i) => 60_000 - i),
      // Values sharing their leading 32 and 48 key bits: the selection has to go down to the last digits.
      Float64Array.from({ length: 50_000 }, () => 1_000 + Math.floor(random() * 20_000) * 2 ** -40),
      Float64Array.from({ length: 50_000 }, () => 1_000 + Math.floor(random() * 20_000) * 2 ** -50),
      Float64Array.from({ length: 50_000 }, () => -(1_000 + Math.floor(random() * 20_000) * 2 ** -40)),
      Float64Array.from({ length: 50_000 }, () => -(1_000 + Math.floor(random() * 20_000) * 2 ** -50)),
      new Float64Array(20_000).fill(4),
      Float64Array.from([2]),
    ];
    for (const input of inputs) expectAsSorted(input);
  });

  it('orders signs, zeros and infinities as a typed-array sort does', () => {
    const random = prng(19);
    const specials = [-0, 0, -Infinity, Infinity, -1e308, 1e308, -5e-324, 5e-324, -1, 1];
    const mixed = Float64Array.from({ length: 30_000 }, () =>
      random() < 0.3 ? (specials[Math.floor(random() * specials.length)] as number) : (random() - 0.5) * 1e6,
    );
    expectAsSorted(mixed);
    expectAsSorted(Float64Array.from({ length: 10_000 }, (_, i) => (i % 3 === 0 ? -0 : 0)));
    expectAsSorted(Float64Array.from({ length: 9 }, (_, i) => (i % 2 === 0 ? -0 : 0)));
  });

  it('refuses a position outside the values', () => {
    expect(() => valuesAtSortedPositions(new Float64Array(3), [3])).toThrow(RangeError);
    expect(() => valuesAtSortedPositions(new Float64Array(3), [-1])).toThrow(RangeError);
  });
});

describe('StringIndex', () => {
  it('numbers strings in the order first seen, as a Map would, across many growths', () => {
    const random = prng(23);
    const index = new StringIndex();
    const map = new Map<string, number>();
    for (let i = 0; i < 50_000; i++) {
      const key = pick(random, ['', 'a', 'é', '\u{1F600}', 't-']) + String(Math.floor(random() * 20_000));
      if (!map.has(key)) map.set(key, map.size);
      expect(index.indexOf(key)).toBe(map.get(key));
    }
    expect(index.size).toBe(map.size);
  });
});
