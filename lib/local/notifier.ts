import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../core/config.ts';
import {
  buildPayload,
  classifyStatus,
  DEFAULT_WEBHOOK_RETRY,
  DELIVERY_HEADER,
  EVENT_HEADER,
  EventLatch,
  INITIAL_WATCHED_STATE,
  kindFor,
  parseRetryAfter,
  renderBody,
  resolveTargets,
  signatureHeaders,
  watchedEvents,
  webhookRetryDelayMs,
  type NotificationKind,
  type TaskSummary,
  type WatchedState,
  type WebhookRetrySchedule,
  type WebhookTarget,
} from '../core/webhooks.ts';
import type { EngineEvent } from './engine.ts';

/**
 * Delivers orchestrator events to the configured webhooks (lib/core/webhooks.ts decides what and how they look).
 *
 * The engine logs synchronously from inside its loop, so `notify` only matches the event against the targets and
 * queues it — constant time, never throws, never awaits. Delivery is asynchronous: each target has its own queue and a
 * small number of requests in flight, so a slow or dead receiver holds up only its own notifications. Every attempt has
 * a timeout; failures the receiver may get over (timeouts, connection errors, 408/429/5xx) are retried with backoff up
 * to `max_attempts`; every outcome is logged as an orchestrator event (`webhook_delivered`, `webhook_retry`,
 * `webhook_failed`, `webhook_dropped`). The queue is bounded: past `maxQueued` undelivered notifications, new ones
 * are dropped (and logged) rather than letting an unreachable receiver grow the orchestrator's memory.
 */

export interface NotifierOptions {
  readonly notifications: Config['notifications'];
  /** Where delivery outcomes go: the plain console log, not the wrapped one (an outcome notifies nobody). */
  readonly log: (event: EngineEvent) => void;
  /** The vault, named in every payload. */
  readonly vault: string;
  /** The task an event names, for the payload; looked up off the engine's loop, a failure only leaves it out. */
  readonly lookupTask?: (id: string) => Promise<TaskSummary | null>;
  readonly clock?: () => Date;
  readonly random?: () => number;
  readonly retry?: WebhookRetrySchedule;
  /** Undelivered notifications kept at most (queued, in flight, waiting to retry). */
  readonly maxQueued?: number;
  /** Requests in flight per target. */
  readonly perTargetConcurrency?: number;
  readonly fetch?: typeof fetch;
}

export const DEFAULT_MAX_QUEUED = 1000;
export const DEFAULT_PER_TARGET_CONCURRENCY = 2;

/** A delivery attempt that took longer than `notifications.timeout`. */
export class WebhookTimeoutError extends Error {
  readonly code = 'WEBHOOK_TIMEOUT' as const;
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'WebhookTimeoutError';
  }
}

/** In-flight attempts cut short because the orchestrator is exiting and the grace period is over. */
export class NotifierClosedError extends Error {
  readonly code = 'NOTIFIER_CLOSED' as const;
  constructor() {
    super('the orchestrator exited before the notification was delivered');
    this.name = 'NotifierClosedError';
  }
}

interface TargetQueue {
  readonly target: WebhookTarget;
  readonly queue: Delivery[];
  inFlight: number;
}

interface Delivery {
  readonly to: TargetQueue;
  readonly kind: NotificationKind;
  /** The notification's id: one per orchestrator event, kept across attempts. */
  readonly id: string;
  readonly taskId: string | null;
  readonly body: string;
  attempts: number;
  retryTimer: NodeJS.Timeout | null;
}

type AttemptResult =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry' | 'give_up'; status: number | null; error: string; retryAfterSeconds: number | null };

export interface NotifierStats {
  /** Notifications not finished yet: queued, in flight, or waiting to retry. */
  pending: number;
  delivered: number;
  failed: number;
  retried: number;
  dropped: number;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch reports every network failure as "fetch failed"; the cause says which (ECONNREFUSED, ENOTFOUND, …).
  const cause: unknown = err.cause;
  if (cause instanceof Error) {
    const code = 'code' in cause && typeof cause.code === 'string' ? cause.code : null;
    return `${err.message}: ${code ?? cause.message}`;
  }
  return err.message;
}

