import type { ErrorClass } from './retry.ts';
import type { TaskState } from './state-machine.ts';
import type { TaskRecord } from './store.ts';
import type { Level } from './task.ts';

/**
 * A TaskRecord as flat scalars: dates as epoch milliseconds, the nested approval, last error and lease as nullable
 * columns. Every store adapter writes this shape in its own encoding (SQLite columns, DynamoDB attributes), so the
 * flattening — which nested fields exist and when a partial one counts as absent — is decided once, here.
 */
export interface FlatTask {
  id: string;
  title: string;
  type: string;
  sender: string | null;
  urgency: Level;
  deadline: number | null;
  created: number;
  approvalRequired: boolean;
  approvalReasons: string[];
  state: TaskState;
  approvalBy: string | null;
  approvalAt: number | null;
  attempts: number;
  retryAt: number | null;
  lastErrorClass: ErrorClass | null;
  lastErrorMessage: string | null;
  reason: string | null;
  stateSince: number;
  costUsd: number;
  leaseOwner: string | null;
  leasePid: number | null;
  leaseExpiresAt: number | null;
  version: number;
}

/** Epoch ms of a date that must be valid: drivers write NaN as NULL or refuse it, silently erasing or failing later. */
export function toEpochMs(date: Date): number {
  const ms = date.getTime();
  if (Number.isNaN(ms)) throw new RangeError('cannot store an invalid Date');
  return ms;
}

const msOrNull = (d: Date | null): number | null => (d === null ? null : toEpochMs(d));
const dateOrNull = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));

export function flattenTask(r: TaskRecord): FlatTask {
  return {
    id: r.id,
    title: r.title,
    type: r.type,
    sender: r.sender,
    urgency: r.urgency,
    deadline: msOrNull(r.deadline),
    created: toEpochMs(r.created),
    approvalRequired: r.approvalRequired,
    approvalReasons: [...r.approvalReasons],
    state: r.state,
    approvalBy: r.approval?.by ?? null,
    approvalAt: r.approval === null ? null : toEpochMs(r.approval.at),
    attempts: r.attempts,
    retryAt: msOrNull(r.retryAt),
    lastErrorClass: r.lastError?.class ?? null,
    lastErrorMessage: r.lastError?.message ?? null,
    reason: r.reason,
    stateSince: toEpochMs(r.stateSince),
    costUsd: r.costUsd,
    leaseOwner: r.lease?.owner ?? null,
    leasePid: r.lease?.pid ?? null,
    leaseExpiresAt: r.lease === null ? null : toEpochMs(r.lease.expiresAt),
    version: r.version,
  };
}

export function unflattenTask(f: FlatTask): TaskRecord {
  return {
    id: f.id,
    state: f.state,
    approvalRequired: f.approvalRequired,
    approval: f.approvalBy === null || f.approvalAt === null ? null : { by: f.approvalBy, at: new Date(f.approvalAt) },
    attempts: f.attempts,
    retryAt: dateOrNull(f.retryAt),
    lastError: f.lastErrorClass === null || f.lastErrorMessage === null ? null : { class: f.lastErrorClass, message: f.lastErrorMessage },
    reason: f.reason,
    stateSince: new Date(f.stateSince),
    title: f.title,
    type: f.type,
    sender: f.sender,
    urgency: f.urgency,
    deadline: dateOrNull(f.deadline),
    created: new Date(f.created),
    approvalReasons: [...f.approvalReasons],
    costUsd: f.costUsd,
    lease: f.leaseOwner === null || f.leaseExpiresAt === null ? null : { owner: f.leaseOwner, pid: f.leasePid, expiresAt: new Date(f.leaseExpiresAt) },
    version: f.version,
  };
}
