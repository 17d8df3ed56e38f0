/**
 * The single-table design of the cloud runtime, shared by the CDK stack (which creates the table and its index) and the
 * DynamoDB adapter and Lambda handlers (which read and write it). Names live here once so the two cannot drift.
 *
 * Items (pk / sk):
 *   TASK#<id>   / TASK                       the task record (TaskRecord + score, breakdown, task token of a pending approval)
 *   TASK#<id>   / RUN#<attempt:6>#<kind>     one agent run (RunRecord)
 *   TASK#<id>   / ITER#<attempt:6>#<iteration:6>  one iteration of the persistence loop (IterationRecord)
 *   TASK#<id>   / CHECKPOINT                 where an unfinished loop stands (Checkpoint; sessionId null once cleared)
 *   HIST#<day>  / <at:15>#<taskId>#<seq>     one history event; <day> is the UTC date, so a time window is a few queries
 *   CONTROL     / CONTROL                    stop flag, concurrency cap, scheduler heartbeat
 *   COUNTS      / COUNTS                     tasks per state (`count_<state>`), moved in the transaction of every state
 *                                            change; `baseline` once it holds every task (see state-counts.ts)
 * Index BY_STATE (gsi1pk / gsi1sk): STATE#<state> / <stateSince:15>#<id> on task items only, so the tasks of a state are
 * listed without scanning the table and its latest arrivals are read newest first, as many as are wanted. (Until
 * 2026-11 the sort key was <created:15>#<id>; the attributes and the index are the same, so no table change was
 * needed, and the counts backfill re-keys tasks written before.)
 */
export const TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /** Epoch seconds after which DynamoDB may delete an item (history past the retention window). */
  ttlAttribute: 'ttl',
  byState: {
    indexName: 'byState',
    partitionKey: 'gsi1pk',
    sortKey: 'gsi1sk',
  },
} as const;

export const CONTROL_KEY = { pk: 'CONTROL', sk: 'CONTROL' } as const;
/**
 * Its own item, not the control item: every state change writes it, and the control item's own writers (heartbeat,
 * stop flag) would otherwise collide with those transactions.
 */
export const COUNTS_KEY = { pk: 'COUNTS', sk: 'COUNTS' } as const;

export function countAttribute(state: string): string {
  return `count_${state}`;
}

/** Environment variable through which every Lambda and the Fargate runner learn the table name. */
export const TABLE_NAME_ENV = 'FTE_TABLE_NAME';

// ---- Added with the DynamoDB adapter: key builders, so every reader and writer spells a key the same way.

/** Fixed widths of the numeric parts of sort keys: zero-padded so string order is numeric order. */
const MS_WIDTH = 15;
const ATTEMPT_WIDTH = 6;
const VERSION_WIDTH = 9;
const DAY_MS = 86_400_000;

/**
 * The markdown of a task note lives in its own item, not on the task item: DynamoDB bills a write by the size of the
 * whole item, so a body on the task item would make every transition rewrite (and pay for) up to 300 KB. The Fargate
 * runner reads it once per run.
 *   TASK#<id>   / BODY                       { body }
 * A task document that fails validation is kept where an operator can find it, and is never retried:
 *   QUARANTINE#<id> / QUARANTINE             { id, reason, field, message, receivedAt, document (truncated) }
 */
export const SORT_KEYS = { task: 'TASK', body: 'BODY', control: 'CONTROL', quarantine: 'QUARANTINE', checkpoint: 'CHECKPOINT' } as const;
export const KEY_PREFIXES = {
  task: 'TASK#',
  run: 'RUN#',
  iteration: 'ITER#',
  history: 'HIST#',
  state: 'STATE#',
  quarantine: 'QUARANTINE#',
} as const;

export function padMs(ms: number): string {
  // Keys only order and bound; a date outside [1970, year 33658] is clamped rather than breaking the order.
  const clamped = Math.min(Math.max(Math.trunc(ms), 0), 10 ** MS_WIDTH - 1);
  return String(clamped).padStart(MS_WIDTH, '0');
}

export function taskKey(id: string): { pk: string; sk: string } {
  return { pk: `${KEY_PREFIXES.task}${id}`, sk: SORT_KEYS.task };
}

export function bodyKey(id: string): { pk: string; sk: string } {
  return { pk: `${KEY_PREFIXES.task}${id}`, sk: SORT_KEYS.body };
}

export function runKey(taskId: string, attempt: number, kind: string): { pk: string; sk: string } {
  return {
    pk: `${KEY_PREFIXES.task}${taskId}`,
    sk: `${KEY_PREFIXES.run}${String(attempt).padStart(ATTEMPT_WIDTH, '0')}#${kind}`,
  };
}

/**
 * The persistence loop's journal in the cloud (the local runtime keeps it in files): one item per iteration, in the
 * task's partition so the Fargate runner's role (confined to `TASK#*` partitions) can write it, ordered by attempt
 * and iteration, and one checkpoint item per task that the runner replaces after each unfinished iteration.
 */
export function iterationKey(taskId: string, attempt: number, iteration: number): { pk: string; sk: string } {
  return {
    pk: `${KEY_PREFIXES.task}${taskId}`,
    sk: `${KEY_PREFIXES.iteration}${String(attempt).padStart(ATTEMPT_WIDTH, '0')}#${String(iteration).padStart(ATTEMPT_WIDTH, '0')}`,
  };
}

export function checkpointKey(taskId: string): { pk: string; sk: string } {
  return { pk: `${KEY_PREFIXES.task}${taskId}`, sk: SORT_KEYS.checkpoint };
}

export function quarantineKey(id: string): { pk: string; sk: string } {
  return { pk: `${KEY_PREFIXES.quarantine}${id}`, sk: SORT_KEYS.quarantine };
}

/** The UTC day (YYYY-MM-DD) an epoch-millisecond instant falls on: the history partition it is written to. */
export function historyDay(ms: number): string {
  return new Date(Math.floor(ms / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
}

/** `version` is the task's version after the event, so two events of one task never share a key. */
export function historyKey(at: number, taskId: string, version: number): { pk: string; sk: string } {
  return {
    pk: `${KEY_PREFIXES.history}${historyDay(at)}`,
    sk: `${padMs(at)}#${taskId}#${String(version).padStart(VERSION_WIDTH, '0')}`,
  };
}

export function statePartition(state: string): string {
  return `${KEY_PREFIXES.state}${state}`;
}

export function stateIndexKey(state: string, stateSinceMs: number, id: string): { gsi1pk: string; gsi1sk: string } {
  return { gsi1pk: statePartition(state), gsi1sk: `${padMs(stateSinceMs)}#${id}` };
}

/** Width of one history partition: a UTC day. */
export const HISTORY_PARTITION_MS = DAY_MS;
