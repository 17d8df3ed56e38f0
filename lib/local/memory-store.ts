import { columnsFromEvents, type HistoryColumns } from '../core/history-columns.ts';
import type { HistoryEvent } from '../core/history.ts';
import { assertLimit, latestWithTies, zeroCounts } from '../core/latest-tasks.ts';
import type { TaskEvent, TaskState } from '../core/state-machine.ts';
import { applyToRecord, newTaskRecord } from '../core/store-apply.ts';
import { StoreError } from '../core/store-error.ts';
import { TaskNotFoundError } from '../core/store.ts';
import type {
  ApplyOptions,
  ControlState,
  LatestQuery,
  NewTask,
  RunRecord,
  TaskQuery,
  TaskRecord,
  TaskStore,
} from '../core/store.ts';

/**
 * The task store kept in memory, for the engine's unit tests and `--dry-run`. Each method runs to completion without
 * awaiting, so on one event loop every `apply` is atomic by construction. Records are copied in and out — a caller
 * mutating a returned Date must not change the store, just as it could not change a row on disk.
 */
export class MemoryTaskStore implements TaskStore {
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly taskRuns = new Map<string, RunRecord>();
  private readonly events: HistoryEvent[] = [];
  private controlState: ControlState = {
    stopRequested: false,
    stopReason: null,
    stopChangedAt: null,
    heartbeatAt: null,
    heartbeatOwner: null,
  };
  private closed = false;

  async create(task: NewTask, now: Date): Promise<boolean> {
    this.assertOpen();
    if (this.tasks.has(task.id)) return false;
    this.tasks.set(task.id, copyRecord(newTaskRecord(task, now)));
    return true;
  }

  async get(id: string): Promise<TaskRecord | null> {
    this.assertOpen();
    const record = this.tasks.get(id);
    return record === undefined ? null : copyRecord(record);
  }

  async list(query: TaskQuery = {}): Promise<TaskRecord[]> {
    this.assertOpen();
    const states = query.states === undefined ? null : new Set(query.states);
    return [...this.tasks.values()]
      .filter((r) => states === null || states.has(r.state))
      .sort(byCreatedThenId)
      .map(copyRecord);
  }

  async stateCounts(): Promise<Record<TaskState, number>> {
    this.assertOpen();
    const counts = zeroCounts();
    for (const r of this.tasks.values()) counts[r.state] += 1;
    return counts;
  }

  async listLatest(query: LatestQuery): Promise<TaskRecord[]> {
    this.assertOpen();
    assertLimit(query.limit);
    const states = new Set(query.states);
    return latestWithTies([...this.tasks.values()].filter((r) => states.has(r.state)), query.limit).map(copyRecord);
  }

  async apply(id: string, event: TaskEvent, now: Date, options: ApplyOptions = {}): Promise<TaskRecord> {
    this.assertOpen();
    const current = this.tasks.get(id);
    if (current === undefined) throw new TaskNotFoundError(id);
    const run = options.run;
    const runKey = run === undefined ? null : keyOf(run);
    const replaced = runKey === null ? null : (this.taskRuns.get(runKey) ?? null);
    const { record, history } = applyToRecord(current, event, now, options, replaced);

    this.tasks.set(id, copyRecord(record));
    if (run !== undefined && runKey !== null) this.taskRuns.set(runKey, copyRun(run));
    this.events.push({ ...history });
    return copyRecord(record);
  }

  async runs(taskId: string): Promise<RunRecord[]> {
    this.assertOpen();
    return [...this.taskRuns.values()]
      .filter((r) => r.taskId === taskId)
      .sort((a, b) => a.attempt - b.attempt || compareBinary(a.kind, b.kind))
      .map(copyRun);
  }

  async history(range: { since: Date; until: Date }): Promise<HistoryEvent[]> {
    this.assertOpen();
    const since = range.since.getTime();
    const until = range.until.getTime();
    return this.events.filter((e) => e.at >= since && e.at < until).map((e) => ({ ...e }));
  }

  async historyColumns(range: { since: Date; until: Date }): Promise<HistoryColumns> {
    this.assertOpen();
    return columnsFromEvents(this.events, range);
  }

  async control(): Promise<ControlState> {
    this.assertOpen();
    return copyControl(this.controlState);
  }

  async setStop(requested: boolean, reason: string | null, now: Date): Promise<ControlState> {
    this.assertOpen();
    this.controlState = {
      ...this.controlState,
      stopRequested: requested,
      // Same rule as the SQLite store: a resumed queue keeps no stop reason.
      stopReason: requested ? reason : null,
      stopChangedAt: new Date(now.getTime()),
    };
    return copyControl(this.controlState);
  }

  async heartbeat(owner: string, now: Date): Promise<void> {
    this.assertOpen();
    this.controlState = { ...this.controlState, heartbeatAt: new Date(now.getTime()), heartbeatOwner: owner };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('the in-memory task store is closed');
  }
}

function keyOf(run: RunRecord): string {
  return JSON.stringify([run.taskId, run.attempt, run.kind]);
}

// The order SQLite gives `ORDER BY created, id`: ids compare as UTF-8 bytes, which differs from `<` on UTF-16 strings.
function byCreatedThenId(a: TaskRecord, b: TaskRecord): number {
  return a.created.getTime() - b.created.getTime() || compareBinary(a.id, b.id);
}

function compareBinary(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function copyDate(date: Date): Date;
function copyDate(date: Date | null): Date | null;
function copyDate(date: Date | null): Date | null {
  return date === null ? null : new Date(date.getTime());
}

function copyRecord(r: TaskRecord): TaskRecord {
  return {
    ...r,
    approval: r.approval === null ? null : { ...r.approval, at: copyDate(r.approval.at) },
    retryAt: copyDate(r.retryAt),
    lastError: r.lastError === null ? null : { ...r.lastError },
    stateSince: copyDate(r.stateSince),
    deadline: copyDate(r.deadline),
    created: copyDate(r.created),
    approvalReasons: [...r.approvalReasons],
    lease: r.lease === null ? null : { ...r.lease, expiresAt: copyDate(r.lease.expiresAt) },
  };
}

function copyRun(r: RunRecord): RunRecord {
  return { ...r, startedAt: copyDate(r.startedAt), endedAt: copyDate(r.endedAt) };
}

function copyControl(c: ControlState): ControlState {
  return { ...c, stopChangedAt: copyDate(c.stopChangedAt), heartbeatAt: copyDate(c.heartbeatAt) };
}
