import * as z from 'zod';
import { ERROR_CLASSES } from '../core/retry.ts';
import { TASK_EVENT_TYPES, TASK_STATES } from '../core/state-machine.ts';
import { URGENCY_NAMES } from '../core/task.ts';

/**
 * The JSON contracts of fte's read and write operations, as zod schemas. One definition serves four readers: the HTTP
 * API validates what it sends with them, the API client validates what it receives, the CLI prints the same objects
 * with `--json`, and the tests check shapes against them. Issue 4 promises the keys of metrics, health and queue; keys
 * may be added, never renamed. Times are ISO 8601 strings in UTC.
 *
 * Objects are `z.object`, which drops unknown keys when parsing: a client built against this version keeps working
 * when a newer server adds fields.
 */

const iso = z.iso.datetime({ offset: true });
const count = z.int().nonnegative();
const seconds = z.number().nonnegative();

export const taskStateSchema = z.enum(TASK_STATES);
export const errorClassSchema = z.enum(ERROR_CLASSES);
export const healthStatusSchema = z.enum(['healthy', 'degraded', 'unhealthy']);

export const taskSchema = z.object({
  id: z.string(),
  title: z.string(),
  type: z.string(),
  sender: z.string().nullable(),
  urgency: z.int().min(1).max(5),
  deadline: iso.nullable(),
  created: iso,
  state: taskStateSchema,
  stateSince: iso,
  approvalRequired: z.boolean(),
  approvalReasons: z.array(z.string()),
  approval: z.object({ by: z.string(), at: iso }).nullable(),
  attempts: count,
  retryAt: iso.nullable(),
  lastError: z.object({ class: errorClassSchema, message: z.string() }).nullable(),
  reason: z.string().nullable(),
  costUsd: z.number(),
  lease: z.object({ owner: z.string(), pid: z.int().nullable(), expiresAt: iso }).nullable(),
  version: z.int(),
});
export type TaskWire = z.infer<typeof taskSchema>;

export const runSchema = z.object({
  taskId: z.string(),
  attempt: count,
  kind: z.enum(['plan', 'execute']),
  startedAt: iso,
  endedAt: iso,
  ok: z.boolean(),
  errorClass: errorClassSchema.nullable(),
  exitCode: z.int().nullable(),
  durationMs: z.number(),
  costUsd: z.number(),
  numTurns: z.int().nullable(),
  sessionId: z.string().nullable(),
  logPath: z.string().nullable(),
});
export type RunWire = z.infer<typeof runSchema>;

export const historyEventSchema = z.object({
  taskId: z.string(),
  taskType: z.string(),
  from: taskStateSchema,
  to: taskStateSchema,
  event: z.enum(TASK_EVENT_TYPES),
  at: iso,
  attempt: count,
  durationMs: z.number().optional(),
  costUsd: z.number().optional(),
  errorClass: errorClassSchema.optional(),
});
export type HistoryEventWire = z.infer<typeof historyEventSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Status

export const statusSchema = z.object({
  generatedAt: iso,
  /** Where the tasks live: the vault folder locally, the stack in the cloud. */
  vault: z.string(),
  orchestrator: z.object({
    running: z.boolean(),
    pid: z.int().nullable(),
    heartbeatAt: iso.nullable(),
    heartbeatAgeSeconds: z.number().nullable(),
  }),
  stop: z.object({ stopped: z.boolean(), reason: z.string().nullable(), stopFile: z.boolean() }),
  counts: z.record(taskStateSchema, count),
  running: z.array(
    z.object({ id: z.string(), title: z.string(), state: taskStateSchema, attempt: count, elapsedSeconds: seconds }),
  ),
  pendingApproval: z.array(
    z.object({ id: z.string(), title: z.string(), waitingSeconds: seconds, reasons: z.array(z.string()) }),
  ),
  /** Spend over the rolling 24 h window against `budget` (lib/core/budget.ts); runs still in progress not included. */
  budget: z.object({
    spentUsd: z.number().nonnegative(),
    spentByType: z.record(z.string(), z.number()),
    dailyUsd: z.number().nullable(),
    /** Why no task may start, or null. */
    exhausted: z.string().nullable(),
    exhaustedTypes: z.record(z.string(), z.string()),
    /** When the oldest spend leaves the window: the earliest the budget can free up. */
    freesAt: iso.nullable(),
  }),
});
export type StatusReport = z.infer<typeof statusSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Queue

