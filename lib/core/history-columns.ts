import type { HistoryEvent } from './history.ts';
import { borrow, giveBack, regrow } from './scratch-arrays.ts';
import { TASK_EVENT_TYPES, TASK_STATES, type TaskEventType, type TaskState } from './state-machine.ts';

/**
 * History events in columnar form: what metrics read of each event, one typed array per field. A million events as
 * objects cost seconds to decode from a database and a cache miss each to walk; as columns they are a few flat buffers
 * (about 30 MB) that a store can fill in bulk and a pass can stream through without allocating.
 *
 * Row i is one event. Every array has exactly `length` entries. Task ids are replaced by small integers: two rows
 * belong to the same task exactly when their `task` values are equal (the numbering is per call, not stable).
 */
export interface HistoryColumns {
  readonly length: number;
  /** Epoch milliseconds. */
  readonly at: Float64Array;
  /** The state the event entered, as its index in TASK_STATES. */
  readonly to: Uint8Array;
  /** The state-machine event, as its index in TASK_EVENT_TYPES: several events enter the same state. */
  readonly event: Uint8Array;
  /** Index into `types`. */
  readonly type: Uint32Array;
  readonly types: readonly string[];
  /** In [0, taskCount). */
  readonly task: Uint32Array;
  readonly taskCount: number;
  /** NaN when the event ends no run. */
  readonly durationMs: Float64Array;
  /** NaN when the event carries no cost. */
  readonly costUsd: Float64Array;
}

const STATE_CODE: ReadonlyMap<string, number> = new Map(TASK_STATES.map((s, i) => [s, i]));

/** The TASK_STATES index of `state`; -1 for a name this fte does not know. */
export function stateCode(state: string): number {
  return STATE_CODE.get(state) ?? -1;
}

export function stateOf(code: number): TaskState {
  const state = TASK_STATES[code];
  if (state === undefined) throw new RangeError(`no task state has code ${code}`);
  return state;
}

const EVENT_CODE: ReadonlyMap<string, number> = new Map(TASK_EVENT_TYPES.map((e, i) => [e, i]));

/** The TASK_EVENT_TYPES index of `event`; -1 for a name this fte does not know. */
export function eventCode(event: string): number {
  return EVENT_CODE.get(event) ?? -1;
}

export function eventOf(code: number): TaskEventType {
  const event = TASK_EVENT_TYPES[code];
  if (event === undefined) throw new RangeError(`no task event has code ${code}`);
  return event;
}

/**
 * Appends events into growing columns. Stores fill it row by row (`push`) or, when they already hold columns, write
 * straight into the arrays after `reserve` and advance `length`. The arrays are borrowed (scratch-arrays.ts): a reader
 * done with the columns may hand them back with `recycleColumns`, so the next read writes into memory already mapped.
 */
export class HistoryColumnsBuilder {
  at: Float64Array;
  to: Uint8Array;
  event: Uint8Array;
  type: Uint32Array;
  task: Uint32Array;
  durationMs: Float64Array;
  costUsd: Float64Array;
  length = 0;
  /** Task indices handed out so far; a store numbering tasks in a loop of its own may advance it directly. */
  taskCount = 0;
  private readonly types: string[] = [];
  private readonly typeIndex = new Map<string, number>();
  private readonly taskIndex = new Map<string, number>();

  constructor(capacity = 1024) {
    // Not zeroed: no element is read before it is written.
    const n = Math.max(1, capacity);
    this.at = borrow(Float64Array, n, false);
    this.to = borrow(Uint8Array, n, false);
    this.event = borrow(Uint8Array, n, false);
    this.type = borrow(Uint32Array, n, false);
    this.task = borrow(Uint32Array, n, false);
    this.durationMs = borrow(Float64Array, n, false);
    this.costUsd = borrow(Float64Array, n, false);
  }

  internType(name: string): number {
    let i = this.typeIndex.get(name);
    if (i === undefined) {
      i = this.types.length;
      this.types.push(name);
      this.typeIndex.set(name, i);
    }
    return i;
  }

  internTask(id: string): number {
    let i = this.taskIndex.get(id);
    if (i === undefined) {
      i = this.newTask();
      this.taskIndex.set(id, i);
    }
    return i;
  }

  /** A task index no other task has, for stores that identify tasks by something other than the id string. */
  newTask(): number {
    return this.taskCount++;
  }

  /** Room for `extra` more rows; the arrays may be replaced, so read them after this call. */
  reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.at.length) return;
    const n = Math.max(needed, this.at.length * 2);
    this.at = regrow(Float64Array, this.at, n);
    this.to = regrow(Uint8Array, this.to, n);
    this.event = regrow(Uint8Array, this.event, n);
    this.type = regrow(Uint32Array, this.type, n);
    this.task = regrow(Uint32Array, this.task, n);
    this.durationMs = regrow(Float64Array, this.durationMs, n);
    this.costUsd = regrow(Float64Array, this.costUsd, n);
  }

  push(e: HistoryEvent): void {
    const code = STATE_CODE.get(e.to);
    if (code === undefined) throw new RangeError(`history event of task ${e.taskId} enters unknown state ${e.to}`);
    const event = EVENT_CODE.get(e.event);
    if (event === undefined) throw new RangeError(`history event of task ${e.taskId} is of unknown type ${e.event}`);
    this.reserve(1);
    const i = this.length++;
    this.at[i] = e.at;
    this.to[i] = code;
    this.event[i] = event;
    this.type[i] = this.internType(e.taskType);
    this.task[i] = this.internTask(e.taskId);
    this.durationMs[i] = e.durationMs ?? Number.NaN;
    this.costUsd[i] = e.costUsd ?? Number.NaN;
  }

  build(): HistoryColumns {
    const n = this.length;
    return {
      length: n,
      at: this.at.subarray(0, n),
      to: this.to.subarray(0, n),
      event: this.event.subarray(0, n),
      type: this.type.subarray(0, n),
      types: [...this.types],
      task: this.task.subarray(0, n),
      taskCount: this.taskCount,
      durationMs: this.durationMs.subarray(0, n),
      costUsd: this.costUsd.subarray(0, n),
    };
  }
}

/**
 * Hands the arrays of `columns` back for the next read to reuse. Only for columns nobody reads any more: afterwards
 * they may be overwritten at any time.
 */
export function recycleColumns(columns: HistoryColumns): void {
  for (const array of [columns.at, columns.to, columns.event, columns.type, columns.task, columns.durationMs, columns.costUsd]) giveBack(array);
}

/** Events with since ≤ at < until (every event without a range), in their order, as columns. */
export function columnsFromEvents(
  events: Iterable<HistoryEvent>,
  range?: { readonly since: Date; readonly until: Date },
): HistoryColumns {
  const since = range === undefined ? -Infinity : range.since.getTime();
  const until = range === undefined ? Infinity : range.until.getTime();
  const builder = new HistoryColumnsBuilder(Array.isArray(events) ? events.length : 1024);
  for (const e of events) {
    if (range === undefined || (e.at >= since && e.at < until)) builder.push(e);
  }
  return builder.build();
}
