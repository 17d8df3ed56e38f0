import { createHmac, timingSafeEqual } from 'node:crypto';
import { NOTIFICATION_EVENTS, type Config } from './config.ts';
import { healthExitCode, worstStatus, type HealthStatus } from './health.ts';

/**
 * The pure half of fte's webhooks: which orchestrator events become which notifications, for which target; the payload
 * and its wire forms (generic JSON, Slack-compatible); the HMAC-SHA256 signature and its check; the retry schedule;
 * and the health/stop transitions worth telling someone about. The delivery itself — queue, HTTP, timers — is
 * lib/local/notifier.ts.
 */

export type NotificationKind = (typeof NOTIFICATION_EVENTS)[number];
export type WebhookFormat = Config['notifications']['targets'][number]['format'];

/** An orchestrator event as the engine logs it (structurally lib/local/engine.ts's EngineEvent). */
export interface SourceEvent {
  readonly at: string;
  readonly event: string;
  readonly taskId?: string;
  readonly message: string;
  readonly [key: string]: unknown;
}

/**
 * Orchestrator event → the notifications it can be, most specific first. A target gets at most one notification per
 * event: the first of these it subscribes to. So `failed` (the task went to Failed/ for good) reaches a target that
 * wants `task_dead_lettered` as that, and one that only wants `task_failed` as `task_failed`; a target with both gets
 * it once. `task_failed` also covers an attempt that failed and will be retried (`retry_scheduled`); a note that
 * could not be read and was moved to Failed/ (`quarantined`) is a dead letter that never ran.
 */
export const NOTIFICATION_SOURCES: Readonly<Record<string, readonly NotificationKind[]>> = {
  failed: ['task_dead_lettered', 'task_failed'],
  retry_scheduled: ['task_failed'],
  quarantined: ['task_dead_lettered'],
  awaiting_approval: ['approval_requested'],
  expired: ['approval_expired'],
  budget_exhausted: ['budget_exhausted'],
  health_degraded: ['health_degraded'],
  stop_requested: ['orchestrator_stopped'],
  exit: ['orchestrator_stopped'],
  crash: ['orchestrator_stopped'],
};

/**
 * Orchestrator events that announce a condition and may repeat while it lasts (the engine logs `budget_exhausted`
 * again whenever its reason text changes, e.g. the amount spent), mapped to the event that ends the condition. Such an
 * event notifies once per condition.
 */
export const LATCHED_EVENTS: Readonly<Record<string, string>> = { budget_exhausted: 'budget_available' };

/** Which latched conditions are on: `admit` says whether an event should notify at all. */
export class EventLatch {
  private readonly on = new Set<string>();

  admit(event: string): boolean {
    if (LATCHED_EVENTS[event] !== undefined) {
      if (this.on.has(event)) return false;
      this.on.add(event);
      return true;
    }
    for (const [start, end] of Object.entries(LATCHED_EVENTS)) if (end === event) this.on.delete(start);
    return true;
  }
}

/** Kinds that need events only a watcher of health and the stop flag produces (not the engine). */
export const WATCHED_KINDS: ReadonlySet<NotificationKind> = new Set<NotificationKind>(['health_degraded', 'orchestrator_stopped']);

export interface WebhookTarget {
  readonly url: string;
  readonly format: WebhookFormat;
  readonly events: ReadonlySet<NotificationKind>;
  /** HMAC-SHA256 key; null sends the body unsigned (Slack's own webhooks check nothing). */
  readonly secret: string | null;
  /** The URL with its path hidden, for logs: a Slack webhook's path is its credential. */
  readonly label: string;
}

/** Scheme, host and port only: webhook URLs often carry their credential in the path or query. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const hidden = parsed.pathname !== '/' || parsed.search !== '';
    return `${parsed.origin}${hidden ? '/…' : '/'}`;
  } catch {
    return '(invalid url)';
  }
}

/**
 * The targets of a `notifications` section: the seed's `webhook_url` (a Slack webhook, unsigned, with the section's
 * event list) and each of `targets` (its own `events`, else the section's). None when notifications are disabled.
 */
export function resolveTargets(notifications: Config['notifications']): WebhookTarget[] {
  if (!notifications.enabled) return [];
  const targets: WebhookTarget[] = [];
  if (notifications.webhook_url !== undefined) {
    targets.push({
      url: notifications.webhook_url,
      format: 'slack',
      events: new Set(notifications.events),
      secret: null,
      label: redactUrl(notifications.webhook_url),
    });
  }
  for (const t of notifications.targets) {
    targets.push({
      url: t.url,
      format: t.format,
      events: new Set(t.events ?? notifications.events),
      secret: t.secret !== undefined && t.secret !== '' ? t.secret : null,
      label: redactUrl(t.url),
    });
  }
  return targets;
}

