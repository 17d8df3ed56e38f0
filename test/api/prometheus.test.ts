import { afterAll, describe, expect, it } from 'vitest';
import { HistoryTotalsCache, emptyTotals, fteMetricFamilies, addEvent } from '../../lib/app/prometheus-metrics.ts';
import { evaluateHealth } from '../../lib/core/health.ts';
import { defaultConfig } from '../../lib/core/config.ts';
import {
  PrometheusFormatError,
  emptyBuckets,
  escapeHelp,
  escapeLabelValue,
  formatExposition,
  formatValue,
  observe,
  toHistogramSample,
  type MetricFamily,
} from '../../lib/core/prometheus.ts';
import { TASK_STATES, type TaskState } from '../../lib/core/state-machine.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { newTask, run, removeTempDirs } from './fixtures.ts';
import { parseExposition, parseLabels } from './prometheus-parse.ts';

describe('formatExposition', () => {
  it('introduces each family with HELP and TYPE, then its samples, and ends with a line feed', () => {
    const text = formatExposition([
      { name: 'up_total', help: 'Things.', type: 'counter', samples: [{ value: 3 }] },
      { name: 'depth', help: 'Depth by state.', type: 'gauge', samples: [{ labels: { state: 'a' }, value: 1.5 }, { labels: { state: 'b' }, value: 0 }] },
    ]);
    expect(text).toBe(
      [
        '# HELP up_total Things.',
        '# TYPE up_total counter',
        'up_total 3',
        '# HELP depth Depth by state.',
        '# TYPE depth gauge',
        'depth{state="a"} 1.5',
        'depth{state="b"} 0',
        '',
      ].join('\n'),
    );
    const page = parseExposition(text);
    expect(page.families.get('depth')?.type).toBe('gauge');
    expect(page.value('depth', { state: 'a' })).toBe(1.5);
  });

  it('escapes backslash, double quote and newline in label values, and reads them back unchanged', () => {
    const nasty = 'C:\\path "quoted"\nnext line';
    expect(escapeLabelValue(nasty)).toBe('C:\\\\path \\"quoted\\"\\nnext line');
    const text = formatExposition([{ name: 'g', help: 'h', type: 'gauge', samples: [{ labels: { task: nasty, other: 'plain' }, value: 1 }] }]);
    // One sample line: the newline inside the value did not split it.
    expect(text.split('\n').filter((l) => l.startsWith('g{'))).toHaveLength(1);
    expect(parseExposition(text).value('g', { task: nasty, other: 'plain' })).toBe(1);
    expect(parseLabels('{a="x\\\\y",b="\\""}')).toEqual({ a: 'x\\y', b: '"' });
  });

  it('escapes backslash and newline in HELP, and leaves quotes alone there', () => {
    expect(escapeHelp('a\\b\nc "d"')).toBe('a\\\\b\\nc "d"');
    const page = parseExposition(formatExposition([{ name: 'g', help: 'two\nlines \\ "q"', type: 'gauge', samples: [] }]));
    expect(page.families.get('g')?.help).toBe('two\nlines \\ "q"');
  });

  it('spells special values as Go does', () => {
    expect([NaN, Infinity, -Infinity, 0, -2.5, 1e21, 0.1].map(formatValue)).toEqual(['NaN', '+Inf', '-Inf', '0', '-2.5', '1e+21', '0.1']);
    const page = parseExposition(formatExposition([{ name: 'g', help: 'h', type: 'gauge', samples: [{ labels: { k: 'a' }, value: Infinity }, { labels: { k: 'b' }, value: NaN }] }]));
    expect(page.value('g', { k: 'a' })).toBe(Infinity);
    expect(page.value('g', { k: 'b' })).toBeNaN();
  });

  it('writes a histogram as cumulative _bucket series ending in le="+Inf", then _sum and _count', () => {
    const acc = emptyBuckets([1, 5, 10]);
    for (const v of [0.5, 1, 3, 7, 12, 40]) observe(acc, v);
    const text = formatExposition([{ name: 'run_seconds', help: 'Runs.', type: 'histogram', samples: [toHistogramSample(acc, { kind: 'x' })] }]);
    expect(text.split('\n').slice(2, -1)).toEqual([
      'run_seconds_bucket{kind="x",le="1"} 2',
      'run_seconds_bucket{kind="x",le="5"} 3',
      'run_seconds_bucket{kind="x",le="10"} 4',
      'run_seconds_bucket{kind="x",le="+Inf"} 6',
      'run_seconds_sum{kind="x"} 63.5',
      'run_seconds_count{kind="x"} 6',
    ]);
    const page = parseExposition(text);
    expect(page.value('run_seconds_bucket', { kind: 'x', le: '+Inf' })).toBe(page.value('run_seconds_count', { kind: 'x' }));
  });

  it('ignores non-finite observations, which would poison _sum', () => {
    const acc = emptyBuckets([1]);
    observe(acc, NaN);
    observe(acc, Infinity);
    observe(acc, 0.5);
    expect([acc.count, acc.sum, acc.counts]).toEqual([1, 0.5, [1, 0]]);
  });

  const bad: Array<[string, MetricFamily[], RegExp]> = [
    ['a metric name with a dash', [{ name: 'bad-name', help: 'h', type: 'gauge', samples: [] }], /invalid metric name/],
    ['a metric name starting with a digit', [{ name: '1x', help: 'h', type: 'gauge', samples: [] }], /invalid metric name/],
    ['a label name with a dot', [{ name: 'g', help: 'h', type: 'gauge', samples: [{ labels: { 'a.b': 'x' }, value: 1 }] }], /invalid label name/],
    ['a reserved __ label', [{ name: 'g', help: 'h', type: 'gauge', samples: [{ labels: { __name__: 'x' }, value: 1 }] }], /reserved/],
    ['le as a histogram label', [{ name: 'h', help: 'h', type: 'histogram', samples: [{ labels: { le: '1' }, buckets: [], sum: 0, count: 0 }] }], /reserved/],
    ['a counter not named _total', [{ name: 'runs', help: 'h', type: 'counter', samples: [{ value: 1 }] }], /_total/],
    ['a negative counter', [{ name: 'runs_total', help: 'h', type: 'counter', samples: [{ value: -1 }] }], /negative/],
    ['a family twice', [{ name: 'g', help: 'h', type: 'gauge', samples: [] }, { name: 'g', help: 'h', type: 'gauge', samples: [] }], /twice/],
    ['one series twice', [{ name: 'g', help: 'h', type: 'gauge', samples: [{ labels: { a: '1', b: '2' }, value: 1 }, { labels: { b: '2', a: '1' }, value: 2 }] }], /duplicate series/],
    ['bucket bounds out of order', [{ name: 'h', help: 'h', type: 'histogram', samples: [{ buckets: [{ le: 5, count: 1 }, { le: 1, count: 2 }], sum: 1, count: 2 }] }], /increasing/],
    ['counts that are not cumulative', [{ name: 'h', help: 'h', type: 'histogram', samples: [{ buckets: [{ le: 1, count: 3 }, { le: 5, count: 2 }], sum: 1, count: 3 }] }], /cumulative/],
    ['a _count below the last bucket', [{ name: 'h', help: 'h', type: 'histogram', samples: [{ buckets: [{ le: 1, count: 3 }], sum: 1, count: 2 }] }], /_count/],
  ];
  it.each(bad)('refuses %s', (_what, families, message) => {
    expect(() => formatExposition(families)).toThrow(PrometheusFormatError);
    expect(() => formatExposition(families)).toThrow(message);
  });
});

