import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { z } from 'zod';
import {
  type StatusReport,
  addTaskResponseSchema,
  dashboardSchema,
  errorResponseSchema,
  healthSchema,
  metricsSchema,
  queueSchema,
  resumeResponseSchema,
  statusSchema,
  stopResponseSchema,
  taskActionResponseSchema,
  taskDetailSchema,
} from '../../lib/app/contracts.ts';
import { createApp, MAX_BODY_BYTES } from '../../lib/api/app.ts';
import { combineBackend, storeReads } from '../../lib/api/backend.ts';
import { PROMETHEUS_CONTENT_TYPE } from '../../lib/core/prometheus.ts';
import { StoreError } from '../../lib/core/store-error.ts';
import { LocalActions } from '../../lib/local/api-backend.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { removeTempDirs } from './fixtures.ts';
import { AUTH, NOW, TOKEN, ago, buildScenario, scenarioApp, type Scenario } from './scenario.ts';
import { parseExposition } from './prometheus-parse.ts';

let scenario: Scenario;
let app: Hono;

beforeEach(async () => {
  scenario = await buildScenario();
  app = scenarioApp(scenario);
});

afterEach(async () => {
  await scenario.service.close();
});

interface CallOptions {
  body?: string;
  headers?: Record<string, string>;
  auth?: boolean;
}

async function call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...(options.auth === false ? {} : AUTH), ...options.headers };
  return app.request(path, { method, headers, ...(options.body !== undefined ? { body: options.body } : {}) });
}

async function json<S extends z.ZodType>(response: Response, schema: S): Promise<z.output<S>> {
  return schema.parse(await response.json());
}

function postJson(path: string, body: unknown): Promise<Response> {
  return call('POST', path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
}

async function expectError(response: Response, status: number, code: string): Promise<string> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = errorResponseSchema.parse(await response.json());
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error.message;
}

describe('authentication', () => {
  it.each([
    ['no Authorization header', undefined],
    ['a wrong token', `Bearer ${'b'.repeat(64)}`],
    ['the right token with another scheme', `Basic ${TOKEN}`],
    ['a truncated token', `Bearer ${TOKEN.slice(0, 63)}`],
    ['an empty bearer', 'Bearer '],
  ])('rejects %s with 401 and a WWW-Authenticate challenge', async (_what, header) => {
    for (const [method, path] of [['GET', '/status'], ['GET', '/metrics/prometheus'], ['POST', '/stop'], ['GET', '/no-such-route']] as const) {
      const response = await app.request(path, { method, headers: header === undefined ? {} : { authorization: header } });
      await expectError(response, 401, 'UNAUTHORIZED');
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="fte"');
    }
    // Nothing changed behind the refusal.
    expect((await scenario.store.control()).stopRequested).toBe(false);
  });

  it('accepts the token case-insensitively in the scheme and with surrounding blanks', async () => {
    const response = await app.request('/status', { headers: { authorization: `bearer   ${TOKEN} ` } });
    expect(response.status).toBe(200);
  });

  it('checks before reading the body, so an unauthenticated oversized body is a 401, not a 413', async () => {
    const response = await app.request('/tasks', { method: 'POST', body: 'x'.repeat(MAX_BODY_BYTES * 2), headers: { 'content-type': 'application/json' } });
    await expectError(response, 401, 'UNAUTHORIZED');
  });

  it('serves without a token only when told so explicitly (the cloud, behind IAM)', async () => {
    const open = createApp({ backend: scenario.backend, auth: { kind: 'none' }, clock: scenario.clock });
    expect((await open.request('/health')).status).toBe(200);
  });
});

