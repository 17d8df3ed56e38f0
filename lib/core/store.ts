import { FteError } from './errors.ts';
import type { HistoryColumns } from './history-columns.ts';
import type { HistoryEvent } from './history.ts';
import type { ErrorClass } from './retry.ts';
import type { TaskEvent, TaskState, TaskStatus } from './state-machine.ts';
import type { Level } from './task.ts';

/**
 * The store port: what both runtimes keep about tasks, their runs, their history and the orchestrator itself. The
 * embedded SQLite adapter and the DynamoDB adapter implement it, and one contract suite
 * (test/contract/task-store.contract.ts) runs against each. Every state change goes through `apply`, which runs the
 * core `transition()` and writes the result only if nobody else wrote the task in between — so the transition table is
 * enforced by the store itself, not only by whoever calls it.
 */

/** Who holds a running task: a crash is detected when the holder is gone or its lease has run out. */
export interface Lease {
  readonly owner: string;
  readonly pid: number | null;
  readonly expiresAt: Date;
}

/** The task as the store keeps it: its status plus what scoring and display need without re-reading the note. */
export interface TaskRecord extends TaskStatus {
  readonly title: string;
  readonly type: string;
  readonly sender: string | null;
  readonly urgency: Level;
  readonly deadline: Date | null;
  readonly created: Date;
  readonly approvalReasons: readonly string[];
  /** Sum of the cost of every run of this task, in USD. */
  readonly costUsd: number;
  readonly lease: Lease | null;
  /** Incremented by every write; `apply` with `expectedVersion` fails when it moved on. */
  readonly version: number;
}

export type NewTask = Pick<
  TaskRecord,
  'id' | 'title' | 'type' | 'sender' | 'urgency' | 'deadline' | 'created' | 'approvalRequired' | 'approvalReasons'
>;

/** One agent run (a planning or an execution run) of a task. */
export interface RunRecord {
  readonly taskId: string;
  readonly attempt: number;
  readonly kind: 'plan' | 'execute';
  readonly startedAt: Date;
  readonly endedAt: Date;
  readonly ok: boolean;
  readonly errorClass: ErrorClass | null;
  readonly exitCode: number | null;
  readonly durationMs: number;
  readonly costUsd: number;
  readonly numTurns: number | null;
  readonly sessionId: string | null;
  readonly logPath: string | null;
}

export interface ApplyOptions {
  /** Write only if the task is still at this version (optimistic concurrency). */
  readonly expectedVersion?: number;
  /** The lease to hold from now on; `null` releases it. Leaving a running state always releases it. */
  readonly lease?: Lease | null;
  /** The run this event ends: its cost and duration go on the history event and into the task's total cost. */
  readonly run?: RunRecord;
}

export interface TaskQuery {
  readonly states?: readonly TaskState[];
}

export interface LatestQuery {
  readonly states: readonly TaskState[];
  readonly limit: number;
}

export interface ControlState {
  readonly stopRequested: boolean;
  readonly stopReason: string | null;
  readonly stopChangedAt: Date | null;
  readonly heartbeatAt: Date | null;
  readonly heartbeatOwner: string | null;
}

export interface TaskStore {
  /** Admit a task in `needs_action`. Idempotent on the id: returns false, changing nothing, if it exists. */
  create(task: NewTask, now: Date): Promise<boolean>;
  get(id: string): Promise<TaskRecord | null>;
  list(query?: TaskQuery): Promise<TaskRecord[]>;
  /**
   * How many tasks are in each state, every state present (0 when none). The read side counts finished tasks without
   * listing them: a year of use leaves 100k+ of them, and a dashboard refresh must not grow with that.
   */
  stateCounts(): Promise<Record<TaskState, number>>;
  /**
   * The tasks of `states` that entered their state last: newest `stateSince` first, then by id as `list` orders ids.
   * At most `limit` of them, plus any that entered at the same millisecond as the last one kept — so a caller that
   * breaks ties its own way still finds its own first `limit` among them. (The dashboard's latest completions.)
   */
  listLatest(query: LatestQuery): Promise<TaskRecord[]>;
  /**
   * Apply a state-machine event atomically: read the task, run the core `transition()`, write the result and append
   * the history event in one transaction. Throws TaskNotFoundError, InvalidTransitionError or StaleWriteError.
   */
  apply(id: string, event: TaskEvent, now: Date, options?: ApplyOptions): Promise<TaskRecord>;
  runs(taskId: string): Promise<RunRecord[]>;
  /** History events with since ≤ at < until, oldest first. */
  history(range: { since: Date; until: Date }): Promise<HistoryEvent[]>;
  /**
   * The same events as `history(range)`, in the same order, as columns: what metrics read of them and nothing else.
   * Metrics over a month can span a million events; as objects those cost seconds to decode, as columns milliseconds.
   */
  historyColumns(range: { since: Date; until: Date }): Promise<HistoryColumns>;
  control(): Promise<ControlState>;
  setStop(requested: boolean, reason: string | null, now: Date): Promise<ControlState>;
  heartbeat(owner: string, now: Date): Promise<void>;
  close(): Promise<void>;
}

export class TaskNotFoundError extends FteError {
  constructor(readonly taskId: string) {
    super('TASK_NOT_FOUND', `no task with id ${JSON.stringify(taskId)}`);
  }
}

export class StaleWriteError extends FteError {
  constructor(readonly taskId: string, readonly expected: number, readonly actual: number) {
    super('STALE_WRITE', `task ${taskId} changed underneath this write (expected version ${expected}, found ${actual})`);
  }
}
