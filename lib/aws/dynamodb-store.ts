import { DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import type { CancellationReason } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { QueryCommandInput, ScanCommandInput, TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { columnsFromEvents, type HistoryColumns } from '../core/history-columns.ts';
import type { HistoryEvent } from '../core/history.ts';
import { assertLimit, latestWithTies } from '../core/latest-tasks.ts';
import { runFromIterations } from '../core/persistence.ts';
import type { Checkpoint, IterationRecord } from '../core/persistence.ts';
import { ERROR_CLASSES } from '../core/retry.ts';
import type { ErrorClass } from '../core/retry.ts';
import { RUNNING_STATES, TASK_EVENT_TYPES, TASK_STATES, TRANSITIONS, InvalidTransitionError } from '../core/state-machine.ts';
import type { TaskEvent, TaskEventType, TaskState } from '../core/state-machine.ts';
import { flattenTask, toEpochMs, unflattenTask } from '../core/task-codec.ts';
import { applyToRecord, newTaskRecord } from '../core/store-apply.ts';
import { StoreError } from '../core/store-error.ts';
import { StaleWriteError, TaskNotFoundError } from '../core/store.ts';
import { isConditionalCheckFailed } from './sdk-errors.ts';
import { countsUpdate, readStateCounts } from './state-counts.ts';
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
import type { Level } from '../core/task.ts';
import {
  CONTROL_KEY,
  HISTORY_PARTITION_MS,
  KEY_PREFIXES,
  SORT_KEYS,
  TABLE,
  bodyKey,
  checkpointKey,
  historyDay,
  historyKey,
  iterationKey,
  padMs,
  quarantineKey,
  runKey,
  stateIndexKey,
  statePartition,
  taskKey,
} from './table-design.ts';

/**
 * The task store of the cloud runtime: the single table of table-design.ts, read and written by the Lambda handlers,
 * the API and the Fargate runner. `apply` follows the same rules as every adapter (lib/core/store-apply.ts): read the
 * task, let the core compute the step, then write the task, its history event and its run in ONE TransactWriteItems
 * whose task write is conditioned on the state and version that were read. A writer that read an older task — a
 * duplicate Step Functions step, a retried Lambda, a second scheduler — fails with StaleWriteError instead of writing a
 * transition the table allows only from a state the task has already left.
 *
 * Dates are epoch milliseconds (numbers) on every item. Reads of a single item are strongly consistent; `list` with
 * states reads the byState index, which DynamoDB keeps eventually consistent — whatever acts on a listed task does so
 * through a conditional write, so a just-moved task is at worst skipped or refused, never corrupted.
 */

export interface DynamoTaskStoreOptions {
  readonly client: DynamoDBDocumentClient | DynamoDBClient;
  readonly tableName: string;
  /** When set, history items carry a TTL this many days after their event, so DynamoDB expires old history for free. */
  readonly historyRetentionDays?: number;
}

/** Why the table could not be used: lets a caller tell a retryable hiccup from a deployment fault. */
export type DynamoUnavailableReason = 'table_missing' | 'throttled' | 'network' | 'access_denied' | 'service_error';

/** A StoreError (code STORE_UNAVAILABLE) that says which kind of unavailability it was. */
export class DynamoStoreError extends StoreError {
  constructor(
    readonly reason: DynamoUnavailableReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Worth retrying later (the SDK has already retried): throttling, the network, a 5xx. */
  get transient(): boolean {
    return this.reason === 'throttled' || this.reason === 'network' || this.reason === 'service_error';
  }
}

/** The approval token was offered for a task that is not (or no longer) waiting for approval. */
export class NotAwaitingApprovalError extends Error {
  readonly code = 'NOT_AWAITING_APPROVAL' as const;

  constructor(
    readonly taskId: string,
    readonly state: TaskState,
  ) {
    super(`task ${taskId} is ${state}, not pending_approval: no approval token can be stored for it`);
    this.name = new.target.name;
  }
}

/** A task document that failed validation, kept for an operator instead of being retried. */
export interface QuarantineRecord {
  /** The id as the document gave it (possibly invalid, which may be why it is here). */
  readonly id: string;
  readonly reason: string;
  readonly field: string | null;
  readonly message: string;
  readonly receivedAt: Date;
  /** The start of the document, enough to recognise it; the whole of it may not fit in an item. */
  readonly excerpt: string;
}

/**
 * The scheduler's last verdict on the rolling daily budgets (core `budgetState` over the history), kept on the control
 * item: it is why the scheduler starts nothing, what CheckStop reads before an execution and what a running
 * persistence loop pauses on between iterations, and what status and health can show.
 */
export interface BudgetBlock {
  /** Why no task may start (`budget.daily_usd` spent in the last 24 h), or null. */
  readonly exhausted: string | null;
  /** Task types that may not start (`budget.per_type_daily_usd`), with the reason. */
  readonly exhaustedTypes: Readonly<Record<string, string>>;
  readonly spentUsd: number;
  readonly dailyUsd: number | null;
  /** When the oldest spend leaves the window, the earliest the block can lift by itself. */
  readonly freesAt: Date | null;
  readonly checkedAt: Date;
}

/** The control item as the cloud reads it: the port's ControlState plus the operator's concurrency cap, if set. */
export interface CloudControlState extends ControlState {
  readonly concurrencyCap: number | null;
  /** Null until a scheduler with budgets configured has run (and again after the budgets are removed). */
  readonly budget: BudgetBlock | null;
}

/** The run a step's event ended, as `applyStepEndingRun` found it. */
export interface EndedRun {
  readonly run: RunRecord;
  /** The runner stored it (its item and its cost on the task stand); otherwise it was rebuilt from iterations and written now. */
  readonly stored: boolean;
}

/**
 * Events the state machine records that take a task out of planning or executing, i.e. that end its run. (An
 * operator's cancel does too, but goes through the API while the container still runs.)
 */
const RUN_ENDING_EVENTS: ReadonlySet<TaskEventType> = new Set<TaskEventType>(['plan_ready', 'succeed', 'fail', 'dead_letter', 'interrupt']);

/** Queries in flight at once when a read fans out (over states, over days): enough for latency, not a burst. */
const MAX_PARALLEL_QUERIES = 8;
/**
 * A history range longer than this is read with one filtered Scan instead of a Query per day: an unbounded window
 * ("all history") would otherwise be millions of empty day partitions.
 */
const MAX_DAY_PARTITIONS = 100;
const QUARANTINE_EXCERPT_CHARS = 4_096;
/** Attributes of the task item naming the step (see `applyStep`) that wrote it last, and the version it wrote. */
const LAST_STEP_KEY = 'lastStepKey';
const LAST_STEP_VERSION = 'lastStepVersion';

type Item = Record<string, unknown>;
type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** Sends of one counted write cancelled only by conflicts with other transactions. */
const COUNTS_CONFLICT_ATTEMPTS = 5;

export class DynamoTaskStore implements TaskStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly historyRetentionDays: number | undefined;
  private closed = false;
  /** The counts backfill has run or was not needed: every index entry is keyed by stateSince. */
  private indexKeysCurrent = false;

  constructor(options: DynamoTaskStoreOptions) {
    this.doc =
      options.client instanceof DynamoDBDocumentClient
        ? options.client
        : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
    this.tableName = options.tableName;
    this.historyRetentionDays = options.historyRetentionDays;
  }

  async create(task: NewTask, now: Date): Promise<boolean> {
    return this.guard('create', async () => {
      try {
        await this.sendCounted([this.newTaskPut(task, now), countsUpdate(this.tableName, null, 'needs_action')]);
        return true;
      } catch (err) {
        if (cancelledByCondition(err, 0)) return false;
        throw err;
      }
    });
  }

  /**
   * Admit a task together with its note's markdown, atomically and idempotently on the id: false (writing neither)
   * when the task exists, so a redelivered document cannot replace the body of a task that is already running.
   */
  async createWithBody(task: NewTask, body: string, now: Date): Promise<boolean> {
    return this.guard('createWithBody', async () => {
      try {
        await this.sendCounted([
          this.newTaskPut(task, now),
          { Put: { TableName: this.tableName, Item: { ...bodyKey(task.id), entity: 'body', body } } },
          countsUpdate(this.tableName, null, 'needs_action'),
        ]);
        return true;
      } catch (err) {
        if (cancelledByCondition(err, 0)) return false;
        throw err;
      }
    });
  }

  /** Replace the markdown of an existing task. */
  async putTaskBody(id: string, body: string): Promise<void> {
    return this.guard('putTaskBody', async () => {
      try {
        await this.doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                ConditionCheck: {
                  TableName: this.tableName,
                  Key: taskKey(id),
                  ConditionExpression: 'attribute_exists(#pk)',
                  ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
                },
              },
              { Put: { TableName: this.tableName, Item: { ...bodyKey(id), entity: 'body', body } } },
            ],
          }),
        );
      } catch (err) {
        if (cancelledByCondition(err, 0)) throw new TaskNotFoundError(id);
        throw err;
      }
    });
  }

  /** The markdown of a task's note; null when the task has none stored (or does not exist). */
  async getTaskBody(id: string): Promise<string | null> {
    return this.guard('getTaskBody', async () => {
      const item = await this.getItem(bodyKey(id));
      return item === null ? null : readString(item, 'body');
    });
  }

  async get(id: string): Promise<TaskRecord | null> {
    return this.guard('get', async () => {
      const item = await this.getItem(taskKey(id));
      return item === null ? null : itemToTask(item);
    });
  }

  async list(query: TaskQuery = {}): Promise<TaskRecord[]> {
    return this.guard('list', async () => {
      let items: Item[];
      if (query.states === undefined) {
        items = await this.scanAll({
          FilterExpression: '#sk = :task AND begins_with(#pk, :prefix)',
          ExpressionAttributeNames: { '#sk': TABLE.sortKey, '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':task': SORT_KEYS.task, ':prefix': KEY_PREFIXES.task },
        });
      } else {
        const states = [...new Set(query.states)];
        const perState = await mapLimit(states, MAX_PARALLEL_QUERIES, (state) => this.queryState(state));
        items = perState.flat();
      }
      return items.map(itemToTask).sort(byCreatedThenId);
    });
  }

  /** How many tasks are in `states`: the sum of their `stateCounts`. */
  async countByState(states: readonly TaskState[]): Promise<number> {
    const counts = await this.stateCounts();
    return [...new Set(states)].reduce((n, state) => n + counts[state], 0);
  }

  /** One GetItem of the counters every state change moves (state-counts.ts). */
  async stateCounts(): Promise<Record<TaskState, number>> {
    return this.guard('stateCounts', async () => {
      const counts = await readStateCounts({
        doc: this.doc, tableName: this.tableName, getItem: (key) => this.getItem(key), queryAll: (input) => this.queryAll(input),
      });
      this.indexKeysCurrent = true;
      return counts;
    });
  }

  /**
   * The byState index is sorted by stateSince, so each state's newest entries are read newest first and the Query
   * stops once it holds `limit` of them and has passed their ties: what it reads grows with `limit`, not the state.
   * The entries are whole tasks (projection ALL), as eventually consistent as `list`.
   */
  async listLatest(query: LatestQuery): Promise<TaskRecord[]> {
    assertLimit(query.limit);
    return this.guard('listLatest', async () => {
      if (query.limit === 0) return [];
      // Index entries of tasks written before the sort key was stateSince are re-keyed by the counts backfill.
      if (!this.indexKeysCurrent) await this.stateCounts();
      const perState = await mapLimit([...new Set(query.states)], MAX_PARALLEL_QUERIES, (state) => this.latestOfState(state, query.limit));
      return latestWithTies(perState.flat(), query.limit);
    });
  }

  async apply(id: string, event: TaskEvent, now: Date, options: ApplyOptions = {}): Promise<TaskRecord> {
    return this.guard('apply', async () => (await this.applyWrite(id, event, now, options, null, false)).record);
  }

  /**
   * `apply` for a step that may be delivered twice — a Step Functions task retried after its Lambda call timed out or
   * lost its response. The task remembers the key of the step that wrote it last: the same key again, with no write in
   * between, returns the task as that step left it instead of failing as a stale or invalid duplicate. Any other write
   * (the port's `apply` included) clears the key, so a replay after someone else moved the task is refused as usual.
   */
  async applyStep(id: string, stepKey: string, event: TaskEvent, now: Date, options: ApplyOptions = {}): Promise<TaskRecord> {
    if (stepKey === '') throw new RangeError('a step key must not be empty');
    return this.guard('applyStep', async () => (await this.applyWrite(id, event, now, options, stepKey, false)).record);
  }

  /**
   * A transition of the state machine, which never has the run it ends in hand: the Fargate runner wrote that run
   * itself (its `RUN#` item, its cost already added to the task). When `event` takes the task out of planning or
   * executing, the run of the current attempt goes onto the history event — cost and duration, as a local transition
   * records them, so the rolling daily budget and the metrics see what the cloud spent — without rewriting the run item
   * (its result text stays) or counting its cost twice. A run nobody recorded because its container was killed is
   * rebuilt from the iterations it journaled and recorded like any run, so what it spent still counts. `stepKey` as in
   * `applyStep` (null: no replay protection). `run` is null when the event ends no run, or the run left no trace.
   */
  async applyStepEndingRun(
    id: string,
    stepKey: string | null,
    event: TaskEvent,
    now: Date,
  ): Promise<{ record: TaskRecord; run: EndedRun | null }> {
    if (stepKey === '') throw new RangeError('a step key must not be empty');
    return this.guard('applyStepEndingRun', () => this.applyWrite(id, event, now, {}, stepKey, true));
  }

  /**
   * Save a run while its task stays where it is — the Fargate runner's record of what it did, before the state machine
   * records the transition that ends the run. The run replaces any run of the same key and the task's cost moves by the
   * difference, as `apply` does; the task's version moves too (with no history event, since its state does not), so a
   * transition computed from an earlier read fails as stale instead of overwriting the cost. `extra` adds attributes of
   * the runner's own (its result text, say) to the run item; they cannot replace the run's fields or keys.
   */
  async recordRun(run: RunRecord, extra: Readonly<Record<string, string | number | boolean | null>> = {}): Promise<TaskRecord> {
    return this.guard('recordRun', async () => {
      const item = await this.getItem(taskKey(run.taskId));
      if (item === null) throw new TaskNotFoundError(run.taskId);
      const current = itemToTask(item);
      const replacedItem = await this.getItem(runKey(run.taskId, run.attempt, run.kind));
      const replacedCost = replacedItem === null ? 0 : itemToRun(replacedItem).costUsd;
      const next: TaskRecord = { ...current, costUsd: current.costUsd + run.costUsd - replacedCost, version: current.version + 1 };
      try {
        await this.doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: this.tableName,
                  Key: taskKey(run.taskId),
                  UpdateExpression: 'SET #cost = :cost, #version = :next REMOVE #step, #stepVersion',
                  ConditionExpression: 'attribute_exists(#pk) AND #state = :state AND #version = :current',
                  ExpressionAttributeNames: {
                    '#cost': 'costUsd', '#version': 'version', '#state': 'state', '#pk': TABLE.partitionKey,
                    '#step': LAST_STEP_KEY, '#stepVersion': LAST_STEP_VERSION,
                  },
                  ExpressionAttributeValues: {
                    ':cost': next.costUsd, ':next': next.version, ':state': current.state, ':current': current.version,
                  },
                },
              },
              { Put: { TableName: this.tableName, Item: { ...extra, ...runToItem(run) } } },
            ],
          }),
        );
      } catch (err) {
        if (cancelledByCondition(err, 0)) {
          const latest = await this.getItem(taskKey(run.taskId));
          if (latest === null) throw new TaskNotFoundError(run.taskId);
          throw new StaleWriteError(run.taskId, current.version, itemToTask(latest).version);
        }
        throw err;
      }
      return next;
    });
  }

  async runs(taskId: string): Promise<RunRecord[]> {
    return this.guard('runs', async () => {
      const { pk } = taskKey(taskId);
      const items = await this.queryAll({
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :run)',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey },
        ExpressionAttributeValues: { ':pk': pk, ':run': KEY_PREFIXES.run },
        ConsistentRead: true,
      });
      // The sort key orders runs by attempt, then kind, which is the order the port promises.
      return items.map(itemToRun);
    });
  }

  /** The persistence loop's iterations of a task, every attempt, in order (attempt, then iteration). */
  async iterations(taskId: string): Promise<IterationRecord[]> {
    return this.guard('iterations', () => this.iterationsOf(taskId));
  }

  /** Journal one iteration. A Put of its own key: writing the same iteration again replaces it. */
  async appendIteration(taskId: string, record: IterationRecord): Promise<void> {
    return this.guard('appendIteration', async () => {
      await this.doc.send(new PutCommand({ TableName: this.tableName, Item: iterationToItem(taskId, record) }));
    });
  }

  /** Where the task's unfinished loop stands, or null (none saved, or cleared since). */
  async checkpoint(taskId: string): Promise<Checkpoint | null> {
    return this.guard('checkpoint', async () => {
      const item = await this.getItem(checkpointKey(taskId));
      if (item === null) return null;
      const sessionId = readNullableString(item, 'sessionId');
      return sessionId === null ? null : { attempt: readNumber(item, 'attempt'), iteration: readNumber(item, 'iteration'), sessionId };
    });
  }

  async saveCheckpoint(taskId: string, checkpoint: Checkpoint): Promise<void> {
    return this.guard('saveCheckpoint', async () => {
      await this.doc.send(new PutCommand({ TableName: this.tableName, Item: checkpointToItem(taskId, checkpoint) }));
    });
  }

  /**
   * Forget the checkpoint: a loop that ended (done, failed) must not be resumed by a later attempt. Written as a Put
   * with no session rather than a Delete, because the runner's role may put items in task partitions but not delete
   * them (a Delete could take the task item with it).
   */
  async clearCheckpoint(taskId: string): Promise<void> {
    return this.guard('clearCheckpoint', async () => {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...checkpointKey(taskId), entity: 'checkpoint', taskId, attempt: 0, iteration: 0, sessionId: null },
        }),
      );
    });
  }

  async history(range: { since: Date; until: Date }): Promise<HistoryEvent[]> {
    return this.guard('history', async () => {
      const since = toMs(range.since);
      const until = toMs(range.until);
      if (since >= until) return [];
      const firstDay = Math.floor(Math.max(since, 0) / HISTORY_PARTITION_MS);
      const lastDay = Math.floor((until - 1) / HISTORY_PARTITION_MS);
      if (lastDay < firstDay) return [];

      let items: Item[];
      if (lastDay - firstDay + 1 > MAX_DAY_PARTITIONS) {
        items = await this.scanAll({
          FilterExpression: 'begins_with(#pk, :hist) AND #at >= :since AND #at < :until',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#at': 'at' },
          ExpressionAttributeValues: { ':hist': KEY_PREFIXES.history, ':since': since, ':until': until },
        });
      } else {
        const days = Array.from({ length: lastDay - firstDay + 1 }, (_, i) => (firstDay + i) * HISTORY_PARTITION_MS);
        // Every sort key is `<at:15>#…`, so [pad(since), pad(until)] holds exactly the events with since ≤ at < until.
        const perDay = await mapLimit(days, MAX_PARALLEL_QUERIES, (dayStart) =>
          this.queryAll({
            KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :lo AND :hi',
            ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey },
            ExpressionAttributeValues: {
              ':pk': `${KEY_PREFIXES.history}${historyDay(dayStart)}`,
              ':lo': padMs(since),
              ':hi': padMs(until),
            },
            ConsistentRead: true,
          }),
        );
        items = perDay.flat();
      }
      // One order for both paths: the sort key (time, then task, then the task's version).
      return items
        .map((item) => ({ sk: readString(item, TABLE.sortKey), event: itemToHistory(item) }))
        .sort((a, b) => compareBinary(a.sk, b.sk))
        .map((e) => e.event);
    });
  }

  /** Derived from `history`: the table has no columnar form, and a window's items must be read either way. */
  async historyColumns(range: { since: Date; until: Date }): Promise<HistoryColumns> {
    return columnsFromEvents(await this.history(range));
  }

  async control(): Promise<ControlState> {
    return this.guard('control', async () => toControlState(await this.cloudControlItem()));
  }

  /** The control item including the concurrency cap an operator may have set over the configured one. */
  async cloudControl(): Promise<CloudControlState> {
    return this.guard('cloudControl', async () => {
      const item = await this.cloudControlItem();
      return {
        ...toControlState(item),
        concurrencyCap: item === null ? null : readNullableNumber(item, 'concurrencyCap'),
        budget: item === null ? null : readBudgetBlock(item),
      };
    });
  }

  async setStop(requested: boolean, reason: string | null, now: Date): Promise<ControlState> {
    return this.guard('setStop', async () => {
      const result = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: CONTROL_KEY,
          UpdateExpression: 'SET #stop = :stop, #reason = :reason, #changed = :changed, #entity = :entity',
          ExpressionAttributeNames: {
            '#stop': 'stopRequested',
            '#reason': 'stopReason',
            '#changed': 'stopChangedAt',
            '#entity': 'entity',
          },
          ExpressionAttributeValues: {
            ':stop': requested,
            // A resumed queue has no reason to be stopped; keeping the old one would read as if it still applied.
            ':reason': requested ? reason : null,
            ':changed': toMs(now),
            ':entity': 'control',
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toControlState(result.Attributes ?? null);
    });
  }

  async heartbeat(owner: string, now: Date): Promise<void> {
    return this.guard('heartbeat', async () => {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: CONTROL_KEY,
          UpdateExpression: 'SET #at = :at, #owner = :owner, #entity = :entity',
          ExpressionAttributeNames: { '#at': 'heartbeatAt', '#owner': 'heartbeatOwner', '#entity': 'entity' },
          ExpressionAttributeValues: { ':at': toMs(now), ':owner': owner, ':entity': 'control' },
        }),
      );
    });
  }

  /** Override the configured concurrency cap (null: back to the configured one) without a redeploy. */
  async setConcurrencyCap(cap: number | null): Promise<void> {
    if (cap !== null && (!Number.isInteger(cap) || cap < 0)) {
      throw new RangeError(`concurrency cap must be a non-negative integer or null, got ${cap}`);
    }
    return this.guard('setConcurrencyCap', async () => {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: CONTROL_KEY,
          UpdateExpression: 'SET #cap = :cap, #entity = :entity',
          ExpressionAttributeNames: { '#cap': 'concurrencyCap', '#entity': 'entity' },
          ExpressionAttributeValues: { ':cap': cap, ':entity': 'control' },
        }),
      );
    });
  }

  /** Keep the scheduler's budget verdict on the control item (null removes it: no budgets configured). */
  async recordBudget(block: BudgetBlock | null): Promise<void> {
    return this.guard('recordBudget', async () => {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: CONTROL_KEY,
          ...(block === null
            ? { UpdateExpression: 'REMOVE #budget', ExpressionAttributeNames: { '#budget': 'budget' } }
            : {
                UpdateExpression: 'SET #budget = :budget, #entity = :entity',
                ExpressionAttributeNames: { '#budget': 'budget', '#entity': 'entity' },
                ExpressionAttributeValues: {
                  ':budget': {
                    exhausted: block.exhausted,
                    exhaustedTypes: { ...block.exhaustedTypes },
                    spentUsd: block.spentUsd,
                    dailyUsd: block.dailyUsd,
                    freesAt: toMsOrNull(block.freesAt),
                    checkedAt: toMs(block.checkedAt),
                  },
                  ':entity': 'control',
                },
              }),
        }),
      );
    });
  }

  /**
   * Keep the Step Functions task token of a pending approval on the task, so approve/reject can complete it. Refused
   * (NotAwaitingApprovalError) unless the task is pending_approval: a token stored on a task that moved on could only
   * ever complete a wait that no longer exists. `null` removes the token.
   */
  async setApprovalToken(id: string, token: string | null): Promise<void> {
    return this.guard('setApprovalToken', async () => {
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: taskKey(id),
            ...(token === null
              ? {
                  UpdateExpression: 'REMOVE #token',
                  ConditionExpression: 'attribute_exists(#pk)',
                  ExpressionAttributeNames: { '#token': 'taskToken', '#pk': TABLE.partitionKey },
                }
              : {
                  UpdateExpression: 'SET #token = :token',
                  ConditionExpression: 'attribute_exists(#pk) AND #state = :pending',
                  ExpressionAttributeNames: { '#token': 'taskToken', '#pk': TABLE.partitionKey, '#state': 'state' },
                  ExpressionAttributeValues: { ':token': token, ':pending': 'pending_approval' },
                }),
          }),
        );
      } catch (err) {
        if (!isConditionalCheckFailed(err)) throw err;
        const item = await this.getItem(taskKey(id));
        if (item === null) throw new TaskNotFoundError(id);
        throw new NotAwaitingApprovalError(id, itemToTask(item).state);
      }
    });
  }

  /** The token of the task's pending approval wait, or null. Throws TaskNotFoundError for an unknown task. */
  async getApprovalToken(id: string): Promise<string | null> {
    return this.guard('getApprovalToken', async () => {
      const item = await this.getItem(taskKey(id));
      if (item === null) throw new TaskNotFoundError(id);
      return readNullableString(item, 'taskToken');
    });
  }

  /** Record a task document that failed validation. Replaces an earlier record of the same id: the latest reason wins. */
  async quarantine(record: QuarantineRecord): Promise<void> {
    return this.guard('quarantine', async () => {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...quarantineKey(record.id),
            entity: 'quarantine',
            id: record.id,
            reason: record.reason,
            field: record.field,
            message: record.message,
            receivedAt: toMs(record.receivedAt),
            excerpt: record.excerpt.slice(0, QUARANTINE_EXCERPT_CHARS),
          },
        }),
      );
    });
  }

  async getQuarantined(id: string): Promise<QuarantineRecord | null> {
    return this.guard('getQuarantined', async () => {
      const item = await this.getItem(quarantineKey(id));
      if (item === null) return null;
      return {
        id: readString(item, 'id'),
        reason: readString(item, 'reason'),
        field: readNullableString(item, 'field'),
        message: readString(item, 'message'),
        receivedAt: new Date(readNumber(item, 'receivedAt')),
        excerpt: readString(item, 'excerpt'),
      };
    });
  }

  async close(): Promise<void> {
    // The client belongs to the caller (a Lambda reuses one across invocations), so it is left open.
    this.closed = true;
  }

  // ---- Internals

  private async applyWrite(
    id: string,
    event: TaskEvent,
    now: Date,
    options: ApplyOptions,
    stepKey: string | null,
    findEndedRun: boolean,
  ): Promise<{ record: TaskRecord; run: EndedRun | null }> {
    const item = await this.getItem(taskKey(id));
    if (item === null) throw new TaskNotFoundError(id);
    const current = itemToTask(item);
    // The version too: a writer that bypasses this store (a raw update) may leave the key behind but not the version.
    if (stepKey !== null && item[LAST_STEP_KEY] === stepKey && item[LAST_STEP_VERSION] === current.version) {
      return { record: current, run: null };
    }
    const ended = options.run === undefined && findEndedRun ? await this.runEndedBy(current, event) : null;
    const run = options.run ?? ended?.run;
    let replaced: RunRecord | null;
    if (ended?.stored === true) {
      // The stored run replaces itself: the cost moves by nothing, and the item is not written again.
      replaced = ended.run;
    } else {
      const replacedItem = run === undefined ? null : await this.getItem(runKey(run.taskId, run.attempt, run.kind));
      replaced = replacedItem === null ? null : itemToRun(replacedItem);
    }
    const { record, history } = applyToRecord(current, event, now, run === undefined ? options : { ...options, run }, replaced);

    // The replaced run needs no condition of its own: every write of a run bumps the task's version in the same
    // transaction, so a run that changed since it was read makes the task condition below fail.
    const transactItems: NonNullable<TransactWriteCommandInput['TransactItems']> = [
      { Update: transitionUpdate(this.tableName, current, record, event.type, stepKey) },
      {
        Put: {
          TableName: this.tableName,
          Item: historyToItem(history, record.version, this.historyTtl(history.at)),
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
        },
      },
    ];
    if (run !== undefined && ended?.stored !== true) transactItems.push({ Put: { TableName: this.tableName, Item: runToItem(run) } });
    const counts = countsUpdate(this.tableName, current.state, record.state);
    if (counts !== null) transactItems.push(counts);

    try {
      await this.sendCounted(transactItems);
    } catch (err) {
      if (err instanceof TransactionCanceledException) {
        const reasons = err.CancellationReasons ?? [];
        // A conflict is another transaction on this task in flight: as stale as a failed condition.
        if (reasons[0]?.Code === 'ConditionalCheckFailed' || reasons.some(isConflict)) {
          const latest = await this.getItem(taskKey(id));
          if (latest === null) throw new TaskNotFoundError(id);
          throw new StaleWriteError(id, current.version, itemToTask(latest).version);
        }
      }
      throw err;
    }
    return { record, run: ended ?? null };
  }

  /** The run `event` ends (see `applyStepEndingRun`): the stored one, else one rebuilt from the attempt's iterations. */
  private async runEndedBy(current: TaskRecord, event: TaskEvent): Promise<EndedRun | null> {
    if (!RUNNING_STATES.has(current.state) || !RUN_ENDING_EVENTS.has(event.type)) return null;
    const kind = current.state === 'planning' ? 'plan' : 'execute';
    const stored = await this.getItem(runKey(current.id, current.attempts, kind));
    if (stored !== null) return { run: itemToRun(stored), stored: true };
    // Only an execution loops and journals iterations; a planning run that left no run item left nothing.
    if (kind !== 'execute') return null;
    const ok = event.type === 'succeed';
    const errorClass: ErrorClass | null =
      event.type === 'fail' || event.type === 'dead_letter' ? event.error.class : event.type === 'interrupt' ? 'interrupted' : null;
    const rebuilt = runFromIterations({
      taskId: current.id,
      attempt: current.attempts,
      kind,
      iterations: await this.iterationsOf(current.id),
      ok,
      errorClass,
    });
    return rebuilt === null ? null : { run: rebuilt, stored: false };
  }

  private newTaskPut(task: NewTask, now: Date): TransactItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: taskToItem(newTaskRecord(task, now)),
        ConditionExpression: 'attribute_not_exists(#pk)',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
      },
    };
  }

  /**
   * Every counted write updates the COUNTS item, so two in flight at once can cancel one with TransactionConflict.
   * Nothing was written then, and the task's own condition judges the resend: a write that lost to another write of
   * the same task fails its condition then (stale, or an existing id), and one that lost only the counts item commits.
   */
  private async sendCounted(items: readonly (TransactItem | null)[]): Promise<void> {
    const transactItems = items.filter((i): i is TransactItem => i !== null);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: transactItems }));
        return;
      } catch (err) {
        if (attempt >= COUNTS_CONFLICT_ATTEMPTS || !onlyConflicts(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
      }
    }
  }

  /** The state's `limit` newest entries and their ties, newest first, in pages of `limit + 1`. */
  private async latestOfState(state: TaskState, limit: number): Promise<TaskRecord[]> {
    const tasks: TaskRecord[] = [];
    let startKey: Item | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          ...this.stateQuery(state),
          ScanIndexForward: false,
          Limit: limit + 1,
          ...(startKey !== undefined ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      tasks.push(...(page.Items ?? []).map(itemToTask));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined && !pastTies(tasks, limit));
    return tasks;
  }

  private async iterationsOf(taskId: string): Promise<IterationRecord[]> {
    const items = await this.queryAll({
      KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :iter)',
      ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey },
      ExpressionAttributeValues: { ':pk': taskKey(taskId).pk, ':iter': KEY_PREFIXES.iteration },
      ConsistentRead: true,
    });
    return items.map(itemToIteration);
  }

  private historyTtl(at: number): number | null {
    if (this.historyRetentionDays === undefined) return null;
    return Math.ceil(at / 1000) + this.historyRetentionDays * 86_400;
  }

  private async cloudControlItem(): Promise<Item | null> {
    return this.getItem(CONTROL_KEY);
  }

  private async getItem(key: { pk: string; sk: string }): Promise<Item | null> {
    const result = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
    return result.Item ?? null;
  }

  private stateQuery(state: TaskState): QueryCommandInput {
    return {
      TableName: this.tableName,
      IndexName: TABLE.byState.indexName,
      KeyConditionExpression: '#gpk = :gpk',
      ExpressionAttributeNames: { '#gpk': TABLE.byState.partitionKey },
      ExpressionAttributeValues: { ':gpk': statePartition(state) },
    };
  }

  private async queryState(state: TaskState): Promise<Item[]> {
    return this.queryAll(this.stateQuery(state));
  }

  private async queryAll(input: Omit<QueryCommandInput, 'TableName'>): Promise<Item[]> {
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          ...input,
          TableName: this.tableName,
          ...(startKey !== undefined ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return items;
  }

  private async scanAll(input: Omit<ScanCommandInput, 'TableName'>): Promise<Item[]> {
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      const page = await this.doc.send(
        new ScanCommand({
          ...input,
          TableName: this.tableName,
          ConsistentRead: true,
          ...(startKey !== undefined ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return items;
  }

  /** Domain errors pass through; failures to reach or use the table become DynamoStoreError naming table and call. */
  private async guard<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError(`task store (table ${this.tableName}) is closed (during ${operation})`);
    try {
      return await fn();
    } catch (err) {
      const mapped = toStoreError(err, this.tableName, operation);
      throw mapped ?? err;
    }
  }
}

// ---- The conditional task write

/**
 * The Update that moves a task from `current` to `next` on `event`. It refuses, before anything is sent, a step the
 * transition table has no edge for — a caller that bypassed `applyToRecord` cannot write an arbitrary state through
 * it — and its condition holds only while the task is still exactly at `current`'s state and version, so a step
 * computed from an outdated read is refused by DynamoDB itself.
 */
export function transitionUpdate(
  tableName: string,
  current: TaskRecord,
  next: TaskRecord,
  event: TaskEventType,
  stepKey: string | null = null,
): NonNullable<NonNullable<TransactWriteCommandInput['TransactItems']>[number]['Update']> {
  if (next.id !== current.id) throw new RangeError(`cannot write task ${next.id} over task ${current.id}`);
  if (next.version !== current.version + 1) {
    throw new RangeError(`task ${current.id}: a write moves version ${current.version} to ${current.version + 1}, not ${next.version}`);
  }
  if (!TRANSITIONS.some((t) => t.from === current.state && t.event === event && t.to === next.state)) {
    throw new InvalidTransitionError(current.id, current.state, event, 'no_such_transition',
      `the transition table has no edge ${current.state} → ${next.state} on ${event}`);
  }
  const { pk: _pk, sk: _sk, ...attributes } = taskToItem(next);
  const names: Record<string, string> = { '#pk': TABLE.partitionKey, '#state': 'state', '#version': 'version' };
  const values: Record<string, unknown> = { ':fromState': current.state, ':fromVersion': current.version };
  const step = stepKey !== null ? { [LAST_STEP_KEY]: stepKey, [LAST_STEP_VERSION]: next.version } : {};
  const sets = Object.entries({ ...attributes, ...step }).map(
    ([name, value], i) => {
      names[`#a${i}`] = name;
      values[`:a${i}`] = value;
      return `#a${i} = :a${i}`;
    },
  );
  const removes: string[] = [];
  if (stepKey === null) {
    names['#step'] = LAST_STEP_KEY;
    names['#stepVersion'] = LAST_STEP_VERSION;
    removes.push('#step', '#stepVersion');
  }
  // A token belongs to one approval wait; once the task leaves pending_approval nobody may complete it again.
  if (next.state !== 'pending_approval') {
    names['#token'] = 'taskToken';
    removes.push('#token');
  }
  return {
    TableName: tableName,
    Key: taskKey(current.id),
    UpdateExpression: `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}`,
    ConditionExpression: 'attribute_exists(#pk) AND #state = :fromState AND #version = :fromVersion',
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

// ---- Items: what the table holds, attribute for attribute

function taskToItem(r: TaskRecord): Item {
  const flat = flattenTask(r);
  return { ...taskKey(r.id), ...stateIndexKey(r.state, flat.stateSince, r.id), entity: 'task', ...flat };
}

function itemToTask(item: Item): TaskRecord {
  // Every attribute is read and type-checked: an item is whatever the table holds, not what this code wrote.
  const errorClass = readNullableString(item, 'lastErrorClass');
  return unflattenTask({
    id: readString(item, 'id'),
    title: readString(item, 'title'),
    type: readString(item, 'type'),
    sender: readNullableString(item, 'sender'),
    urgency: readLevel(item, 'urgency'),
    deadline: readNullableNumber(item, 'deadline'),
    created: readNumber(item, 'created'),
    approvalRequired: readBoolean(item, 'approvalRequired'),
    approvalReasons: readStringList(item, 'approvalReasons'),
    state: readEnum(item, 'state', TASK_STATES),
    approvalBy: readNullableString(item, 'approvalBy'),
    approvalAt: readNullableNumber(item, 'approvalAt'),
    attempts: readNumber(item, 'attempts'),
    retryAt: readNullableNumber(item, 'retryAt'),
    lastErrorClass: errorClass === null ? null : asEnum(errorClass, ERROR_CLASSES, 'lastErrorClass'),
    lastErrorMessage: readNullableString(item, 'lastErrorMessage'),
    reason: readNullableString(item, 'reason'),
    stateSince: readNumber(item, 'stateSince'),
    costUsd: readNumber(item, 'costUsd'),
    leaseOwner: readNullableString(item, 'leaseOwner'),
    leasePid: readNullableNumber(item, 'leasePid'),
    leaseExpiresAt: readNullableNumber(item, 'leaseExpiresAt'),
    version: readNumber(item, 'version'),
  });
}

function runToItem(r: RunRecord): Item {
  return {
    ...runKey(r.taskId, r.attempt, r.kind),
    entity: 'run',
    taskId: r.taskId,
    attempt: r.attempt,
    kind: r.kind,
    startedAt: toMs(r.startedAt),
    endedAt: toMs(r.endedAt),
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

function itemToRun(item: Item): RunRecord {
  const errorClass = readNullableString(item, 'errorClass');
  return {
    taskId: readString(item, 'taskId'),
    attempt: readNumber(item, 'attempt'),
    kind: readEnum(item, 'kind', ['plan', 'execute'] as const),
    startedAt: new Date(readNumber(item, 'startedAt')),
    endedAt: new Date(readNumber(item, 'endedAt')),
    ok: readBoolean(item, 'ok'),
    errorClass: errorClass === null ? null : asEnum(errorClass, ERROR_CLASSES, 'errorClass'),
    exitCode: readNullableNumber(item, 'exitCode'),
    durationMs: readNumber(item, 'durationMs'),
    costUsd: readNumber(item, 'costUsd'),
    numTurns: readNullableNumber(item, 'numTurns'),
    sessionId: readNullableString(item, 'sessionId'),
    logPath: readNullableString(item, 'logPath'),
  };
}

function iterationToItem(taskId: string, r: IterationRecord): Item {
  return {
    ...iterationKey(taskId, r.attempt, r.iteration),
    entity: 'iteration',
    taskId,
    attempt: r.attempt,
    iteration: r.iteration,
    // As the local journal has them: ISO strings, so the record reads back exactly as it was written.
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    durationMs: r.durationMs,
    costUsd: r.costUsd,
    numTurns: r.numTurns,
    sessionId: r.sessionId,
    ok: r.ok,
    errorClass: r.errorClass,
    promiseSeen: r.promiseSeen,
  };
}

function itemToIteration(item: Item): IterationRecord {
  const errorClass = readNullableString(item, 'errorClass');
  return {
    attempt: readNumber(item, 'attempt'),
    iteration: readNumber(item, 'iteration'),
    startedAt: readString(item, 'startedAt'),
    endedAt: readString(item, 'endedAt'),
    durationMs: readNumber(item, 'durationMs'),
    costUsd: readNumber(item, 'costUsd'),
    numTurns: readNullableNumber(item, 'numTurns'),
    sessionId: readNullableString(item, 'sessionId'),
    ok: readBoolean(item, 'ok'),
    errorClass: errorClass === null ? null : asEnum(errorClass, ERROR_CLASSES, 'errorClass'),
    promiseSeen: readBoolean(item, 'promiseSeen'),
  };
}

function checkpointToItem(taskId: string, c: Checkpoint): Item {
  return { ...checkpointKey(taskId), entity: 'checkpoint', taskId, attempt: c.attempt, iteration: c.iteration, sessionId: c.sessionId };
}

function readBudgetBlock(control: Item): BudgetBlock | null {
  const raw = control['budget'];
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw malformed(control, 'budget', 'a map');
  const item = raw as Item;
  const types = item['exhaustedTypes'] ?? {};
  if (typeof types !== 'object' || types === null || Array.isArray(types)) throw malformed(item, 'exhaustedTypes', 'a map');
  const exhaustedTypes: Record<string, string> = {};
  for (const [type, reason] of Object.entries(types)) {
    if (typeof reason !== 'string') throw malformed(item, `exhaustedTypes.${type}`, 'a string');
    exhaustedTypes[type] = reason;
  }
  return {
    exhausted: readNullableString(item, 'exhausted'),
    exhaustedTypes,
    spentUsd: readNumber(item, 'spentUsd'),
    dailyUsd: readNullableNumber(item, 'dailyUsd'),
    freesAt: readNullableDate(item, 'freesAt'),
    checkedAt: new Date(readNumber(item, 'checkedAt')),
  };
}

function historyToItem(h: HistoryEvent, version: number, ttl: number | null): Item {
  if (h.at < 0) throw new RangeError('cannot record a history event before 1970');
  return {
    ...historyKey(h.at, h.taskId, version),
    entity: 'history',
    taskId: h.taskId,
    taskType: h.taskType,
    from: h.from,
    to: h.to,
    event: h.event,
    at: h.at,
    attempt: h.attempt,
    // Absent rather than null: the port's optional fields are left out when the event has none.
    ...(h.durationMs !== undefined ? { durationMs: h.durationMs } : {}),
    ...(h.costUsd !== undefined ? { costUsd: h.costUsd } : {}),
    ...(h.errorClass !== undefined ? { errorClass: h.errorClass } : {}),
    ...(ttl !== null ? { [TABLE.ttlAttribute]: ttl } : {}),
  };
}

function itemToHistory(item: Item): HistoryEvent {
  const event: { -readonly [K in keyof HistoryEvent]: HistoryEvent[K] } = {
    taskId: readString(item, 'taskId'),
    taskType: readString(item, 'taskType'),
    from: readEnum(item, 'from', TASK_STATES),
    to: readEnum(item, 'to', TASK_STATES),
    event: readEnum(item, 'event', TASK_EVENT_TYPES) satisfies TaskEventType,
    at: readNumber(item, 'at'),
    attempt: readNumber(item, 'attempt'),
  };
  if (item['durationMs'] !== undefined) event.durationMs = readNumber(item, 'durationMs');
  if (item['costUsd'] !== undefined) event.costUsd = readNumber(item, 'costUsd');
  if (item['errorClass'] !== undefined) event.errorClass = readEnum(item, 'errorClass', ERROR_CLASSES) satisfies ErrorClass;
  return event;
}

function toControlState(item: Item | null): ControlState {
  if (item === null) {
    return { stopRequested: false, stopReason: null, stopChangedAt: null, heartbeatAt: null, heartbeatOwner: null };
  }
  return {
    stopRequested: item['stopRequested'] === undefined ? false : readBoolean(item, 'stopRequested'),
    stopReason: readNullableString(item, 'stopReason'),
    stopChangedAt: readNullableDate(item, 'stopChangedAt'),
    heartbeatAt: readNullableDate(item, 'heartbeatAt'),
    heartbeatOwner: readNullableString(item, 'heartbeatOwner'),
  };
}

// ---- Typed reads of attributes: an item altered by hand fails loudly instead of flowing on as a wrong type.

function malformed(item: Item, name: string, expected: string): StoreError {
  const key = `${String(item[TABLE.partitionKey])}/${String(item[TABLE.sortKey])}`;
  return new StoreError(`item ${key}: attribute ${name} is not ${expected}; was the table altered by hand?`);
}

function readString(item: Item, name: string): string {
  const v = item[name];
  if (typeof v !== 'string') throw malformed(item, name, 'a string');
  return v;
}

// A missing attribute reads as null: items written before an attribute existed stay readable.
function readNullableString(item: Item, name: string): string | null {
  const v = item[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw malformed(item, name, 'a string or null');
  return v;
}

function readNumber(item: Item, name: string): number {
  const v = item[name];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw malformed(item, name, 'a number');
  return v;
}

function readNullableNumber(item: Item, name: string): number | null {
  const v = item[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw malformed(item, name, 'a number or null');
  return v;
}

function readNullableDate(item: Item, name: string): Date | null {
  const ms = readNullableNumber(item, name);
  return ms === null ? null : new Date(ms);
}

function readBoolean(item: Item, name: string): boolean {
  const v = item[name];
  if (typeof v !== 'boolean') throw malformed(item, name, 'a boolean');
  return v;
}

function readStringList(item: Item, name: string): string[] {
  const v = item[name];
  if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string')) {
    throw malformed(item, name, 'a list of strings');
  }
  return [...v];
}

function readLevel(item: Item, name: string): Level {
  const v = readNumber(item, name);
  if (v !== 1 && v !== 2 && v !== 3 && v !== 4 && v !== 5) throw malformed(item, name, 'a level 1–5');
  return v;
}

function readEnum<const T extends readonly string[]>(item: Item, name: string, allowed: T): T[number] {
  const v = readString(item, name);
  return asEnum(v, allowed, name);
}

function asEnum<const T extends readonly string[]>(value: string, allowed: T, name: string): T[number] {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new StoreError(`attribute ${name} has unknown value ${JSON.stringify(value)}`);
  return found;
}

// ---- Dates: the only place a Date becomes epoch milliseconds.

const toMs = toEpochMs;

function toMsOrNull(date: Date | null): number | null {
  return date === null ? null : toMs(date);
}

// ---- Ordering: the order the other adapters return (`ORDER BY created, id`, ids as UTF-8 bytes).

function byCreatedThenId(a: TaskRecord, b: TaskRecord): number {
  return a.created.getTime() - b.created.getTime() || compareBinary(a.id, b.id);
}

function compareBinary(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// ---- SDK errors

function isConflict(reason: CancellationReason): boolean {
  return reason.Code === 'TransactionConflict';
}

/** Cancelled by conflicts with other transactions and for no other reason. */
function onlyConflicts(err: unknown): boolean {
  const codes = err instanceof TransactionCanceledException ? (err.CancellationReasons ?? []).map((r) => r.Code) : [];
  return codes.includes('TransactionConflict') && codes.every((c) => c === 'None' || c === 'TransactionConflict');
}

/** Newest first, `tasks` holds `limit` and one older than the `limit`-th: every tie of the last kept one is in. */
function pastTies(tasks: readonly TaskRecord[], limit: number): boolean {
  const kept = tasks[limit - 1];
  return kept !== undefined && (tasks[tasks.length - 1] as TaskRecord).stateSince < kept.stateSince;
}

/** The transaction was cancelled because the condition of its item `index` failed. */
function cancelledByCondition(err: unknown, index: number): boolean {
  return err instanceof TransactionCanceledException && err.CancellationReasons?.[index]?.Code === 'ConditionalCheckFailed';
}

const THROTTLING = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'LimitExceededException',
  'TooManyRequestsException',
]);
const ACCESS = new Set([
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'MissingAuthenticationTokenException',
  'CredentialsProviderError',
]);
const SERVICE = new Set(['InternalServerError', 'ServiceUnavailable', 'ServiceUnavailableException']);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
const NETWORK_NAMES = new Set(['TimeoutError', 'NetworkingError', 'RequestTimeout', 'RequestTimeoutException']);

/** The unavailability `err` stands for, or null when it is not one (a domain error, a bug, a validation error). */
export function unavailableReason(err: unknown): DynamoUnavailableReason | null {
  if (!(err instanceof Error)) return null;
  if (err.name === 'ResourceNotFoundException') return 'table_missing';
  if (THROTTLING.has(err.name)) return 'throttled';
  if (ACCESS.has(err.name)) return 'access_denied';
  if (SERVICE.has(err.name)) return 'service_error';
  if (NETWORK_NAMES.has(err.name)) return 'network';
  const code = 'code' in err ? err.code : undefined;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'network';
  // A 5xx the SDK has no modelled error for (e.g. a proxy's 503).
  const status = '$metadata' in err ? statusOf(err.$metadata) : undefined;
  if (status !== undefined && status >= 500) return 'service_error';
  return null;
}

function statusOf(metadata: unknown): number | undefined {
  if (metadata === null || typeof metadata !== 'object' || !('httpStatusCode' in metadata)) return undefined;
  return typeof metadata.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

function toStoreError(err: unknown, tableName: string, operation: string): DynamoStoreError | null {
  const reason = unavailableReason(err);
  if (reason === null) return null;
  const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const what: Record<DynamoUnavailableReason, string> = {
    table_missing: `table ${tableName} does not exist (not deployed, or another region or account)`,
    throttled: `DynamoDB throttled requests to table ${tableName} beyond the SDK's retries`,
    network: `DynamoDB could not be reached for table ${tableName}`,
    access_denied: `access to table ${tableName} was denied (credentials or IAM policy)`,
    service_error: `DynamoDB failed serving table ${tableName}`,
  };
  return new DynamoStoreError(reason, `${what[reason]} during ${operation}: ${detail}`, { cause: err });
}
