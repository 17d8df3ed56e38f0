import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardSchema, healthSchema, metricsSchema, queueSchema, statusSchema } from '../../lib/app/contracts.ts';
import { RUN_DURATION_BUCKETS_S } from '../../lib/app/prometheus-metrics.ts';
import { createApp } from '../../lib/api/app.ts';
import { combineBackend, storeReads } from '../../lib/api/backend.ts';
import { defaultConfig } from '../../lib/core/config.ts';
import type { HistoryEvent } from '../../lib/core/history.ts';
import { TASK_STATES } from '../../lib/core/state-machine.ts';
import { LocalActions } from '../../lib/local/api-backend.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import { naiveMetrics, seedHistory, tempDir, type Seeded, removeTempDirs } from './fixtures.ts';
import { parseExposition } from './prometheus-parse.ts';

/**
 * Every number the API prints, checked against a seeded history of a few thousand events recomputed the simple way
 * from the seeding's own ledger (test/api/fixtures.ts).
 */

const NOW = new Date('2026-06-01T00:00:00.000Z');
const HOUR = 3_600_000;
const store = new MemoryTaskStore();
const config = defaultConfig();
let seeded: Seeded;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  seeded = await seedHistory(store, { now: NOW, tasks: 1500, seed: 42, spanMs: 3 * 24 * HOUR });
  await store.heartbeat('seed', new Date(NOW.getTime() - 2_000));
  const service = new TaskService(tempDir(), store, config, () => NOW);
  const backend = combineBackend(
    storeReads({ store, config, clock: () => NOW, location: 'seeded' }),
    new LocalActions(service, () => {}, () => NOW),
  );
  app = createApp({ backend, auth: { kind: 'none' }, clock: () => NOW });
});

