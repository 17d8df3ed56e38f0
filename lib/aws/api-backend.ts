import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { SendTaskSuccessCommand } from '@aws-sdk/client-sfn';
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { AddTaskRequest, AddTaskResponse, ResumeResponse, StopResponse, TaskActionResponse } from '../app/contracts.ts';
// What a new task's note says, as the local `POST /tasks` and `fte task add` write it: a task added through either API
// is the same task.
import { newTaskNote, slugFromTitle } from '../app/new-task.ts';
import type { ReadSources } from '../app/reads.ts';
import { taskToWire } from '../app/wire.ts';
import { combineBackend, storeReads, type ApiActions, type ApiBackend, type Caller } from '../api/backend.ts';
import type { ApprovalAnswer } from '../cloud/task-state-machine.ts';
import type { Config } from '../core/config.ts';
import type { TaskEvent } from '../core/state-machine.ts';
import { TaskNotFoundError } from '../core/store.ts';
import type { TaskRecord } from '../core/store.ts';
import { admitTask, CLOUD_PARSE_LIMITS } from '../../lambda/admit-task.ts';
import type { DynamoTaskStore } from './dynamodb-store.ts';
import { taskFromNote, writeTaskNote } from './new-task.ts';

/**
 * The cloud runtime's ApiBackend, served by lambda/api.ts behind API Gateway. The read side is the one every runtime
 * shares (lib/app/reads.ts over the store port), here over the DynamoDB table; the write side is the cloud's own:
 *
 * - `POST /tasks` builds the task from the request's fields by the note rules the core parser applies
 *   (lib/aws/new-task.ts) and admits it as the intake queue does (lambda/admit-task.ts: approval policy,
 *   `createWithBody` with the note for the runner, idempotent on the id);
 * - approve / reject record the human's decision in the table FIRST, then complete the approval wait of the state
 *   machine with `SendTaskSuccess` and an ApprovalAnswer, using the task token the wait stored on the task
 *   (docs/CLOUD.md §7.3). The record is the truth; the answer only ends the wait early;
 * - stop / resume set the stop flag on the control item, which the scheduler and CheckStop read.
 */

export interface CloudBackendDeps {
  readonly store: DynamoTaskStore;
  readonly config: Config;
  readonly sfn: SFNClient;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Where the tasks live, for the status report (`dynamodb:<table>`). */
  readonly location: string;
  readonly clock?: () => Date;
}

/**
 * How long after a task entered pending_approval its approval wait may still be storing its token. The state machine
 * records `plan_ready` and then, as its very next step, stores the token; an approval that arrives in between has no
 * token to complete, and recording it would leave that wait blocked on a token nobody can use until approval.timeout.
 * Past this grace the wait is evidently gone (its execution failed or was stopped), and the decision is recorded
 * without an answer: the scheduler then dispatches the approved task like any other.
 */
export const APPROVAL_TOKEN_GRACE_MS = 5 * 60_000;

/** How many `<slug>-<n>` names POST /tasks tries before giving up; a title would need that many twins to hit it. */
export const MAX_NAME_ATTEMPTS = 1_000;

/** Approving a task whose approval wait has not stored its token yet: ask again in a moment (409). */
export class ApprovalNotReadyError extends Error {
  readonly code = 'APPROVAL_NOT_READY' as const;

  constructor(readonly taskId: string) {
    super(`task ${taskId} is pending approval but its approval wait has not started yet; try again in a few seconds`);
    this.name = new.target.name;
  }
}

/** No free id was found for a new task's title (MAX_NAME_ATTEMPTS taken). */
export class NoFreeTaskIdError extends Error {
  readonly code = 'VAULT_CONFLICT' as const;

  constructor(readonly slug: string) {
    super(`no free task id for ${JSON.stringify(slug)} after ${MAX_NAME_ATTEMPTS} attempts; choose another title`);
    this.name = new.target.name;
  }
}

/**
 * What SendTaskSuccess answers when the wait it names is over: its timeout passed, its execution ended or the token
 * is not one. The decision is recorded by then, so these are expected, not failures.
 */