describe('GET /status', () => {
  it('reports counts, running tasks, pending approvals and the heartbeat', async () => {
    const response = await call('GET', '/status');
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const status = await json(response, statusSchema);
    expect(status.generatedAt).toBe(NOW.toISOString());
    expect(status.vault).toBe(scenario.vault);
    expect(status.counts).toEqual({
      needs_action: 2, planning: 0, pending_approval: 1, approved: 1, executing: 1, retry_wait: 1,
      done: 3, rejected: 0, expired: 0, failed: 1, cancelled: 0,
    });
    expect(status.orchestrator).toEqual({ running: false, pid: null, heartbeatAt: ago(5_000).toISOString(), heartbeatAgeSeconds: 5 });
    expect(status.stop).toEqual({ stopped: false, reason: null, stopFile: false });
    expect(status.running).toEqual([{ id: 'running-d', title: 'Task running-d', state: 'executing', attempt: 1, elapsedSeconds: 600 }]);
    expect(status.pendingApproval).toEqual([
      { id: 'pending-e', title: 'Task pending-e', waitingSeconds: 49 * 60, reasons: ['tasks of type "payment" always need approval'] },
    ]);
    expect(status.budget).toEqual({
      spentUsd: 0.38,
      spentByType: { email: 0.1, code: expect.closeTo(0.27, 9), payment: 0.01 },
      dailyUsd: null,
      exhausted: null,
      exhaustedTypes: {},
      // The oldest spend in the window (done-a, 119 min ago) leaves it 24 h after it was made.
      freesAt: new Date(NOW.getTime() - 119 * 60_000 + 24 * 3_600_000).toISOString(),
    });
  });
});

describe('GET /queue', () => {
  it('lists runnable tasks in dispatch order with wait and ETA, notes nobody admitted, malformed notes and retries', async () => {
    const queue = await json(await call('GET', '/queue'), queueSchema);
    // approved work first; then by score: g (urgency 5) 3.2125, the note i (high) 2.825, h (urgency 1) 1.616667.
    expect(queue.tasks.map((t) => [t.position, t.id, t.state])).toEqual([
      [1, 'approved-f', 'approved'],
      [2, 'queued-g', 'needs_action'],
      [3, 'note-i', null],
      [4, 'queued-h', 'needs_action'],
    ]);
    expect(queue.tasks.map((t) => t.waitSeconds)).toEqual([3000, 1800, 3600, 2400]);
    // D = median(60 s, 120 s) = 90 s; 2 slots, 1 running: p1 90, p2 2D − D/2 = 135, p3 2D = 180, p4 3D − D/2 = 225.
    expect(queue.tasks.map((t) => t.etaSeconds)).toEqual([90, 135, 180, 225]);
    const g = queue.tasks[1];
    expect(g?.score).toBe(3.2125);
    expect(g?.breakdown).toEqual({ urgency: 5, deadline: 1, sender: 3, ageBoost: 0.0125 });
    expect(queue.tasks[2]?.score).toBe(2.825);
    expect(queue.tasks[3]?.score).toBe(1.616667);
    expect(queue.invalid).toEqual([expect.objectContaining({ id: 'bad-j', reason: 'bad_yaml' })]);
    expect(queue.retrying).toEqual([{ id: 'retry-l', title: 'Task retry-l', attempts: 1, retryAt: new Date(NOW.getTime() + 300_000).toISOString() }]);
    expect(queue.running).toBe(1);
    expect(queue.concurrency).toBe(2);
  });
});