async function get(path: string): Promise<unknown> {
  const response = await app.request(path);
  expect(response.status).toBe(200);
  return response.json();
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;
const key = (e: HistoryEvent): string => `${e.at}|${e.taskId}|${e.event}`;

describe('a seeded history of a few thousand events', () => {
  it('is what the store holds, event for event', async () => {
    expect(seeded.ledger.length).toBeGreaterThan(3000);
    const stored = await store.history({ since: new Date(0), until: NOW });
    expect(stored.map(key).sort()).toEqual(seeded.ledger.map(key).sort());
    expect(stored.slice().sort((a, b) => key(a).localeCompare(key(b)))).toEqual(seeded.ledger.slice().sort((a, b) => key(a).localeCompare(key(b))));
  });

  it.each([
    ['30m', 0.5 * HOUR],
    ['6h', 6 * HOUR],
    ['24h', 24 * HOUR],
    ['2d', 48 * HOUR],
    ['7d', 168 * HOUR],
  ])('GET /metrics?since=%s matches the naive computation', async (since, lengthMs) => {
    const m = metricsSchema.parse(await get(`/metrics?since=${since}`));
    const start = NOW.getTime() - lengthMs;
    const naive = naiveMetrics(seeded.ledger, start, NOW.getTime());
    expect(m.completed).toBe(naive.completed);
    expect(m.failed).toBe(naive.failed);
    expect(m.retried).toBe(naive.retried);
    expect(m.errorRate).toBe(round6(naive.errorRate));
    expect(m.throughputPerHour).toBe(round6(naive.completed / (lengthMs / HOUR)));
    expect(m.costUsd).toBeCloseTo(naive.costUsd, 6);
    expect(m.latencyMs).toEqual({ avg: naive.latency.avg, p50: naive.latency.p50, p95: naive.latency.p95, max: naive.latency.max });
    expect(Object.keys(m.byType).sort()).toEqual(Object.keys(naive.byType).sort());
    for (const [type, t] of Object.entries(naive.byType)) {
      const got = m.byType[type];
      expect(got?.completed).toBe(t.completed);
      expect(got?.failed).toBe(t.failed);
      expect(got?.costUsd).toBeCloseTo(t.costUsd, 6);
      expect(got?.latencyMs.p50).toBe(t.p50);
      expect(got?.latencyMs.p95).toBe(t.p95);
    }
    // Each bucket of the series counts the events of its own interval.
    const width = m.bucketSeconds * 1000;
    for (const bucket of m.series) {
      const from = Math.max(Date.parse(bucket.start), start);
      const to = Date.parse(bucket.start) + width;
      const inBucket = naiveMetrics(seeded.ledger, from, Math.min(to, NOW.getTime()));
      expect([bucket.start, bucket.completed, bucket.failed]).toEqual([bucket.start, inBucket.completed, inBucket.failed]);
    }
    expect(m.series.reduce((s, b) => s + b.completed, 0)).toBe(naive.completed);
  });

  it('GET /status and /queue count every task in its state', async () => {
    const status = statusSchema.parse(await get('/status'));
    const expected = Object.fromEntries(TASK_STATES.map((s) => [s, 0]));
    for (const state of seeded.states.values()) expected[state] = (expected[state] ?? 0) + 1;
    expect(status.counts).toEqual(expected);
    expect(status.running.length).toBe(expected['executing']);
    expect(status.pendingApproval.length).toBe(expected['pending_approval']);

    const queue = queueSchema.parse(await get('/queue'));
    expect(queue.tasks.length).toBe((expected['needs_action'] ?? 0) + (expected['approved'] ?? 0));
    expect(queue.tasks.map((t) => t.position)).toEqual(queue.tasks.map((_t, i) => i + 1));
    // Scores never increase down the queue (all are needs_action here: nothing in the seed is approved).
    for (let i = 1; i < queue.tasks.length; i++) expect(queue.tasks[i]?.score).toBeLessThanOrEqual(queue.tasks[i - 1]?.score as number);
    const nowMs = NOW.getTime();
    for (const row of queue.tasks) {
      const record = await store.get(row.id);
      expect(row.waitSeconds).toBe(Math.floor((nowMs - (record?.created.getTime() ?? 0)) / 1000));
    }
  });

  it('GET /health counts the backlog and the error rate of its window', async () => {
    const health = healthSchema.parse(await get('/health'));
    const backlog = [...seeded.states.values()].filter((s) => s === 'needs_action' || s === 'approved' || s === 'retry_wait').length;
    expect(health.checks.find((c) => c.name === 'backlog')).toMatchObject({ value: backlog, threshold: 20 });
    const hour = naiveMetrics(seeded.ledger, NOW.getTime() - HOUR, NOW.getTime() + 1);
    const rate = hour.completed + hour.failed === 0 ? 0 : round6(hour.failed / (hour.completed + hour.failed));
    expect(health.checks.find((c) => c.name === 'error_rate')?.value).toBe(rate);
    const pending = (await store.list({ states: ['pending_approval'] })).map((r) => r.stateSince.getTime());
    expect(health.checks.find((c) => c.name === 'approval_age')?.value).toBe((NOW.getTime() - Math.min(...pending)) / 1000);
  });

  it('GET /dashboard agrees with the single reports', async () => {
    const d = dashboardSchema.parse(await get('/dashboard?since=24h'));
    const m = metricsSchema.parse(await get('/metrics?since=24h'));
    expect({ ...d.metrics, resources: null }).toEqual({ ...m, resources: null });
    expect(d.queue.head).toEqual(queueSchema.parse(await get('/queue')).tasks.slice(0, 10));
    const terminal = (await store.list()).filter((r) => ['done', 'failed', 'cancelled', 'rejected', 'expired'].includes(r.state));
    const latest = terminal.sort((a, b) => b.stateSince.getTime() - a.stateSince.getTime() || (a.id < b.id ? -1 : 1)).slice(0, 10);
    expect(d.recent.map((r) => r.id)).toEqual(latest.map((r) => r.id));
  });

  it('GET /metrics/prometheus totals every event ever recorded', async () => {
    const response = await app.request('/metrics/prometheus');
    const page = parseExposition(await response.text());
    const events = seeded.ledger;
    expect(page.value('fte_tasks_started_total')).toBe(events.filter((e) => e.event === 'plan' || e.event === 'execute').length);
    expect(page.value('fte_tasks_succeeded_total')).toBe(events.filter((e) => e.to === 'done').length);
    expect(page.value('fte_tasks_failed_total')).toBe(events.filter((e) => e.to === 'failed').length);
    expect(page.value('fte_tasks_retried_total')).toBe(events.filter((e) => e.to === 'retry_wait').length);
    expect(page.value('fte_cost_usd_total')).toBeCloseTo(events.reduce((s, e) => s + (e.costUsd ?? 0), 0), 6);
    const outcomes = { succeeded: ['succeed'], failed: ['fail', 'dead_letter'], planned: ['plan_ready'], interrupted: ['interrupt'] };
    for (const [outcome, eventTypes] of Object.entries(outcomes)) {
      const seconds = events.filter((e) => eventTypes.includes(e.event) && e.durationMs !== undefined).map((e) => (e.durationMs as number) / 1000);
      expect(page.value('fte_run_duration_seconds_count', { outcome })).toBe(seconds.length);
      expect(page.value('fte_run_duration_seconds_sum', { outcome })).toBeCloseTo(seconds.reduce((s, x) => s + x, 0), 6);
      for (const le of RUN_DURATION_BUCKETS_S) {
        expect(page.value('fte_run_duration_seconds_bucket', { outcome, le: String(le) })).toBe(seconds.filter((x) => x <= le).length);
      }
    }
    const queued = [...seeded.states.values()].filter((s) => s === 'needs_action' || s === 'approved' || s === 'retry_wait').length;
    expect(page.value('fte_queue_depth')).toBe(queued);
  });
});

afterAll(removeTempDirs);
