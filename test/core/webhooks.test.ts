import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../lib/core/config.ts';
import {
  buildPayload,
  classifyStatus,
  DEFAULT_WEBHOOK_RETRY,
  EventLatch,
  INITIAL_WATCHED_STATE,
  kindFor,
  parseRetryAfter,
  redactUrl,
  renderBody,
  resolveTargets,
  signatureHeaders,
  signBody,
  slackEscape,
  verifySignature,
  watchedEvents,
  watchedState,
  webhookRetryDelayMs,
  type NotificationContext,
  type SourceEvent,
} from '../../lib/core/webhooks.ts';

function notifications(raw: Record<string, unknown>) {
  return validateConfig({ notifications: raw }).notifications;
}

const context: NotificationContext = {
  id: '6f1c2d1e-0000-4000-8000-000000000001',
  host: 'box',
  pid: 42,
  vault: '/vault',
  task: { id: 'pay-acme', title: 'Pay <!channel> ACME & co', type: 'payment', state: 'pending_approval', attempts: 1, approvalReasons: ['tasks of type "payment" always need approval'], lastError: null },
};

describe('targets and event filters', () => {
  it('none while notifications are disabled, whatever is configured', () => {
    expect(resolveTargets(notifications({ enabled: false, webhook_url: 'https://hooks.slack.com/services/T/B/X' }))).toEqual([]);
  });

  it('the seed’s webhook_url is an unsigned Slack target with the section’s events; targets may have their own', () => {
    const targets = resolveTargets(
      notifications({
        enabled: true,
        webhook_url: 'https://hooks.slack.com/services/T000/B000/SECRETPATH',
        events: ['task_failed'],
        targets: [
          { url: 'https://ops.example.com/hook?key=abc', secret: 's3cret', events: ['approval_requested'] },
          { url: 'https://other.example.com/', format: 'slack' },
        ],
      }),
    );
    expect(targets.map((t) => ({ format: t.format, events: [...t.events], secret: t.secret, label: t.label }))).toEqual([
      { format: 'slack', events: ['task_failed'], secret: null, label: 'https://hooks.slack.com/…' },
      { format: 'json', events: ['approval_requested'], secret: 's3cret', label: 'https://ops.example.com/…' },
      { format: 'slack', events: ['task_failed'], secret: null, label: 'https://other.example.com/' },
    ]);
    expect(redactUrl('not a url')).toBe('(invalid url)');
  });

  it('maps each orchestrator event to at most one notification per target, the most specific it wants', () => {
    const targets = resolveTargets(
      notifications({
        enabled: true,
        targets: [
          { url: 'https://a.example/', events: ['task_failed', 'task_dead_lettered'] },
          { url: 'https://b.example/', events: ['task_failed'] },
          { url: 'https://c.example/', events: ['task_dead_lettered', 'budget_exhausted'] },
          { url: 'https://d.example/', events: ['approval_requested', 'approval_expired', 'orchestrator_stopped', 'health_degraded'] },
        ],
      }),
    );
    const target = (i: number) => {
      const t = targets[i];
      if (t === undefined) throw new Error(`no target ${i}`);
      return t;
    };
    const [both, failedOnly, deadOnly, approvals] = [target(0), target(1), target(2), target(3)];
    expect(kindFor(both, 'failed')).toBe('task_dead_lettered');
    expect(kindFor(failedOnly, 'failed')).toBe('task_failed');
    expect(kindFor(failedOnly, 'retry_scheduled')).toBe('task_failed');
    expect(kindFor(deadOnly, 'retry_scheduled')).toBeNull();
    expect(kindFor(deadOnly, 'quarantined')).toBe('task_dead_lettered');
    expect(kindFor(deadOnly, 'budget_exhausted')).toBe('budget_exhausted');
    expect(kindFor(approvals, 'awaiting_approval')).toBe('approval_requested');
    expect(kindFor(approvals, 'expired')).toBe('approval_expired');
    expect(kindFor(approvals, 'exit')).toBe('orchestrator_stopped');
    expect(kindFor(approvals, 'stop_requested')).toBe('orchestrator_stopped');
    expect(kindFor(approvals, 'health_degraded')).toBe('health_degraded');
    for (const event of ['done', 'dispatch', 'admitted', 'approved', 'webhook_failed', 'health_recovered']) {
      expect([both, failedOnly, deadOnly, approvals].map((t) => kindFor(t, event))).toEqual([null, null, null, null]);
    }
  });
});