describe('GET /metrics', () => {
  it('computes the window the contract promises, with exact figures', async () => {
    const response = await call('GET', '/metrics?since=24h');
    expect(response.status).toBe(200);
    const m = await json(response, metricsSchema);
    expect(m.since).toBe(ago(24 * 3_600_000).toISOString());
    expect(m.until).toBe(NOW.toISOString());
    expect(m.completed).toBe(2);
    expect(m.failed).toBe(1);
    expect(m.retried).toBe(1);
    expect(m.errorRate).toBe(0.333333);
    expect(m.throughputPerHour).toBe(0.083333);
    expect(m.latencyMs).toEqual({ avg: 90_000, p50: 60_000, p95: 120_000, max: 120_000 });
    // Every run in the window costs: done 0.10 + 0.20, failed 0.05, plan 0.01, retried 0.02.
    expect(m.costUsd).toBe(0.38);
    expect(m.byType['code']).toEqual({ completed: 1, failed: 1, errorRate: 0.5, costUsd: 0.27, latencyMs: { avg: 120_000, p50: 120_000, p95: 120_000 } });
    expect(m.byType['email']).toEqual({ completed: 1, failed: 0, errorRate: 0, costUsd: 0.1, latencyMs: { avg: 60_000, p50: 60_000, p95: 60_000 } });
    expect(m.byType['payment']?.costUsd).toBe(0.01);
    expect(m.bucketSeconds).toBe(3600);
    expect(m.series).toHaveLength(24);
    expect(m.series.reduce((s, b) => s + b.completed, 0)).toBe(2);
    expect(m.resources.available).toBe(true);
    expect(m.resources.orchestrator).toBeNull();
  });

  it('takes an ISO start and defaults to the last 24 h', async () => {
    const iso = await json(await call('GET', `/metrics?since=${encodeURIComponent(ago(100 * 60_000).toISOString())}`), metricsSchema);
    expect([iso.completed, iso.failed]).toEqual([1, 1]); // done-b and failed-c; done-a ended 119 min ago
    const whole = await json(await call('GET', '/metrics?since=2d'), metricsSchema);
    expect(whole.completed).toBe(3);
    const fallback = await json(await call('GET', '/metrics'), metricsSchema);
    expect(fallback.since).toBe(ago(24 * 3_600_000).toISOString());
  });

  it.each([
    ['since=yesterday', 'SINCE_INVALID'],
    ['since=2099-01-01', 'SINCE_INVALID'],
    ['since=0h', 'SINCE_INVALID'],
    [`since=1h&until=${encodeURIComponent(ago(2 * 3_600_000).toISOString())}`, 'BAD_REQUEST'],
  ])('refuses %s with 400 %s', async (query, code) => {
    await expectError(await call('GET', `/metrics?${query}`), 400, code);
  });
});

describe('GET /health', () => {
  it('returns every check with value, threshold and verdict, the backlog included', async () => {
    const health = await json(await call('GET', '/health'), healthSchema);
    expect(health.status).toBe('healthy');
    const byName = Object.fromEntries(health.checks.map((c) => [c.name, c]));
    expect(Object.keys(byName)).toEqual(['scheduler', 'backlog', 'error_rate', 'idle', 'approval_age', 'stop_flag', 'budget']);
    // needs_action 2 + approved 1 + retry_wait 1 + the unadmitted note.
    expect(byName['backlog']).toMatchObject({ status: 'healthy', value: 5, threshold: 20 });
    expect(byName['scheduler']).toMatchObject({ status: 'healthy', value: 5, threshold: 60 });
    expect(byName['error_rate']).toMatchObject({ status: 'healthy', value: 0, threshold: 0.1 });
    // From the later of the last completion (88 min ago) and the oldest waiting task (50 min ago).
    expect(byName['idle']).toMatchObject({ status: 'healthy', value: 3000, threshold: 3600 });
    expect(byName['approval_age']).toMatchObject({ status: 'healthy', value: 49 * 60, threshold: 86_400 });
    expect(byName['stop_flag']).toMatchObject({ status: 'healthy', value: 0 });
  });

  it('turns degraded on the stop flag and unhealthy on a stale heartbeat', async () => {
    await postJson('/stop', {});
    const stopped = await json(await call('GET', '/health'), healthSchema);
    expect(stopped.status).toBe('degraded');
    expect(stopped.checks.find((c) => c.name === 'stop_flag')?.status).toBe('degraded');

    const later = await buildScenario({ clock: () => new Date(NOW.getTime() + 120_000) });
    try {
      const health = await json(await scenarioApp(later).request('/health', { headers: AUTH }), healthSchema);
      expect(health.status).toBe('unhealthy');
      expect(health.checks.find((c) => c.name === 'scheduler')).toMatchObject({ status: 'unhealthy', value: 125 });
    } finally {
      await later.service.close();
    }
  });
});