describe('fte metric families', () => {
  const config = defaultConfig();
  const now = new Date('2026-01-01T00:00:00Z');

  it('render to a page the strict reader accepts, every family once', () => {
    const totals = emptyTotals();
    const counts = Object.fromEntries(TASK_STATES.map((s, i) => [s, i])) as Record<TaskState, number>;
    const health = evaluateHealth(
      { now, heartbeatAt: null, stopped: true, queued: 3, running: 1, recentCompleted: 0, recentFailed: 0, lastCompletionAt: null, oldestQueuedAt: null, oldestApprovalRequestedAt: null },
      config,
    );
    const page = parseExposition(
      formatExposition(
        fteMetricFamilies({ counts, queued: 3, running: 1, oldestQueuedAgeSeconds: null, oldestApprovalAgeSeconds: 12.5, stopped: true, heartbeatAgeSeconds: null, totals, health, budgetSpentUsd: 1.25, budgetExhausted: true }),
      ),
    );
    expect([...page.families.keys()]).toEqual([
      'fte_tasks', 'fte_queue_depth', 'fte_running_tasks', 'fte_oldest_queued_age_seconds', 'fte_oldest_approval_age_seconds',
      'fte_stop_flag', 'fte_heartbeat_age_seconds', 'fte_tasks_started_total', 'fte_tasks_succeeded_total', 'fte_tasks_failed_total',
      'fte_tasks_retried_total', 'fte_cost_usd_total', 'fte_run_duration_seconds', 'fte_budget_spent_usd', 'fte_budget_exhausted',
      'fte_health_status', 'fte_health_check_status',
    ]);
    expect(page.value('fte_budget_spent_usd')).toBe(1.25);
    expect(page.value('fte_budget_exhausted')).toBe(1);
    expect(page.families.get('fte_tasks')?.samples).toHaveLength(TASK_STATES.length);
    expect(page.value('fte_tasks', { state: 'approved' })).toBe(TASK_STATES.indexOf('approved'));
    expect(page.value('fte_oldest_queued_age_seconds')).toBe(0);
    expect(page.value('fte_oldest_approval_age_seconds')).toBe(12.5);
    expect(page.value('fte_heartbeat_age_seconds')).toBe(Infinity);
    expect(page.value('fte_stop_flag')).toBe(1);
    expect(page.value('fte_health_status')).toBe(2);
    expect(page.value('fte_health_check_status', { check: 'stop_flag' })).toBe(1);
    expect(page.families.get('fte_run_duration_seconds')?.samples.filter((s) => s.name.endsWith('_count')).map((s) => s.labels['outcome'])).toEqual([
      'succeeded', 'failed', 'planned', 'interrupted',
    ]);
  });

  it('keep counters exact and monotonic across scrapes while history grows', async () => {
    const store = new MemoryTaskStore();
    const cache = new HistoryTotalsCache(60_000);
    const t0 = new Date('2026-01-01T00:00:00Z').getTime();
    const at = (minutes: number) => new Date(t0 + minutes * 60_000);
    const expected = emptyTotals();
    let scrapes = 0;
    const check = async (minute: number) => {
      const totals = await cache.read(store, at(minute));
      const fresh = await new HistoryTotalsCache(60_000).read(store, at(minute));
      expect(totals).toEqual(fresh);
      for (const e of await store.history({ since: new Date(0), until: new Date(at(minute).getTime() + 1) })) addEvent(expected, e);
      expect(totals).toEqual(expected);
      Object.assign(expected, emptyTotals());
      scrapes++;
    };
    for (let i = 0; i < 20; i++) {
      const id = `t${i}`;
      await store.create(newTask(id, at(i * 3)), at(i * 3));
      await store.apply(id, { type: 'execute' }, at(i * 3));
      await store.apply(id, { type: 'succeed' }, at(i * 3 + 1), { run: run(id, 1, at(i * 3 + 1), 1000 * (i + 1), 0.01) });
      await check(i * 3 + 1);
      await check(i * 3 + 2);
    }
    expect(scrapes).toBe(40);
    const final = await cache.read(store, at(100));
    expect([final.started, final.succeeded, final.durations.succeeded.count]).toEqual([20, 20, 20]);
    expect(final.costUsd).toBeCloseTo(0.2, 9);
  });
});

afterAll(removeTempDirs);