describe('latched conditions', () => {
  it('notify a repeated budget_exhausted once, until budget_available ends it', () => {
    const latch = new EventLatch();
    expect(['budget_exhausted', 'budget_exhausted', 'failed', 'budget_available', 'budget_exhausted', 'failed'].map((e) => latch.admit(e))).toEqual([
      true,
      false,
      true,
      true,
      true,
      true,
    ]);
  });
});

describe('payload and body', () => {
  const event: SourceEvent = { at: '2026-03-10T12:00:00.000Z', event: 'retry_scheduled', taskId: 'pay-acme', message: 'pay-acme: agent_error: boom; retry in 60 s', errorClass: 'agent_error', recovered: false };

  it('carries the event, the task and the orchestrator event’s own fields', () => {
    expect(buildPayload('task_failed', event, context)).toEqual({
      id: context.id,
      event: 'task_failed',
      at: '2026-03-10T12:00:00.000Z',
      taskId: 'pay-acme',
      message: 'pay-acme: agent_error: boom; retry in 60 s',
      source: 'retry_scheduled',
      task: context.task,
      details: { errorClass: 'agent_error', recovered: false, willRetry: true },
      orchestrator: { host: 'box', pid: 42, vault: '/vault' },
    });
    const budget = buildPayload('budget_exhausted', { at: event.at, event: 'budget_exhausted', message: 'daily budget spent', spentUsd: 51.2 }, { ...context, task: null });
    expect(budget).toMatchObject({ event: 'budget_exhausted', taskId: null, task: null, details: { spentUsd: 51.2 } });
  });

  it('json is the payload itself; slack is {text} with Slack’s control characters escaped', () => {
    const payload = buildPayload('approval_requested', { at: event.at, event: 'awaiting_approval', taskId: 'pay-acme', message: 'pay-acme: plan ready, waiting for approval' }, context);
    expect(JSON.parse(renderBody('json', payload))).toEqual(payload);
    const slack = JSON.parse(renderBody('slack', payload)) as Record<string, unknown>;
    expect(Object.keys(slack)).toEqual(['text']);
    expect(slack['text']).toBe(
      '*fte* · Approval needed\nPay &lt;!channel&gt; ACME &amp; co (`pay-acme`)\npay-acme: plan ready, waiting for approval\nWhy: tasks of type "payment" always need approval',
    );
    expect(slackEscape('<a|b> & <@U1>')).toBe('&lt;a|b&gt; &amp; &lt;@U1&gt;');
  });
});