describe('GET /dashboard', () => {
  it('bundles status, health, the queue head, recent completions and metrics', async () => {
    const d = await json(await call('GET', '/dashboard?since=24h'), dashboardSchema);
    expect(d.status.counts.done).toBe(3);
    expect(d.health.status).toBe('healthy');
    expect(d.queue).toMatchObject({ total: 4, invalid: 1, retrying: 1 });
    expect(d.queue.head.map((r) => r.id)).toEqual(['approved-f', 'queued-g', 'note-i', 'queued-h']);
    expect(d.recent.map((r) => [r.id, r.state, r.durationMs])).toEqual([
      ['failed-c', 'failed', 30_000],
      ['done-b', 'done', 120_000],
      ['done-a', 'done', 60_000],
      ['old-k', 'done', null],
    ]);
    expect(d.recent[0]?.detail).toBe('invalid_task: cannot be done');
    expect(d.metrics.completed).toBe(2);
  });
});

describe('GET /tasks/:id', () => {
  it('shows a task with its runs, history and what may happen next', async () => {
    const detail = await json(await call('GET', '/tasks/pending-e'), taskDetailSchema);
    expect(detail.task).toMatchObject({ id: 'pending-e', state: 'pending_approval', costUsd: 0.01, attempts: 1 });
    expect(detail.folder).toBe('Pending_Approval');
    expect(detail.notePath).toBe(join(scenario.vault, 'Pending_Approval', 'pending-e.md'));
    expect(detail.runs).toEqual([expect.objectContaining({ kind: 'plan', durationMs: 10_000, costUsd: 0.01 })]);
    expect(detail.history.map((e) => e.event)).toEqual(['plan', 'plan_ready']);
    expect(detail.allowedEvents.sort()).toEqual(['approve', 'cancel', 'expire', 'reject']);
  });

  it('is 404 for an unknown task and 400 for a name that cannot be a task id', async () => {
    await expectError(await call('GET', '/tasks/nope'), 404, 'TASK_NOT_FOUND');
    await expectError(await call('GET', '/tasks/.hidden'), 400, 'INVALID_TASK_ID');
    await expectError(await call('GET', `/tasks/${'x'.repeat(201)}`), 400, 'INVALID_TASK_ID');
  });

  it('decodes percent-encoded ids', async () => {
    await scenario.store.create({ id: 'with space ü', title: 't', type: 'code', sender: null, urgency: 3, deadline: null, created: NOW, approvalRequired: false, approvalReasons: [] }, NOW);
    const detail = await json(await call('GET', `/tasks/${encodeURIComponent('with space ü')}`), taskDetailSchema);
    expect(detail.task.id).toBe('with space ü');
  });
});

