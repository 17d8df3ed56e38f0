import { createHmac } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../lib/core/config.ts';
import { verifySignature, type NotificationPayload, type TaskSummary } from '../../lib/core/webhooks.ts';
import type { EngineEvent } from '../../lib/local/engine.ts';
import { Notifier, type NotifierOptions } from '../../lib/local/notifier.ts';
import { startReceiver, type Receiver } from '../fixtures/webhook-receiver.ts';

/** The notifier against a real HTTP receiver on 127.0.0.1. */

let receiver: Receiver;
let logged: EngineEvent[];
const notifiers: Notifier[] = [];

beforeEach(async () => {
  receiver = await startReceiver();
  logged = [];
});

afterEach(async () => {
  for (const n of notifiers.splice(0)) await n.close(0);
  await receiver.close();
});

const FAST_RETRY = { initialMs: 20, multiplier: 2, maxMs: 200 };
const TASK: TaskSummary = { id: 'pay-acme', title: 'Pay ACME', type: 'payment', state: 'pending_approval', attempts: 1, approvalReasons: ['payment'], lastError: null };

function notifier(raw: Record<string, unknown>, options: Partial<NotifierOptions> = {}): Notifier {
  const n = new Notifier({
    notifications: validateConfig({ notifications: { enabled: true, ...raw } }).notifications,
    log: (event) => logged.push(event),
    vault: '/vaults/acme',
    lookupTask: async (id) => (id === TASK.id ? TASK : null),
    retry: FAST_RETRY,
    ...options,
  });
  notifiers.push(n);
  return n;
}

function event(name: string, fields: Partial<EngineEvent> = {}): EngineEvent {
  return { at: new Date().toISOString(), event: name, message: `${fields.taskId ?? 'orchestrator'}: ${name}`, ...fields };
}

const payloadOf = (body: string): NotificationPayload => JSON.parse(body) as NotificationPayload;
const events = (name: string): EngineEvent[] => logged.filter((e) => e.event === name);