/** The notification `event` is for `target`, or null when the target does not want it. */
export function kindFor(target: WebhookTarget, event: string): NotificationKind | null {
  for (const kind of NOTIFICATION_SOURCES[event] ?? []) if (target.events.has(kind)) return kind;
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Payload

/** What the receiver learns about the task, looked up when the event is queued. */
export interface TaskSummary {
  readonly id: string;
  readonly title: string;
  readonly type: string;
  readonly state: string;
  readonly attempts: number;
  readonly approvalReasons: readonly string[];
  readonly lastError: { readonly class: string; readonly message: string } | null;
}

export interface NotificationContext {
  /** One id per orchestrator event, the same for every target and every attempt: receivers deduplicate on it. */
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly vault: string;
  readonly task: TaskSummary | null;
}

export interface NotificationPayload {
  readonly id: string;
  readonly event: NotificationKind;
  readonly at: string;
  readonly taskId: string | null;
  readonly message: string;
  /** The orchestrator event it came from (`failed`, `awaiting_approval`, …). */
  readonly source: string;
  readonly task: TaskSummary | null;
  /** The orchestrator event's own fields (errorClass, spentUsd, status, …). */
  readonly details: Readonly<Record<string, unknown>>;
  readonly orchestrator: { readonly host: string; readonly pid: number; readonly vault: string };
}

export function buildPayload(kind: NotificationKind, event: SourceEvent, context: NotificationContext): NotificationPayload {
  const details: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (key !== 'at' && key !== 'event' && key !== 'taskId' && key !== 'message') details[key] = value;
  }
  if (kind === 'task_failed') details['willRetry'] = event.event === 'retry_scheduled';
  return {
    id: context.id,
    event: kind,
    at: event.at,
    taskId: event.taskId ?? null,
    message: event.message,
    source: event.event,
    task: context.task,
    details,
    orchestrator: { host: context.host, pid: context.pid, vault: context.vault },
  };
}

const LABELS: Readonly<Record<NotificationKind, string>> = {
  task_failed: 'Task failed',
  task_dead_lettered: 'Task dead-lettered (in Failed/)',
  approval_requested: 'Approval needed',
  approval_expired: 'Approval expired',
  health_degraded: 'Health degraded',
  orchestrator_stopped: 'Orchestrator stopped',
  budget_exhausted: 'Budget exhausted',
};

/**
 * Slack's three control characters as entities: task titles are untrusted, and an unescaped `<!channel>` or
 * `<https://evil|link>` in one would ping everybody or disguise a link.
 */
export function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The request body for a target's format: the payload itself, or a Slack-compatible `{text}` message. */
export function renderBody(format: WebhookFormat, payload: NotificationPayload): string {
  if (format === 'json') return JSON.stringify(payload);
  const lines = [`*fte* · ${LABELS[payload.event]}`];
  if (payload.task !== null) lines.push(`${slackEscape(payload.task.title)} (\`${slackEscape(payload.task.id)}\`)`);
  lines.push(slackEscape(payload.message));
  if (payload.event === 'approval_requested' && payload.task !== null && payload.task.approvalReasons.length > 0) {
    lines.push(`Why: ${slackEscape(payload.task.approvalReasons.join('; '))}`);
  }
  return JSON.stringify({ text: lines.join('\n') });
}

// ---------------------------------------------------------------------------------------------------------------
// Signature

export const SIGNATURE_HEADER = 'x-fte-signature';
export const TIMESTAMP_HEADER = 'x-fte-timestamp';
export const EVENT_HEADER = 'x-fte-event';
export const DELIVERY_HEADER = 'x-fte-delivery';
/** How far a receiver should accept a timestamp from its own clock; older deliveries are replays. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/**
 * `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"). The timestamp is signed with the body so a captured
 * delivery cannot be replayed later with a fresh timestamp; the receiver rejects timestamps outside its tolerance.
 */
export function signBody(secret: string, timestampSeconds: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestampSeconds}.${body}`, 'utf8').digest('hex')}`;
}

export function signatureHeaders(secret: string | null, timestampSeconds: number, body: string): Record<string, string> {
  const headers: Record<string, string> = { [TIMESTAMP_HEADER]: String(timestampSeconds) };
  if (secret !== null) headers[SIGNATURE_HEADER] = signBody(secret, timestampSeconds, body);
  return headers;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'mismatch' };

/** What a receiver does with a delivery: check the timestamp's age, then the HMAC in constant time. */
export function verifySignature(input: {
  secret: string;
  body: string;
  signature: string | undefined;
  timestamp: string | undefined;
  nowSeconds: number;
  toleranceSeconds?: number;
}): SignatureCheck {
  if (input.signature === undefined || input.timestamp === undefined) return { ok: false, reason: 'missing' };
  if (!/^\d{1,12}$/.test(input.timestamp) || !/^sha256=[0-9a-f]{64}$/.test(input.signature)) return { ok: false, reason: 'malformed' };
  const ts = Number(input.timestamp);
  if (Math.abs(input.nowSeconds - ts) > (input.toleranceSeconds ?? SIGNATURE_TOLERANCE_SECONDS)) return { ok: false, reason: 'stale' };
  const expected = Buffer.from(signBody(input.secret, ts, input.body), 'utf8');
  const given = Buffer.from(input.signature, 'utf8');
  return expected.length === given.length && timingSafeEqual(expected, given) ? { ok: true } : { ok: false, reason: 'mismatch' };
}