const WAIT_GONE_ERRORS: ReadonlySet<string> = new Set(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']);

export function cloudReadSources(deps: Pick<CloudBackendDeps, 'store' | 'config' | 'location' | 'clock'>): ReadSources {
  // No stop file, no unadmitted notes, no local processes: what the cloud knows is all in the table. Without the
  // `orchestratorProcess` hook the orchestrator counts as running while the scheduler's heartbeat is fresh.
  return { store: deps.store, config: deps.config, clock: deps.clock ?? (() => new Date()), location: deps.location };
}

export class CloudActions implements ApiActions {
  private readonly clock: () => Date;

  constructor(private readonly deps: CloudBackendDeps) {
    this.clock = deps.clock ?? (() => new Date());
  }

  /**
   * Admit the task the note `fte task add` would write describes, with that note for the runner. The fields are checked
   * by the note rules with the cloud's limits first, so a bad field is refused (TaskParseError, 400) and nothing — not
   * even a quarantine record, which is for documents nobody is there to tell — is written. The id is the title's slug,
   * or `<slug>-2`, `-3`, … when taken, as locally; admission is a conditional write, so two requests racing for one name
   * get different ones.
   */
  async addTask(input: AddTaskRequest, caller: Caller): Promise<AddTaskResponse> {
    const now = this.clock();
    const note = newTaskNote(input, now);
    const markdown = writeTaskNote(note);
    const slug = slugFromTitle(input.title);
    taskFromNote(note, markdown, slug, now, CLOUD_PARSE_LIMITS);

    const { store, config, logger, metrics } = this.deps;
    for (let n = 1; n <= MAX_NAME_ATTEMPTS; n++) {
      const id = n === 1 ? slug : `${slug}-${n}`;
      // Built again under each id: a title that cleans to nothing falls back to the id, as a parsed note's does.
      const task = taskFromNote(note, markdown, id, now, CLOUD_PARSE_LIMITS);
      const outcome = await admitTask({ store, config, logger, metrics }, task, markdown, now, `api:${caller.actor}`);
      if (outcome.status === 'duplicate') continue;
      const record = await this.deps.store.get(outcome.taskId);
      // Just admitted with a strongly consistent write; only a delete in between could make it vanish.
      if (record === null) throw new TaskNotFoundError(outcome.taskId);
      return { id: record.id, task: taskToWire(record) };
    }
    throw new NoFreeTaskIdError(slug);
  }

  async approve(id: string, caller: Caller): Promise<TaskActionResponse> {
    return this.decide(id, { type: 'approve', by: caller.actor });
  }

  async reject(id: string, caller: Caller, reason?: string): Promise<TaskActionResponse> {
    return this.decide(id, reason === undefined ? { type: 'reject', by: caller.actor } : { type: 'reject', by: caller.actor, reason });
  }

  /**
   * Record the decision, then answer the wait. The task is read first and the decision written only at that version,
   * so the token read in between belongs to the wait of exactly the task that is decided; a task that moved on
   * meanwhile fails as STALE_WRITE (409). The core refuses an approval of a task that is not pending approval
   * (INVALID_TRANSITION, 409) — the same answer the local API gives. A rejection is allowed from any unfinished state
   * the core allows it from; a task rejected while it plans or runs has no wait to answer, and the state machine ends
   * its execution at `Superseded` when its next transition is refused.
   */
  private async decide(id: string, event: Extract<TaskEvent, { type: 'approve' | 'reject' }>): Promise<TaskActionResponse> {
    const now = this.clock();
    const { store } = this.deps;
    const current = await store.get(id);
    if (current === null) throw new TaskNotFoundError(id);
    const token = current.state === 'pending_approval' ? await store.getApprovalToken(id) : null;
    if (event.type === 'approve' && token === null && current.state === 'pending_approval' && !waitGone(current, now)) {
      throw new ApprovalNotReadyError(id);
    }
    // A rejection needs no token: if the wait stores one after this write, storing it is refused (the task is no
    // longer pending), the wait fails and the machine's catch ends the execution without moving the task.
    const record = await store.apply(id, event, now, { expectedVersion: current.version });
    if (token !== null) await this.answer(record, token, { decision: event.type, by: event.by });
    return { id: record.id, state: record.state, task: taskToWire(record) };
  }

  /**
   * End the approval wait. A failure here does not undo or fail the decision, which is recorded and is what every
   * reader goes by: an approved task the wait never hears of is started by the scheduler (its execution name follows
   * the task's version), and the old execution, once its wait times out, finds its `expire` refused and ends at
   * Superseded. So the caller gets the decision; the failure goes to the log.
   */
  private async answer(record: TaskRecord, token: string, answer: ApprovalAnswer): Promise<void> {
    try {
      await this.deps.sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(answer) }));
    } catch (err) {
      const name = err instanceof Error ? err.name : 'UnknownError';
      const details = { taskId: record.id, decision: answer.decision, error: { name, message: err instanceof Error ? err.message : String(err) } };
      if (WAIT_GONE_ERRORS.has(name)) this.deps.logger.warn('approval wait already over; decision recorded only', details);
      else this.deps.logger.error('could not answer the approval wait; decision recorded, the scheduler takes it from here', details);
    }
  }

  /**
   * Set the stop flag: the scheduler starts nothing, and every execution reads the flag again right before it runs a
   * task. `now` (stop running agents) is not offered in the cloud — it would need rights to stop executions and Fargate
   * tasks that the API role is deliberately not given — so a running run finishes, and the answer says `now: false`.
   */
  async stop(options: { now: boolean; reason?: string }, caller: Caller): Promise<StopResponse> {
    if (options.now) {
      this.deps.logger.warn('stop --now asked for; in the cloud running runs finish, only dispatch stops', { by: caller.actor });
    }
    const reason = options.reason ?? `${caller.actor} stopped dispatch`;
    const control = await this.deps.store.setStop(true, reason, this.clock());
    return { stopped: true, now: false, reason: control.stopReason };
  }

  /** Clear the stop flag; the cloud has no stop file to remove. */
  async resume(_caller: Caller): Promise<ResumeResponse> {
    await this.deps.store.setStop(false, null, this.clock());
    return { stopped: false, removedStopFile: false };
  }
}

function waitGone(task: TaskRecord, now: Date): boolean {
  return now.getTime() - task.stateSince.getTime() > APPROVAL_TOKEN_GRACE_MS;
}

export function createCloudBackend(deps: CloudBackendDeps): ApiBackend {
  return combineBackend(storeReads(cloudReadSources(deps)), new CloudActions(deps));
}
