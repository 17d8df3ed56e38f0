import type {
  AddTaskRequest,
  AddTaskResponse,
  DashboardReport,
  HealthReportWire,
  MetricsReport,
  QueueReport,
  ResumeResponse,
  StatusReport,
  StopResponse,
  TaskActionResponse,
  TaskDetail,
} from '../app/contracts.ts';
import { HistoryTotalsCache } from '../app/prometheus-metrics.ts';
import {
  readDashboard,
  readHealth,
  readMetrics,
  readPrometheus,
  readQueue,
  readStatus,
  readTaskDetail,
  type ReadSources,
  type TimeWindow,
} from '../app/reads.ts';

/**
 * The port the HTTP API is written against. The read side is the same computation in every runtime (lib/app/reads.ts
 * over a TaskStore); the write side differs — locally a task moves in the store and its note moves in the vault
 * (TaskService), in the cloud an approval completes a Step Functions task token — so it is an interface each runtime
 * implements. The CLI reads through the same interface, from the store or from a running API (lib/api/client.ts).
 */

export interface ApiReads {
  status(): Promise<StatusReport>;
  queue(): Promise<QueueReport>;
  metrics(window: TimeWindow): Promise<MetricsReport>;
  health(): Promise<HealthReportWire>;
  dashboard(window: TimeWindow): Promise<DashboardReport>;
  /** Throws TaskNotFoundError (code TASK_NOT_FOUND) for an unknown id. */
  task(id: string): Promise<TaskDetail>;
  /** The Prometheus text exposition page. */
  prometheus(): Promise<string>;
}

/** Who asked, for the task history ("api", or the IAM principal in the cloud). */
export interface Caller {
  readonly actor: string;
}

/**
 * State changes. Each throws the domain's typed errors — TaskNotFoundError, InvalidTransitionError, StaleWriteError,
 * TaskParseError, InvalidTaskIdError — which the API maps to 404, 409 and 400.
 */
export interface ApiActions {
  addTask(input: AddTaskRequest, caller: Caller): Promise<AddTaskResponse>;
  approve(id: string, caller: Caller): Promise<TaskActionResponse>;
  reject(id: string, caller: Caller, reason?: string): Promise<TaskActionResponse>;
  /** Stop dispatch; with `now`, also stop running agents and put their tasks back in the queue. */
  stop(options: { now: boolean; reason?: string }, caller: Caller): Promise<StopResponse>;
  resume(caller: Caller): Promise<ResumeResponse>;
}

export interface ApiBackend extends ApiReads, ApiActions {}

/** The read side over a store and its runtime's hooks: what both runtimes' backends delegate to. */
export function storeReads(src: ReadSources): ApiReads {
  // One per backend: Prometheus counters are folded in incrementally between scrapes of this process.
  const totals = new HistoryTotalsCache();
  return {
    status: () => readStatus(src),
    queue: () => readQueue(src),
    metrics: (window) => readMetrics(src, window),
    health: () => readHealth(src),
    dashboard: (window) => readDashboard(src, window),
    task: (id) => readTaskDetail(src, id),
    prometheus: () => readPrometheus(src, totals),
  };
}

export function combineBackend(reads: ApiReads, actions: ApiActions): ApiBackend {
  return {
    status: () => reads.status(),
    queue: () => reads.queue(),
    metrics: (window) => reads.metrics(window),
    health: () => reads.health(),
    dashboard: (window) => reads.dashboard(window),
    task: (id) => reads.task(id),
    prometheus: () => reads.prometheus(),
    addTask: (input, caller) => actions.addTask(input, caller),
    approve: (id, caller) => actions.approve(id, caller),
    reject: (id, caller, reason) => actions.reject(id, caller, reason),
    stop: (options, caller) => actions.stop(options, caller),
    resume: (caller) => actions.resume(caller),
  };
}