// ---------------------------------------------------------------------------------------------------------------
// Retries

export interface WebhookRetrySchedule {
  readonly initialMs: number;
  readonly multiplier: number;
  readonly maxMs: number;
}

/** 2 s, 6 s, 18 s, 54 s, … capped at 5 min: a receiver's restart is ridden out, an outage gives up within minutes. */
export const DEFAULT_WEBHOOK_RETRY: WebhookRetrySchedule = { initialMs: 2_000, multiplier: 3, maxMs: 300_000 };

/**
 * The wait after failed attempt `attempt` (1-based): exponential, with "equal jitter" (half fixed, half random) so
 * deliveries that failed together do not all retry in the same instant, yet never retry at once. A receiver's
 * Retry-After (seconds) wins when it asks for longer, within the cap.
 */
export function webhookRetryDelayMs(attempt: number, schedule: WebhookRetrySchedule, random: () => number, retryAfterSeconds?: number | null): number {
  const base = Math.min(schedule.maxMs, schedule.initialMs * schedule.multiplier ** Math.max(0, attempt - 1));
  const jittered = base / 2 + random() * (base / 2);
  const asked = retryAfterSeconds !== undefined && retryAfterSeconds !== null && Number.isFinite(retryAfterSeconds) ? Math.min(schedule.maxMs, retryAfterSeconds * 1000) : 0;
  return Math.round(Math.max(jittered, asked));
}

/**
 * What an HTTP status means for a delivery. 408, 425, 429 and 5xx are the receiver's passing trouble: retry. Any other
 * non-2xx (a 404 for a deleted hook, a 401 for a wrong secret, a redirect, which is not followed because the signature
 * was made for this URL) will answer the same next time: give up at once.
 */
export function classifyStatus(status: number): 'delivered' | 'retry' | 'give_up' {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'give_up';
}

/** A Retry-After header in seconds (delta form; an HTTP date is read too), or null. */
export function parseRetryAfter(value: string | null, now: Date): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, (date - now.getTime()) / 1000);
}

// ---------------------------------------------------------------------------------------------------------------
// Health and the stop flag, watched

export interface WatchedState {
  readonly health: HealthStatus;
  /** The checks behind `health`, as `name: message`. */
  readonly failing: readonly string[];
  readonly stopped: boolean;
  readonly stopReason: string | null;
}

/** Where a freshly started watcher begins: nothing reported yet, so a degraded or stopped start is reported once. */
export const INITIAL_WATCHED_STATE: WatchedState = { health: 'healthy', failing: [], stopped: false, stopReason: null };

/**
 * The health to notify about, from a health report: the worst check except `stop_flag` — a stop is reported as
 * orchestrator_stopped, and counting it here too would send two messages for one operator action.
 */
export function watchedState(
  health: { checks: ReadonlyArray<{ name: string; status: HealthStatus; message: string }> },
  stop: { stopped: boolean; reason: string | null },
): WatchedState {
  const checks = health.checks.filter((c) => c.name !== 'stop_flag');
  return {
    health: worstStatus(checks.map((c) => c.status)),
    failing: checks.filter((c) => c.status !== 'healthy').map((c) => `${c.name}: ${c.message}`),
    stopped: stop.stopped,
    stopReason: stop.reason,
  };
}

export interface WatchedEvent {
  readonly event: 'health_degraded' | 'health_recovered' | 'stop_requested' | 'stop_cleared';
  readonly message: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/**
 * Orchestrator events for what changed between two looks. Health is reported when it gets worse (healthy → degraded,
 * degraded → unhealthy, …), not on every look while it stays bad; getting better is logged but notifies nobody.
 */
export function watchedEvents(previous: WatchedState, next: WatchedState): WatchedEvent[] {
  const events: WatchedEvent[] = [];
  const before = healthExitCode(previous.health);
  const after = healthExitCode(next.health);
  if (after > before) {
    events.push({
      event: 'health_degraded',
      message: `health is ${next.health} (was ${previous.health}): ${next.failing.join('; ')}`,
      fields: { status: next.health, previous: previous.health, failing: [...next.failing] },
    });
  } else if (after === 0 && before > 0) {
    events.push({ event: 'health_recovered', message: `health is healthy again (was ${previous.health})`, fields: { status: next.health, previous: previous.health } });
  }
  if (next.stopped && !previous.stopped) {
    events.push({ event: 'stop_requested', message: `dispatch stopped: ${next.stopReason ?? 'no reason given'}`, fields: { reason: next.stopReason } });
  } else if (!next.stopped && previous.stopped) {
    events.push({ event: 'stop_cleared', message: 'dispatch resumed', fields: {} });
  }
  return events;
}