describe('POST /tasks', () => {
  it('writes a note into Needs_Action/, admits it and answers 201 with the task', async () => {
    const response = await postJson('/tasks', { title: 'Send the Q1 report', urgency: 'high', type: 'email', from: 'Dana <dana@company.com>', body: 'Please send email to the board.' });
    expect(response.status).toBe(201);
    const created = await json(response, addTaskResponseSchema);
    expect(created.id).toBe('send-the-q1-report');
    expect(created.task).toMatchObject({ state: 'needs_action', urgency: 4, type: 'email', sender: 'dana@company.com', approvalRequired: true });
    expect(created.task.approvalReasons).toEqual(['mentions "send email"']);
    expect(existsSync(join(scenario.vault, 'Needs_Action', 'send-the-q1-report.md'))).toBe(true);
    expect((await scenario.store.get('send-the-q1-report'))?.state).toBe('needs_action');
    // A second task of the same title gets a free name.
    expect((await json(await postJson('/tasks', { title: 'Send the Q1 report' }), addTaskResponseSchema)).id).toBe('send-the-q1-report-2');
  });

  it.each([
    ['no title', {}],
    ['an empty title', { title: '   ' }],
    ['an unknown key', { title: 'x', priority: 'high' }],
    ['a bad urgency', { title: 'x', urgency: 'hgih' }],
    ['an urgency out of range', { title: 'x', urgency: 9 }],
    ['a type of two words', { title: 'x', type: 'two words' }],
    ['a non-object body', ['title']],
  ])('refuses %s with 400 VALIDATION_FAILED', async (_what, body) => {
    await expectError(await postJson('/tasks', body), 400, 'VALIDATION_FAILED');
  });

  it('refuses a field the note parser rejects with 400, leaving no file behind', async () => {
    const before = readdirSync(join(scenario.vault, 'Needs_Action')).sort();
    const message = await expectError(await postJson('/tasks', { title: 'x', deadline: '2026-02-30' }), 400, 'TASK_PARSE_ERROR');
    expect(message).toMatch(/deadline/);
    expect(readdirSync(join(scenario.vault, 'Needs_Action')).sort()).toEqual(before);
    expect(readdirSync(join(scenario.vault, 'Failed'))).toEqual([]);
  });

  it('refuses malformed JSON with 400 INVALID_JSON', async () => {
    await expectError(await call('POST', '/tasks', { body: '{"title": "x",', headers: { 'content-type': 'application/json' } }), 400, 'INVALID_JSON');
  });

  it('refuses a body that is not declared JSON with 415', async () => {
    await expectError(await call('POST', '/tasks', { body: '{"title":"x"}', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    await expectError(await call('POST', '/tasks', { body: '{"title":"x"}' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses a body over 64 KiB with 413, whether or not it declares its length', async () => {
    const big = JSON.stringify({ title: 'x', body: 'y'.repeat(MAX_BODY_BYTES) });
    await expectError(await call('POST', '/tasks', { body: big, headers: { 'content-type': 'application/json' } }), 413, 'PAYLOAD_TOO_LARGE');
    await expectError(
      await call('POST', '/tasks', { body: big, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(big)) } }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    const justUnder = JSON.stringify({ title: 'just under', body: 'y'.repeat(50_000) });
    expect((await call('POST', '/tasks', { body: justUnder, headers: { 'content-type': 'application/json' } })).status).toBe(201);
  });
});

describe('POST /tasks/:id/approve and /reject', () => {
  it('approves a pending task, moves its note to Approved/ and records who', async () => {
    const response = await call('POST', '/tasks/pending-e/approve');
    expect(response.status).toBe(200);
    const result = await json(response, taskActionResponseSchema);
    expect(result).toMatchObject({ id: 'pending-e', state: 'approved' });
    expect(result.task.approval).toEqual({ by: 'api', at: NOW.toISOString() });
    expect(existsSync(join(scenario.vault, 'Approved', 'pending-e.md'))).toBe(true);
    expect(existsSync(join(scenario.vault, 'Pending_Approval', 'pending-e.md'))).toBe(false);
  });

  it('is 409 for a task that is not pending approval, and changes nothing', async () => {
    const before = await scenario.store.get('queued-g');
    const message = await expectError(await call('POST', '/tasks/queued-g/approve'), 409, 'INVALID_TRANSITION');
    expect(message).toMatch(/cannot approve from needs_action/);
    expect(await scenario.store.get('queued-g')).toEqual(before);
    expect((await call('POST', '/tasks/pending-e/approve')).status).toBe(200);
    await expectError(await call('POST', '/tasks/pending-e/approve'), 409, 'INVALID_TRANSITION');
    await expectError(await call('POST', '/tasks/done-a/reject'), 409, 'INVALID_TRANSITION');
  });

  it('is 404 for an unknown task', async () => {
    await expectError(await call('POST', '/tasks/ghost/approve'), 404, 'TASK_NOT_FOUND');
    await expectError(await postJson('/tasks/ghost/reject', { reason: 'no' }), 404, 'TASK_NOT_FOUND');
  });

  it('rejects with a reason, moving the note to Rejected/', async () => {
    const result = await json(await postJson('/tasks/pending-e/reject', { reason: 'too expensive' }), taskActionResponseSchema);
    expect(result.task).toMatchObject({ state: 'rejected', reason: 'too expensive' });
    expect(existsSync(join(scenario.vault, 'Rejected', 'pending-e.md'))).toBe(true);
    await expectError(await postJson('/tasks/queued-g/reject', { reason: '' }), 400, 'VALIDATION_FAILED');
    await expectError(await postJson('/tasks/queued-g/approve', { by: 'someone-else' }), 400, 'VALIDATION_FAILED');
  });

  it('maps a write that lost a race to 409 STALE_WRITE', async () => {
    // Another writer moves the task between this action's read and its write.
    const staleApp = createApp({
      backend: {
        ...scenario.backend,
        approve: async (id) => {
          const record = await scenario.store.get(id);
          await scenario.store.apply(id, { type: 'approve', by: 'someone' }, NOW);
          await scenario.store.apply(id, { type: 'cancel', by: 'api' }, NOW, { expectedVersion: record?.version ?? 0 });
          throw new Error('unreachable: the write above must fail');
        },
      },
      auth: { kind: 'none' },
      clock: scenario.clock,
    });
    await expectError(await staleApp.request('/tasks/pending-e/approve', { method: 'POST' }), 409, 'STALE_WRITE');
  });
});

describe('POST /stop and /resume', () => {
  it('stops dispatch; with now, also asks the orchestrator to stop its agents', async () => {
    const stopped = await json(await postJson('/stop', { now: true, reason: 'maintenance' }), stopResponseSchema);
    expect(stopped).toEqual({ stopped: true, now: true, reason: 'maintenance' });
    const control = await scenario.store.control();
    expect(control).toMatchObject({ stopRequested: true, stopReason: 'maintenance' });
    expect(existsSync(join(scenario.service.vault.stateDir, 'stop-now'))).toBe(true);
    const status = await json(await call('GET', '/status'), statusSchema);
    expect(status.stop).toEqual({ stopped: true, reason: 'maintenance', stopFile: false });
  });

  it('stops without a body, with a default reason naming the caller', async () => {
    const stopped = await json(await call('POST', '/stop'), stopResponseSchema);
    expect(stopped).toEqual({ stopped: true, now: false, reason: 'api stopped dispatch' });
  });

  it('resumes, removing the stop file as well', async () => {
    await postJson('/stop', {});
    writeFileSync(join(scenario.vault, '.claude_stop'), '');
    expect((await json(await call('GET', '/status'), statusSchema)).stop.stopFile).toBe(true);
    const resumed = await json(await call('POST', '/resume'), resumeResponseSchema);
    expect(resumed).toEqual({ stopped: false, removedStopFile: true });
    expect(existsSync(join(scenario.vault, '.claude_stop'))).toBe(false);
    expect((await scenario.store.control()).stopRequested).toBe(false);
  });

  it('refuses unknown fields', async () => {
    await expectError(await postJson('/stop', { now: 'yes' }), 400, 'VALIDATION_FAILED');
    await expectError(await postJson('/resume', { force: true }), 400, 'VALIDATION_FAILED');
  });
});

describe('GET /metrics/prometheus', () => {
  it('serves the text exposition format with the figures of the store', async () => {
    const response = await call('GET', '/metrics/prometheus');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE);
    const page = parseExposition(await response.text());
    const value = (name: string, labels: Record<string, string> = {}) => page.value(name, labels);
    expect(value('fte_tasks', { state: 'done' })).toBe(3);
    expect(value('fte_tasks', { state: 'needs_action' })).toBe(2);
    expect(value('fte_queue_depth')).toBe(4);
    expect(value('fte_running_tasks')).toBe(1);
    expect(value('fte_oldest_queued_age_seconds')).toBe(3000);
    expect(value('fte_oldest_approval_age_seconds')).toBe(49 * 60);
    expect(value('fte_stop_flag')).toBe(0);
    expect(value('fte_heartbeat_age_seconds')).toBe(5);
    // execute ×6 (a, b, c, d, l, k) + plan ×2 (e, f).
    expect(value('fte_tasks_started_total')).toBe(8);
    expect(value('fte_tasks_succeeded_total')).toBe(3);
    expect(value('fte_tasks_failed_total')).toBe(1);
    expect(value('fte_tasks_retried_total')).toBe(1);
    expect(value('fte_cost_usd_total')).toBe(0.88);
    // Succeeded runs of 60 s, 120 s and 999 s; failed runs of 30 s and 5 s; one 10 s planning run.
    expect(value('fte_run_duration_seconds_bucket', { outcome: 'succeeded', le: '30' })).toBe(0);
    expect(value('fte_run_duration_seconds_bucket', { outcome: 'succeeded', le: '60' })).toBe(1);
    expect(value('fte_run_duration_seconds_bucket', { outcome: 'succeeded', le: '120' })).toBe(2);
    expect(value('fte_run_duration_seconds_bucket', { outcome: 'succeeded', le: '600' })).toBe(2);
    expect(value('fte_run_duration_seconds_bucket', { outcome: 'succeeded', le: '1200' })).toBe(3);
    expect(value('fte_run_duration_seconds_bucket', { outcome: 'succeeded', le: '+Inf' })).toBe(3);
    expect(value('fte_run_duration_seconds_sum', { outcome: 'succeeded' })).toBe(1179);
    expect(value('fte_run_duration_seconds_count', { outcome: 'failed' })).toBe(2);
    expect(value('fte_run_duration_seconds_bucket', { outcome: 'failed', le: '5' })).toBe(1);
    expect(value('fte_run_duration_seconds_bucket', { outcome: 'planned', le: '10' })).toBe(1);
    // The rolling 24 h window holds every run but old-k's.
    expect(value('fte_budget_spent_usd')).toBe(0.38);
    expect(value('fte_budget_exhausted')).toBe(0);
    expect(value('fte_health_status')).toBe(0);
    expect(value('fte_health_check_status', { check: 'backlog' })).toBe(0);
  });

  it('reports a heartbeat that never happened as +Inf, and the stop flag', async () => {
    const fresh = await buildScenario();
    try {
      const backend = combineBackend(
        storeReads({ store: new MemoryTaskStore(), config: fresh.config, clock: fresh.clock, location: 'x', stopFilePresent: () => true }),
        new LocalActions(fresh.service),
      );
      const page = parseExposition(await (await createApp({ backend, auth: { kind: 'none' } }).request('/metrics/prometheus')).text());
      expect(page.value('fte_heartbeat_age_seconds', {})).toBe(Infinity);
      expect(page.value('fte_stop_flag', {})).toBe(1);
      expect(page.value('fte_health_status', {})).toBe(2);
    } finally {
      await fresh.service.close();
    }
  });
});

describe('errors', () => {
  it('answers an unknown route with 404 JSON', async () => {
    await expectError(await call('GET', '/nothing/here'), 404, 'NOT_FOUND');
    await expectError(await call('DELETE', '/status'), 404, 'NOT_FOUND');
  });

  it('turns a response that breaks its contract into a 500, never a malformed payload', async () => {
    const seen: string[] = [];
    const broken = createApp({
      // A backend bug the compiler cannot see (say, a store adapter returning a number): the contract still catches it.
      backend: { ...scenario.backend, status: async () => JSON.parse('{"vault": 42}') as StatusReport },
      auth: { kind: 'none' },
      onInternalError: (_err, mapping) => seen.push(mapping.code),
    });
    const message = await expectError(await broken.request('/status'), 500, 'RESPONSE_INVALID');
    expect(message).toMatch(/contract/);
    expect(seen).toEqual(['RESPONSE_INVALID']);
  });

  it('hides the message of an unexpected failure behind a generic 500', async () => {
    const failing = createApp({
      backend: { ...scenario.backend, queue: async () => { throw new TypeError('secret /home/path detail'); } },
      auth: { kind: 'none' },
    });
    const message = await expectError(await failing.request('/queue'), 500, 'INTERNAL');
    expect(message).not.toMatch(/secret/);
  });

  it('is 503 when the store cannot be used', async () => {
    const down = createApp({
      backend: { ...scenario.backend, health: async () => { throw new StoreError('task store is closed'); } },
      auth: { kind: 'none' },
    });
    await expectError(await down.request('/health'), 503, 'STORE_UNAVAILABLE');
  });
});

afterAll(removeTempDirs);