describe('signature', () => {
  it('is HMAC-SHA256 of "<timestamp>.<body>" (a vector computed with openssl)', () => {
    // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
    expect(signBody('whsec_test', 1_700_000_000, '{"a":1}')).toBe('sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789');
    expect(signatureHeaders('whsec_test', 1_700_000_000, '{"a":1}')).toEqual({
      'x-fte-timestamp': '1700000000',
      'x-fte-signature': 'sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789',
    });
    expect(signatureHeaders(null, 1_700_000_000, '{}')).toEqual({ 'x-fte-timestamp': '1700000000' });
  });

  it('verifies, and rejects tampering, the wrong secret, replays and malformed headers', () => {
    const body = '{"event":"task_failed"}';
    const ts = 1_700_000_000;
    const signature = signBody('k', ts, body);
    const check = (over: Partial<Parameters<typeof verifySignature>[0]>) =>
      verifySignature({ secret: 'k', body, signature, timestamp: String(ts), nowSeconds: ts + 10, ...over });
    expect(check({})).toEqual({ ok: true });
    expect(check({ body: '{"event":"task_failed" }' })).toEqual({ ok: false, reason: 'mismatch' });
    expect(check({ secret: 'other' })).toEqual({ ok: false, reason: 'mismatch' });
    // The same delivery replayed an hour later is stale; given a fresh timestamp, its signature no longer matches.
    expect(check({ nowSeconds: ts + 3600 })).toEqual({ ok: false, reason: 'stale' });
    expect(check({ timestamp: String(ts + 3600), nowSeconds: ts + 3600 })).toEqual({ ok: false, reason: 'mismatch' });
    expect(check({ signature: undefined })).toEqual({ ok: false, reason: 'missing' });
    expect(check({ signature: 'sha1=abc' })).toEqual({ ok: false, reason: 'malformed' });
    expect(check({ timestamp: 'yesterday' })).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('retries', () => {
  it('back off exponentially with equal jitter, capped, and honour a longer Retry-After', () => {
    const schedule = { initialMs: 1000, multiplier: 2, maxMs: 5000 };
    expect([1, 2, 3, 4, 5].map((n) => webhookRetryDelayMs(n, schedule, () => 1))).toEqual([1000, 2000, 4000, 5000, 5000]);
    expect([1, 2, 3].map((n) => webhookRetryDelayMs(n, schedule, () => 0))).toEqual([500, 1000, 2000]);
    expect(webhookRetryDelayMs(1, schedule, () => 0, 3)).toBe(3000);
    expect(webhookRetryDelayMs(1, schedule, () => 0, 3600)).toBe(5000);
    expect(webhookRetryDelayMs(3, DEFAULT_WEBHOOK_RETRY, () => 1)).toBe(18_000);
  });

  it('retry what the receiver may get over, give up on what it will answer again', () => {
    expect([200, 201, 204].map(classifyStatus)).toEqual(['delivered', 'delivered', 'delivered']);
    expect([408, 425, 429, 500, 502, 503].map(classifyStatus)).toEqual(Array(6).fill('retry'));
    expect([301, 302, 400, 401, 403, 404, 410, 413].map(classifyStatus)).toEqual(Array(8).fill('give_up'));
    const now = new Date('2026-03-10T12:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120);
    expect(parseRetryAfter('Tue, 10 Mar 2026 12:01:00 GMT', now)).toBe(60);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });
});

describe('watched health and stop flag', () => {
  const check = (name: string, status: 'healthy' | 'degraded' | 'unhealthy') => ({ name, status, message: `${name} is ${status}` });

  it('report health getting worse once, not while it stays bad, and ignore the stop_flag check', () => {
    const healthy = watchedState({ checks: [check('backlog', 'healthy'), check('stop_flag', 'degraded')] }, { stopped: false, reason: null });
    expect(healthy.health).toBe('healthy');
    const degraded = watchedState({ checks: [check('backlog', 'degraded')] }, { stopped: false, reason: null });
    const unhealthy = watchedState({ checks: [check('backlog', 'degraded'), check('scheduler', 'unhealthy')] }, { stopped: false, reason: null });
    expect(watchedEvents(INITIAL_WATCHED_STATE, healthy)).toEqual([]);
    expect(watchedEvents(healthy, degraded)).toEqual([
      { event: 'health_degraded', message: 'health is degraded (was healthy): backlog: backlog is degraded', fields: { status: 'degraded', previous: 'healthy', failing: ['backlog: backlog is degraded'] } },
    ]);
    expect(watchedEvents(degraded, degraded)).toEqual([]);
    expect(watchedEvents(degraded, unhealthy).map((e) => e.event)).toEqual(['health_degraded']);
    expect(watchedEvents(unhealthy, degraded)).toEqual([]);
    expect(watchedEvents(unhealthy, healthy).map((e) => e.event)).toEqual(['health_recovered']);
  });

  it('report the stop flag being set and cleared', () => {
    const stopped = watchedState({ checks: [check('stop_flag', 'degraded')] }, { stopped: true, reason: 'maintenance' });
    expect(watchedEvents(INITIAL_WATCHED_STATE, stopped)).toEqual([{ event: 'stop_requested', message: 'dispatch stopped: maintenance', fields: { reason: 'maintenance' } }]);
    expect(watchedEvents(stopped, stopped)).toEqual([]);
    expect(watchedEvents(stopped, INITIAL_WATCHED_STATE).map((e) => e.event)).toEqual(['stop_cleared']);
  });
});