describe('the webhook notifier', () => {
  it('signs every delivery: the receiver verifies X-Fte-Signature over the timestamp and the raw body', async () => {
    const n = notifier({ targets: [{ url: `${receiver.url}/hook`, secret: 'whsec_abc', events: ['approval_requested'] }] });
    n.notify(event('awaiting_approval', { taskId: 'pay-acme', message: 'pay-acme: plan ready, waiting for approval' }));
    const [delivery] = await receiver.waitFor('/hook', 1);
    if (delivery === undefined) throw new Error('no delivery');
    const timestamp = delivery.headers['x-fte-timestamp'] as string;
    const signature = delivery.headers['x-fte-signature'] as string;
    // Checked the way a receiver would, independently of fte's own helper…
    const expected = `sha256=${createHmac('sha256', 'whsec_abc').update(`${timestamp}.${delivery.body}`).digest('hex')}`;
    expect(signature).toBe(expected);
    // …and with it, which also checks the timestamp is fresh.
    expect(verifySignature({ secret: 'whsec_abc', body: delivery.body, signature, timestamp, nowSeconds: Math.floor(Date.now() / 1000) })).toEqual({ ok: true });
    expect(verifySignature({ secret: 'wrong', body: delivery.body, signature, timestamp, nowSeconds: Math.floor(Date.now() / 1000) }).ok).toBe(false);
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(5);

    expect(delivery.headers['content-type']).toBe('application/json');
    expect(delivery.headers['x-fte-event']).toBe('approval_requested');
    const payload = payloadOf(delivery.body);
    expect(payload).toMatchObject({
      event: 'approval_requested',
      taskId: 'pay-acme',
      message: 'pay-acme: plan ready, waiting for approval',
      source: 'awaiting_approval',
      task: TASK,
      orchestrator: { vault: '/vaults/acme', pid: process.pid },
    });
    expect(delivery.headers['x-fte-delivery']).toBe(payload.id);
    await n.close(1000);
    expect(events('webhook_delivered')).toMatchObject([{ taskId: 'pay-acme', notification: 'approval_requested', attempt: 1, status: 200, target: `${receiver.url}/…` }]);
  });

  it('sends each target only the notifications it subscribed to', async () => {
    const n = notifier({
      events: ['approval_requested'],
      targets: [
        { url: `${receiver.url}/failures`, events: ['task_failed'] },
        { url: `${receiver.url}/ops`, events: ['task_dead_lettered', 'budget_exhausted'] },
        // No list of its own: the section's.
        { url: `${receiver.url}/approvals` },
      ],
    });
    for (const e of [
      event('admitted', { taskId: 'a' }),
      event('dispatch', { taskId: 'a' }),
      event('retry_scheduled', { taskId: 'a', errorClass: 'agent_error' }),
      event('failed', { taskId: 'a', errorClass: 'agent_error' }),
      event('done', { taskId: 'b' }),
      event('budget_exhausted', { spentUsd: 12.5 }),
      // The engine logs it again when the amount changes: still the same exhaustion, not notified twice.
      event('budget_exhausted', { spentUsd: 12.9 }),
      event('awaiting_approval', { taskId: 'pay-acme' }),
      event('webhook_failed', {}),
    ]) {
      n.notify(e);
    }
    await n.close(5000);
    const seen = (path: string) => receiver.at(path).map((r) => `${payloadOf(r.body).event}<${payloadOf(r.body).source}`).sort();
    expect(seen('/failures')).toEqual(['task_failed<failed', 'task_failed<retry_scheduled']);
    expect(seen('/ops')).toEqual(['budget_exhausted<budget_exhausted', 'task_dead_lettered<failed']);
    expect(seen('/approvals')).toEqual(['approval_requested<awaiting_approval']);
    const failed = receiver.at('/failures').map((r) => payloadOf(r.body)).find((p) => p.source === 'failed');
    expect(failed?.details).toEqual({ errorClass: 'agent_error', willRetry: false });
    // No secret, no signature (the timestamp is still sent).
    expect(receiver.at('/ops')[0]?.headers['x-fte-signature']).toBeUndefined();
    expect(receiver.received).toHaveLength(5);
  });

  it('retries a 500 with backoff and delivers on a later attempt, each attempt freshly signed', async () => {
    receiver.on('/flaky', (nth) => (nth <= 2 ? { status: 500 } : { status: 204 }));
    const n = notifier({ max_attempts: 5, targets: [{ url: `${receiver.url}/flaky`, secret: 's', events: ['task_failed'] }] });
    n.notify(event('failed', { taskId: 'x' }));
    const attempts = await receiver.waitFor('/flaky', 3);
    await n.close(1000);
    expect(new Set(attempts.map((r) => r.headers['x-fte-delivery'])).size).toBe(1);
    expect(new Set(attempts.map((r) => r.body)).size).toBe(1);
    for (const r of attempts) {
      const check = verifySignature({ secret: 's', body: r.body, signature: r.headers['x-fte-signature'] as string, timestamp: r.headers['x-fte-timestamp'] as string, nowSeconds: Math.floor(Date.now() / 1000) });
      expect(check).toEqual({ ok: true });
    }
    // Backoff: the second retry waited longer than the first (20 ms·2^(n−1) with equal jitter: ≥ 10 ms, ≥ 20 ms).
    expect((attempts[1]?.at ?? 0) - (attempts[0]?.answeredAt ?? 0)).toBeGreaterThanOrEqual(9);
    expect((attempts[2]?.at ?? 0) - (attempts[1]?.answeredAt ?? 0)).toBeGreaterThanOrEqual(19);
    expect(events('webhook_retry').map((e) => [e['attempt'], e['status']])).toEqual([[1, 500], [2, 500]]);
    expect(events('webhook_delivered').map((e) => [e['attempt'], e['status']])).toEqual([[3, 204]]);
    expect(n.stats).toEqual({ pending: 0, delivered: 1, failed: 0, retried: 2, dropped: 0 });
  });

  it('gives up after max_attempts, and at once on an answer that will not change (404)', async () => {
    receiver.on('/down', () => ({ status: 503 }));
    receiver.on('/gone', () => ({ status: 404 }));
    const n = notifier({
      max_attempts: 3,
      targets: [
        { url: `${receiver.url}/down`, events: ['budget_exhausted'] },
        { url: `${receiver.url}/gone`, events: ['budget_exhausted'], format: 'slack' },
      ],
    });
    n.notify(event('budget_exhausted', { spentUsd: 50 }));
    await receiver.waitFor('/down', 3);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.at('/down')).toHaveLength(3);
    expect(receiver.at('/gone')).toHaveLength(1);
    const failures = events('webhook_failed');
    expect(failures.map((e) => e['target']).sort()).toEqual([`${receiver.url}/…`, `${receiver.url}/…`]);
    expect(failures.map((e) => e.message).sort()).toEqual([
      expect.stringMatching(/→ http:\/\/127\.0\.0\.1:\d+\/…: HTTP 404 Not Found, not retried$/),
      expect.stringMatching(/HTTP 503 Service Unavailable; gave up after 3 attempts$/),
    ]);
    expect(n.stats).toMatchObject({ pending: 0, delivered: 0, failed: 2, retried: 2 });
  });

  it('counts a receiver slower than the timeout as a failed attempt', async () => {
    receiver.on('/slow', () => ({ status: 200, delayMs: 1000 }));
    const n = notifier({ timeout: 0.1, max_attempts: 2, targets: [{ url: `${receiver.url}/slow`, events: ['task_failed'] }] });
    n.notify(event('failed', { taskId: 'x' }));
    const start = Date.now();
    while (events('webhook_failed').length === 0 && Date.now() - start < 5000) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(receiver.at('/slow')).toHaveLength(2);
    expect(events('webhook_retry')[0]?.message).toMatch(/no answer within 100 ms/);
    expect(events('webhook_failed')[0]?.message).toMatch(/no answer within 100 ms; gave up after 2 attempts/);
  });

  it('never slows the caller: a hanging target holds up only its own notifications', async () => {
    receiver.on('/hanging', () => ({ status: 200, delayMs: 2000 }));
    const n = notifier({
      targets: [
        { url: `${receiver.url}/hanging`, events: ['task_failed'] },
        { url: `${receiver.url}/fast`, events: ['task_failed'] },
      ],
    });
    const consoleLines: string[] = [];
    const log = n.wrap((e) => consoleLines.push(e.event));
    // The event loop's responsiveness while deliveries are outstanding.
    let maxLagMs = 0;
    let last = Date.now();
    const probe = setInterval(() => {
      const now = Date.now();
      maxLagMs = Math.max(maxLagMs, now - last - 10);
      last = now;
    }, 10);
    try {
      const started = process.hrtime.bigint();
      for (let i = 0; i < 100; i++) log(event('failed', { taskId: `t-${i}` }));
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      // 100 events, 200 notifications queued: the engine's log call stays a matter of microseconds.
      expect(elapsedMs).toBeLessThan(50);
      expect(consoleLines).toHaveLength(100);
      const fast = await receiver.waitFor('/fast', 100, 5000);
      // Every fast delivery was answered before the hanging target answered even once.
      const firstHangingAnswer = receiver.at('/hanging').map((r) => r.answeredAt).find((t) => t !== null);
      expect(firstHangingAnswer).toBeUndefined();
      expect(fast).toHaveLength(100);
      // The hanging target has at most its concurrency (2) requests open; the rest wait in its queue.
      expect(receiver.at('/hanging').length).toBeLessThanOrEqual(2);
      expect(n.stats.pending).toBe(100 - receiver.at('/hanging').filter((r) => r.answeredAt !== null).length);
      expect(maxLagMs).toBeLessThan(200);
    } finally {
      clearInterval(probe);
    }
  });

  it('drops notifications past its queue limit instead of growing without bound, and says so', async () => {
    receiver.on('/hanging', () => ({ status: 200, delayMs: 2000 }));
    const n = notifier({ targets: [{ url: `${receiver.url}/hanging`, events: ['task_failed'] }] }, { maxQueued: 5 });
    for (let i = 0; i < 8; i++) n.notify(event('failed', { taskId: `t-${i}` }));
    expect(n.stats).toMatchObject({ pending: 5, dropped: 3 });
    expect(events('webhook_dropped')).toHaveLength(3);
    expect(events('webhook_dropped')[0]?.message).toMatch(/not sent: 5 notifications are still undelivered \(limit 5\)/);
  });

  it('on close, gives retries one last attempt and abandons what the grace period cannot deliver', async () => {
    receiver.on('/down', () => ({ status: 500 }));
    receiver.on('/hanging', () => ({ status: 200, delayMs: 5000 }));
    const n = notifier(
      { max_attempts: 10, targets: [{ url: `${receiver.url}/down`, events: ['task_failed'] }, { url: `${receiver.url}/hanging`, events: ['task_failed'] }] },
      { retry: { initialMs: 60_000, multiplier: 2, maxMs: 60_000 } },
    );
    n.notify(event('failed', { taskId: 'x' }));
    await receiver.waitFor('/down', 1);
    // The first failure scheduled a retry a minute away; close does not wait for it, it tries once more now.
    const started = Date.now();
    await n.close(300);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(receiver.at('/down')).toHaveLength(2);
    expect(events('webhook_failed').map((e) => e.message).sort()).toEqual([
      expect.stringMatching(/HTTP 500 Internal Server Error; not retried after attempt 2: the orchestrator is exiting$/),
      expect.stringMatching(/the orchestrator exited before the notification was delivered; gave up after 1 attempt$/),
    ]);
    expect(n.stats.pending).toBe(0);
    // Late events after close are ignored.
    n.notify(event('failed', { taskId: 'late' }));
    expect(n.stats.pending).toBe(0);
  });

  it('still retries during the exit’s grace period when the backoff fits in it', async () => {
    receiver.on('/flaky', (nth) => ({ status: nth === 1 ? 502 : 200 }));
    const n = notifier({ max_attempts: 3, targets: [{ url: `${receiver.url}/flaky`, events: ['orchestrator_stopped'] }] });
    n.notify(event('exit', { message: 'orchestrator stopped' }));
    await n.close(2000);
    expect(receiver.at('/flaky')).toHaveLength(2);
    expect(events('webhook_delivered').map((e) => e['attempt'])).toEqual([2]);
  });

  it('reports health getting worse and the stop flag from a watcher, through the wrapped log', async () => {
    const n = notifier({ targets: [{ url: `${receiver.url}/ops`, events: ['health_degraded', 'orchestrator_stopped'] }] });
    const states = [
      { health: 'healthy' as const, failing: [], stopped: false, stopReason: null },
      { health: 'degraded' as const, failing: ['backlog: 30 tasks waiting'], stopped: false, stopReason: null },
      { health: 'degraded' as const, failing: ['backlog: 31 tasks waiting'], stopped: true, stopReason: 'maintenance' },
    ];
    let look = 0;
    const printed: string[] = [];
    const log = n.wrap((e) => printed.push(e.event));
    n.watch(async () => states[Math.min(look++, states.length - 1)] as (typeof states)[number], 20, log);
    await receiver.waitFor('/ops', 2, 3000);
    await n.close(1000);
    const got = receiver.at('/ops').map((r) => payloadOf(r.body));
    expect(got.map((p) => [p.event, p.source])).toEqual([
      ['health_degraded', 'health_degraded'],
      ['orchestrator_stopped', 'stop_requested'],
    ]);
    expect(got[0]?.message).toBe('health is degraded (was healthy): backlog: 30 tasks waiting');
    expect(got[1]?.message).toBe('dispatch stopped: maintenance');
    expect(printed).toEqual(['health_degraded', 'stop_requested']);
  });

  it('is off without targets, and never throws into the caller', async () => {
    const off = notifier({ enabled: false, targets: [{ url: `${receiver.url}/x` }] });
    expect(off.enabled).toBe(false);
    const n = notifier({ targets: [{ url: `${receiver.url}/x`, events: ['task_failed'] }] }, { lookupTask: async () => { throw new Error('store closed'); } });
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    // A field JSON cannot encode costs that notification, logged; a failing task lookup only leaves the task out.
    expect(() => n.notify(event('failed', { taskId: 'x', extra: cyclic }))).not.toThrow();
    n.notify(event('failed', { taskId: 'y' }));
    await n.close(2000);
    expect(events('webhook_failed')[0]?.message).toMatch(/cannot encode the payload/);
    expect(receiver.at('/x').map((r) => payloadOf(r.body))).toMatchObject([{ taskId: 'y', task: null }]);
  });
});