export const breakdownSchema = z.object({
  urgency: z.number(),
  deadline: z.number(),
  sender: z.number(),
  ageBoost: z.number(),
});

export const queueRowSchema = z.object({
  position: z.int().positive(),
  id: z.string(),
  title: z.string(),
  type: z.string(),
  score: z.number(),
  breakdown: breakdownSchema,
  waitSeconds: count,
  /** null when there is no recent run to estimate from. */
  etaSeconds: count.nullable(),
  approvalRequired: z.boolean(),
  approvalReasons: z.array(z.string()),
  /** The task's state in the store; null for a note in Needs_Action/ that no orchestrator has admitted yet. */
  state: z.enum(['needs_action', 'approved']).nullable(),
  /** What a task of this type has cost on average recently (24 h); null when none finished. */
  estimatedCostUsd: z.number().nullable(),
});
export type QueueRowWire = z.infer<typeof queueRowSchema>;

export const invalidNoteSchema = z.object({ id: z.string(), error: z.string(), reason: z.string() });
export type InvalidNote = z.infer<typeof invalidNoteSchema>;

export const queueSchema = z.object({
  generatedAt: iso,
  /** Runnable tasks in dispatch order: approved work first, then by score. */
  tasks: z.array(queueRowSchema),
  /** Notes that cannot be parsed; never ranked. */
  invalid: z.array(invalidNoteSchema),
  /** Tasks waiting out a retry backoff: they rejoin the queue at retryAt. */
  retrying: z.array(z.object({ id: z.string(), title: z.string(), attempts: count, retryAt: iso.nullable() })),
  running: count,
  concurrency: z.int().positive(),
  /** The estimated cost of everything waiting, from recent per-type averages (types with no history count as 0). */
  estimatedCostUsd: z.number(),
});
export type QueueReport = z.infer<typeof queueSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Metrics

const latencySchema = z.object({ avg: z.number(), p50: z.number(), p95: z.number() });

export const processUsageSchema = z.object({
  pid: z.int(),
  cpuSeconds: z.number().nonnegative(),
  /** Average CPU use over the process's life, in percent of one core. */
  cpuPercent: z.number().nonnegative().nullable(),
  rssBytes: count,
});

export const resourcesSchema = z.object({
  sampledAt: iso,
  /** False where the runtime cannot see its processes (the cloud API, a system without /proc). */
  available: z.boolean(),
  orchestrator: processUsageSchema.nullable(),
  agents: z.array(
    z.object({
      taskId: z.string(),
      /** The agent's process group (it leads one, so its children are counted with it). */
      pid: z.int(),
      processes: count,
      cpuSeconds: z.number().nonnegative().nullable(),
      rssBytes: count.nullable(),
    }),
  ),
  totalCpuSeconds: z.number().nonnegative(),
  totalRssBytes: count,
});
export type ResourceUsage = z.infer<typeof resourcesSchema>;

export const metricsSchema = z.object({
  since: iso,
  until: iso,
  completed: count,
  failed: count,
  retried: count,
  throughputPerHour: z.number().nonnegative(),
  errorRate: z.number().min(0).max(1),
  latencyMs: latencySchema.extend({ max: z.number() }),
  costUsd: z.number(),
  byType: z.record(
    z.string(),
    z.object({
      completed: count,
      failed: count,
      errorRate: z.number().min(0).max(1),
      costUsd: z.number(),
      latencyMs: latencySchema,
    }),
  ),
  bucketSeconds: z.number().positive(),
  series: z.array(
    z.object({ start: iso, completed: count, failed: count, costUsd: z.number(), latencyMsAvg: z.number() }),
  ),
  /** Spend per UTC day and what one task cost (p50/p95) in the window. */
  cost: z.object({
    perDay: z.array(z.object({ day: z.string(), usd: z.number() })),
    perTask: z.object({ tasks: count, avg: z.number(), p50: z.number(), p95: z.number(), max: z.number() }),
  }),
  resources: resourcesSchema,
});
export type MetricsReport = z.infer<typeof metricsSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Health