export class Notifier {
  private readonly targets: TargetQueue[];
  private readonly log: (event: EngineEvent) => void;
  private readonly clock: () => Date;
  private readonly random: () => number;
  private readonly retry: WebhookRetrySchedule;
  private readonly maxQueued: number;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly host = hostname();
  private readonly latch = new EventLatch();
  private readonly waitingRetry = new Set<Delivery>();
  private readonly inFlight = new Map<AbortController, Delivery>();
  private idleWaiters: Array<() => void> = [];
  private watchTimer: NodeJS.Timeout | null = null;
  /** Exiting: retries are scheduled only when they fall before `closeDeadline`. */
  private closing = false;
  private closeDeadline = Infinity;
  /** The exit's grace period is over: nothing more is attempted. */
  private abandoned = false;
  private readonly counts: Omit<NotifierStats, 'pending'> = { delivered: 0, failed: 0, retried: 0, dropped: 0 };
  private pending = 0;

  constructor(private readonly options: NotifierOptions) {
    this.targets = resolveTargets(options.notifications).map((target) => ({ target, queue: [], inFlight: 0 }));
    this.log = options.log;
    this.clock = options.clock ?? (() => new Date());
    this.random = options.random ?? Math.random;
    this.retry = options.retry ?? DEFAULT_WEBHOOK_RETRY;
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.concurrency = options.perTargetConcurrency ?? DEFAULT_PER_TARGET_CONCURRENCY;
    this.maxAttempts = options.notifications.max_attempts;
    this.timeoutMs = options.notifications.timeout * 1000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** Whether any target is configured (notifications enabled and at least one URL). */
  get enabled(): boolean {
    return this.targets.length > 0;
  }

  get targetLabels(): string[] {
    return this.targets.map((t) => t.target.label);
  }

  /** Whether some target wants a notification kind. */
  wants(kind: NotificationKind): boolean {
    return this.targets.some((t) => t.target.events.has(kind));
  }

  get stats(): NotifierStats {
    return { pending: this.pending, ...this.counts };
  }

  /** `log`, plus a notification for each event some target wants. What the engine is given instead of `log`. */
  wrap(log: (event: EngineEvent) => void): (event: EngineEvent) => void {
    return (event) => {
      log(event);
      this.notify(event);
    };
  }

  /** Queue the event for the targets that want it. Synchronous, constant time, and it never throws into the caller. */
  notify(event: EngineEvent): void {
    try {
      if (this.abandoned) return;
      if (!this.latch.admit(event.event)) return;
      const matches: Array<{ to: TargetQueue; kind: NotificationKind }> = [];
      for (const to of this.targets) {
        const kind = kindFor(to.target, event.event);
        if (kind !== null) matches.push({ to, kind });
      }
      if (matches.length === 0) return;
      if (this.pending + matches.length > this.maxQueued) {
        this.counts.dropped += matches.length;
        this.outcome('webhook_dropped', `${event.event}${event.taskId ? ` for ${event.taskId}` : ''} not sent: ${this.pending} notifications are still undelivered (limit ${this.maxQueued})`, {
          ...(event.taskId !== undefined ? { taskId: event.taskId } : {}),
          source: event.event,
        });
        return;
      }
      this.pending += matches.length;
      void this.prepare(event, matches);
    } catch (err) {
      // A bug here must cost a notification, never the engine's loop.
      this.outcome('webhook_failed', `cannot queue ${event.event}: ${describeError(err)}`, { source: event.event });
    }
  }

  /**
   * Look at health and the stop flag every `intervalMs` and put what changed through `emit` (the wrapped log, so it
   * is printed and notified like any orchestrator event): health getting worse, dispatch stopped or resumed.
   */
  watch(probe: () => Promise<WatchedState>, intervalMs: number, emit: (event: EngineEvent) => void): void {
    if (this.watchTimer !== null) return;
    let previous: WatchedState = INITIAL_WATCHED_STATE;
    let looking = false;
    const look = async (): Promise<void> => {
      if (looking || this.closing) return;
      looking = true;
      try {
        const next = await probe();
        for (const e of watchedEvents(previous, next)) emit({ at: this.clock().toISOString(), event: e.event, message: e.message, ...e.fields });
        previous = next;
      } catch (err) {
        this.outcome('notifier_watch_failed', `cannot read health for notifications: ${describeError(err)}`, {});
      } finally {
        looking = false;
      }
    };
    this.watchTimer = setInterval(() => void look(), intervalMs);
    // The watcher is a passenger: it must never be what keeps the process alive.
    this.watchTimer.unref();
  }

  /**
   * Stop watching and deliver what is queued, for at most `graceMs`. Retries waiting out a backoff get one last
   * attempt now; whatever is still undelivered when the grace period ends is abandoned and logged as failed.
   */
  async close(graceMs: number): Promise<void> {
    if (this.watchTimer !== null) clearInterval(this.watchTimer);
    this.watchTimer = null;
    this.closing = true;
    this.closeDeadline = Date.now() + graceMs;
    for (const d of [...this.waitingRetry]) {
      if (d.retryTimer !== null) clearTimeout(d.retryTimer);
      this.waitingRetry.delete(d);
      d.to.queue.push(d);
    }
    for (const to of this.targets) this.pump(to);
    const drained = await this.idleWithin(graceMs);
    // From here on nothing is attempted: notify() ignores late events, pump() fails what is still queued.
    this.abandoned = true;
    if (drained) return;
    for (const to of this.targets) this.pump(to);
    for (const controller of this.inFlight.keys()) controller.abort(new NotifierClosedError());
    // Aborted requests settle at once; the bound only guards against a fetch that ignores its signal.
    await this.idleWithin(1000);
  }

  private idleWithin(ms: number): Promise<boolean> {
    if (this.pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  private outcome(event: string, message: string, fields: Record<string, unknown>): void {
    try {
      this.log({ at: this.clock().toISOString(), event, message, ...fields });
    } catch {
      // The log is the console; if it cannot be written there is nowhere left to say so.
    }
  }

  private finish(): void {
    this.pending -= 1;
    if (this.pending > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async lookup(taskId: string | undefined): Promise<TaskSummary | null> {
    if (taskId === undefined || this.options.lookupTask === undefined) return null;
    try {
      return await this.options.lookupTask(taskId);
    } catch {
      return null; // the notification goes out without the task's details rather than not at all
    }
  }

  private async prepare(event: EngineEvent, matches: ReadonlyArray<{ to: TargetQueue; kind: NotificationKind }>): Promise<void> {
    const task = await this.lookup(event.taskId);
    const id = randomUUID();
    const context = { id, host: this.host, pid: process.pid, vault: this.options.vault, task };
    for (const { to, kind } of matches) {
      let body: string;
      try {
        body = renderBody(to.target.format, buildPayload(kind, event, context));
      } catch (err) {
        // An event field JSON cannot encode (a BigInt, a cycle): that notification cannot be sent in any form.
        this.counts.failed += 1;
        this.outcome('webhook_failed', `${kind} → ${to.target.label}: cannot encode the payload: ${describeError(err)}`, { target: to.target.label, notification: kind });
        this.finish();
        continue;
      }
      to.queue.push({ to, kind, id, taskId: event.taskId ?? null, body, attempts: 0, retryTimer: null });
      this.pump(to);
    }
  }

  private pump(to: TargetQueue): void {
    if (this.abandoned) {
      for (const d of to.queue.splice(0)) this.giveUp(d, new NotifierClosedError().message, null);
      return;
    }
    while (to.inFlight < this.concurrency && to.queue.length > 0) {
      const d = to.queue.shift() as Delivery;
      to.inFlight += 1;
      void this.attempt(d)
        .then((result) => this.settle(d, result))
        .catch((err: unknown) => this.giveUp(d, describeError(err), null))
        .finally(() => {
          to.inFlight -= 1;
          this.pump(to);
        });
    }
  }

  private async attempt(d: Delivery): Promise<AttemptResult> {
    d.attempts += 1;
    const controller = new AbortController();
    this.inFlight.set(controller, d);
    const timer = this.timeoutMs > 0 ? setTimeout(() => controller.abort(new WebhookTimeoutError(this.timeoutMs)), this.timeoutMs) : null;
    try {
      const now = this.clock();
      // A fresh timestamp (and signature) per attempt: a retry minutes later must still pass the receiver's replay window.
      const timestamp = Math.floor(now.getTime() / 1000);
      const response = await this.fetchImpl(d.to.target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'fte-webhooks/1',
          [EVENT_HEADER]: d.kind,
          [DELIVERY_HEADER]: d.id,
          ...signatureHeaders(d.to.target.secret, timestamp, d.body),
        },
        body: d.body,
        // The signature was made for this URL; a redirect is an answer to give up on, not to follow.
        redirect: 'manual',
        signal: controller.signal,
      });
      // The answer's body is not needed; dropping it frees the connection.
      await response.body?.cancel().catch(() => {});
      const verdict = classifyStatus(response.status);
      if (verdict === 'delivered') return { kind: 'delivered', status: response.status };
      return {
        kind: verdict,
        status: response.status,
        error: `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`,
        retryAfterSeconds: parseRetryAfter(response.headers.get('retry-after'), now),
      };
    } catch (err) {
      // An aborted fetch rejects with the abort reason (our timeout or close error), else with its network error.
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
      return { kind: 'retry', status: null, error: describeError(reason), retryAfterSeconds: null };
    } finally {
      if (timer !== null) clearTimeout(timer);
      this.inFlight.delete(controller);
    }
  }

  private fields(d: Delivery, status: number | null): Record<string, unknown> {
    return {
      ...(d.taskId !== null ? { taskId: d.taskId } : {}),
      target: d.to.target.label,
      notification: d.kind,
      deliveryId: d.id,
      attempt: d.attempts,
      status,
    };
  }

  private settle(d: Delivery, result: AttemptResult): void {
    const what = `${d.kind}${d.taskId !== null ? ` for ${d.taskId}` : ''} → ${d.to.target.label}`;
    if (result.kind === 'delivered') {
      this.counts.delivered += 1;
      this.outcome('webhook_delivered', `${what} (HTTP ${result.status}, attempt ${d.attempts})`, this.fields(d, result.status));
      this.finish();
      return;
    }
    if (result.kind === 'give_up') {
      this.giveUp(d, `${result.error}, not retried`, result.status);
      return;
    }
    if (d.attempts >= this.maxAttempts || this.abandoned) {
      this.giveUp(d, `${result.error}; gave up after ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`, result.status);
      return;
    }
    const delayMs = webhookRetryDelayMs(d.attempts, this.retry, this.random, result.retryAfterSeconds);
    if (this.closing && Date.now() + delayMs >= this.closeDeadline) {
      // The exit waits only so long: a retry that would come after it is not promised and then silently lost.
      this.giveUp(d, `${result.error}; not retried after attempt ${d.attempts}: the orchestrator is exiting`, result.status);
      return;
    }
    this.counts.retried += 1;
    this.outcome('webhook_retry', `${what}: ${result.error}; attempt ${d.attempts + 1} of ${this.maxAttempts} in ${(delayMs / 1000).toFixed(1)} s`, {
      ...this.fields(d, result.status),
      delayMs,
    });
    this.waitingRetry.add(d);
    d.retryTimer = setTimeout(() => {
      this.waitingRetry.delete(d);
      d.retryTimer = null;
      d.to.queue.push(d);
      this.pump(d.to);
    }, delayMs);
    // A pending retry must not keep a finished orchestrator alive: close() decides how long the exit waits.
    d.retryTimer.unref();
  }

  private giveUp(d: Delivery, reason: string, status: number | null): void {
    this.counts.failed += 1;
    this.outcome('webhook_failed', `${d.kind}${d.taskId !== null ? ` for ${d.taskId}` : ''} → ${d.to.target.label}: ${reason}`, this.fields(d, status));
    this.finish();
  }
}
