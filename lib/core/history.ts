import type { ErrorClass } from './retry.ts';
import type { TaskEventType, TaskState } from './state-machine.ts';

/**
 * One state transition of one task, as the store keeps it: the append-only history every metric, health check and
 * chart is computed from. Times are epoch milliseconds so millions of them stay cheap to hold and compare.
 */
export interface HistoryEvent {
  readonly taskId: string;
  readonly taskType: string;
  readonly from: TaskState;
  readonly to: TaskState;
  readonly event: TaskEventType;
  readonly at: number;
  /** The attempt number the event belongs to (1-based once a run has started; 0 before). */
  readonly attempt: number;
  /** Wall time of the agent run that this event ends, when it ends one. */
  readonly durationMs?: number;
  /** What the agent run that this event ends cost, in USD. */
  readonly costUsd?: number;
  readonly errorClass?: ErrorClass;
}
