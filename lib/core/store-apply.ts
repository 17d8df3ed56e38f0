import type { HistoryEvent } from './history.ts';
import type { ErrorClass } from './retry.ts';
import { RUNNING_STATES, newTaskStatus, transition } from './state-machine.ts';
import type { TaskEvent } from './state-machine.ts';
import { StaleWriteError } from './store.ts';
import type { ApplyOptions, Lease, NewTask, RunRecord, TaskRecord } from './store.ts';

/**
 * The rules of `TaskStore.apply` that do not depend on where the task is kept: the version check, the transition, what
 * happens to the lease and to the cost, and the history event the step appends. Every adapter reads the record, calls
 * `applyToRecord`, and writes what it returns in one atomic, version-conditional write — so the adapters differ only in
 * how they store, never in what they store.
 */

export interface AppliedEvent {
  readonly record: TaskRecord;
  readonly history: HistoryEvent;
}

/** The record `TaskStore.create` admits: `needs_action`, no attempts, no cost, no lease, version 1. */
export function newTaskRecord(task: NewTask, now: Date): TaskRecord {
  return {
    ...newTaskStatus(task.id, task.approvalRequired, now),
    title: task.title,
    type: task.type,
    sender: task.sender,
    urgency: task.urgency,
    deadline: task.deadline,
    created: task.created,
    approvalReasons: [...task.approvalReasons],
    costUsd: 0,
    lease: null,
    version: 1,
  };
}

/**
 * Apply `event` to `record`. Pure; throws StaleWriteError when `options.expectedVersion` is not the record's version
 * and InvalidTransitionError when the state machine refuses the event.
 *
 * `replacedRun` is the run already stored under the key of `options.run` (task, attempt, kind), if any: writing a run
 * again replaces it, so its old cost comes off the total and `costUsd` stays the sum of the task's runs.
 */
export function applyToRecord(
  record: TaskRecord,
  event: TaskEvent,
  now: Date,
  options: ApplyOptions = {},
  replacedRun: RunRecord | null = null,
): AppliedEvent {
  if (options.expectedVersion !== undefined && options.expectedVersion !== record.version) {
    throw new StaleWriteError(record.id, options.expectedVersion, record.version);
  }
  const run = options.run;
  if (run !== undefined && run.taskId !== record.id) {
    // A caller bug, not a state of the world: storing it would credit one task's run to another.
    throw new RangeError(`run of task ${run.taskId} cannot end an event of task ${record.id}`);
  }

  const { status } = transition(record, event, now);
  const next: TaskRecord = {
    ...record,
    ...status,
    lease: nextLease(record, status.state, options),
    costUsd: record.costUsd + (run?.costUsd ?? 0) - (replacedRun?.costUsd ?? 0),
    version: record.version + 1,
  };
  return { record: next, history: historyEvent(record, next, event, now, run) };
}

function nextLease(record: TaskRecord, state: TaskRecord['state'], options: ApplyOptions): Lease | null {
  // Nobody can hold a task no agent runs for; a stale lease there would make crash recovery chase a live process.
  if (!RUNNING_STATES.has(state)) return null;
  return options.lease !== undefined ? options.lease : record.lease;
}

function historyEvent(
  before: TaskRecord,
  after: TaskRecord,
  event: TaskEvent,
  now: Date,
  run: RunRecord | undefined,
): HistoryEvent {
  // The event's error is the verdict on this step; the run's class is only a fallback for events that carry none.
  const errorClass: ErrorClass | null =
    event.type === 'fail' || event.type === 'dead_letter' ? event.error.class : (run?.errorClass ?? null);
  return {
    taskId: before.id,
    taskType: before.type,
    from: before.state,
    to: after.state,
    event: event.type,
    at: now.getTime(),
    attempt: after.attempts,
    ...(run !== undefined ? { durationMs: run.durationMs, costUsd: run.costUsd } : {}),
    ...(errorClass !== null ? { errorClass } : {}),
  };
}
