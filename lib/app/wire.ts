import type { HistoryEvent } from '../core/history.ts';
import type { RunRecord, TaskRecord } from '../core/store.ts';
import type { HistoryEventWire, RunWire, TaskWire } from './contracts.ts';

/**
 * Domain records (Dates, readonly arrays) to their JSON contract (ISO strings). Written field by field rather than via
 * JSON.stringify so the compiler checks each contract against the record it comes from.
 */

function isoOrNull(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

export function taskToWire(r: TaskRecord): TaskWire {
  return {
    id: r.id,
    title: r.title,
    type: r.type,
    sender: r.sender,
    urgency: r.urgency,
    deadline: isoOrNull(r.deadline),
    created: r.created.toISOString(),
    state: r.state,
    stateSince: r.stateSince.toISOString(),
    approvalRequired: r.approvalRequired,
    approvalReasons: [...r.approvalReasons],
    approval: r.approval === null ? null : { by: r.approval.by, at: r.approval.at.toISOString() },
    attempts: r.attempts,
    retryAt: isoOrNull(r.retryAt),
    lastError: r.lastError === null ? null : { class: r.lastError.class, message: r.lastError.message },
    reason: r.reason,
    costUsd: r.costUsd,
    lease: r.lease === null ? null : { owner: r.lease.owner, pid: r.lease.pid, expiresAt: r.lease.expiresAt.toISOString() },
    version: r.version,
  };
}

export function runToWire(r: RunRecord): RunWire {
  return {
    taskId: r.taskId,
    attempt: r.attempt,
    kind: r.kind,
    startedAt: r.startedAt.toISOString(),
    endedAt: r.endedAt.toISOString(),
    ok: r.ok,
    errorClass: r.errorClass,
    exitCode: r.exitCode,
    durationMs: r.durationMs,
    costUsd: r.costUsd,
    numTurns: r.numTurns,
    sessionId: r.sessionId,
    logPath: r.logPath,
  };
}

export function historyToWire(e: HistoryEvent): HistoryEventWire {
  return {
    taskId: e.taskId,
    taskType: e.taskType,
    from: e.from,
    to: e.to,
    event: e.event,
    at: new Date(e.at).toISOString(),
    attempt: e.attempt,
    ...(e.durationMs !== undefined ? { durationMs: e.durationMs } : {}),
    ...(e.costUsd !== undefined ? { costUsd: e.costUsd } : {}),
    ...(e.errorClass !== undefined ? { errorClass: e.errorClass } : {}),
  };
}