export const healthCheckSchema = z.object({
  name: z.string(),
  status: healthStatusSchema,
  value: z.number().nullable(),
  threshold: z.number(),
  message: z.string(),
});

export const healthSchema = z.object({
  generatedAt: iso,
  status: healthStatusSchema,
  checks: z.array(healthCheckSchema),
});
export type HealthReportWire = z.infer<typeof healthSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Dashboard

export const recentCompletionSchema = z.object({
  id: z.string(),
  title: z.string(),
  type: z.string(),
  state: taskStateSchema,
  finishedAt: iso,
  attempts: count,
  costUsd: z.number(),
  /** Wall time of the run that finished it, when one did (a rejection ends no run). */
  durationMs: z.number().nullable(),
  /** The error or the reason it ended without success. */
  detail: z.string().nullable(),
});
export type RecentCompletion = z.infer<typeof recentCompletionSchema>;

export const dashboardSchema = z.object({
  generatedAt: iso,
  status: statusSchema,
  health: healthSchema,
  queue: z.object({
    total: count,
    head: z.array(queueRowSchema),
    invalid: count,
    retrying: count,
  }),
  recent: z.array(recentCompletionSchema),
  metrics: metricsSchema,
});
export type DashboardReport = z.infer<typeof dashboardSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Task detail

export const taskDetailSchema = z.object({
  task: taskSchema,
  /** Where the note is (local runtime only). */
  folder: z.string().nullable(),
  notePath: z.string().nullable(),
  runs: z.array(runSchema),
  history: z.array(historyEventSchema),
  /** Events the state machine allows now — what a UI may offer. */
  allowedEvents: z.array(z.enum(TASK_EVENT_TYPES)),
});
export type TaskDetail = z.infer<typeof taskDetailSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Writes

const TYPE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** A new task as an API caller or `fte task add` describes it; it becomes a note in Needs_Action/. */
export const addTaskRequestSchema = z.strictObject({
  title: z.string().trim().min(1, 'the title is empty').max(300),
  body: z.string().max(60_000).optional(),
  urgency: z.union([z.enum(URGENCY_NAMES), z.int().min(1).max(5)]).optional(),
  deadline: z.string().min(1).max(64).optional(),
  from: z.string().min(1).max(320).optional(),
  type: z
    .string()
    .transform((s) => s.trim().toLowerCase())
    .pipe(z.string().regex(TYPE_PATTERN, 'a type is one word: letters, digits, - and _'))
    .optional(),
  approval: z.enum(['required', 'auto']).optional(),
});
export type AddTaskRequest = z.infer<typeof addTaskRequestSchema>;

export const approveRequestSchema = z.strictObject({});
export const rejectRequestSchema = z.strictObject({ reason: z.string().min(1).max(2000).optional() });
export type RejectRequest = z.infer<typeof rejectRequestSchema>;
export const stopRequestSchema = z.strictObject({
  now: z.boolean().optional(),
  reason: z.string().min(1).max(2000).optional(),
});
export type StopRequest = z.infer<typeof stopRequestSchema>;
export const resumeRequestSchema = z.strictObject({});

export const addTaskResponseSchema = z.object({ id: z.string(), task: taskSchema });
export type AddTaskResponse = z.infer<typeof addTaskResponseSchema>;
export const taskActionResponseSchema = z.object({ id: z.string(), state: taskStateSchema, task: taskSchema });
export type TaskActionResponse = z.infer<typeof taskActionResponseSchema>;
export const stopResponseSchema = z.object({ stopped: z.literal(true), now: z.boolean(), reason: z.string().nullable() });
export type StopResponse = z.infer<typeof stopResponseSchema>;
export const resumeResponseSchema = z.object({ stopped: z.literal(false), removedStopFile: z.boolean() });
export type ResumeResponse = z.infer<typeof resumeResponseSchema>;

export const errorResponseSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
export type ErrorResponse = z.infer<typeof errorResponseSchema>;
