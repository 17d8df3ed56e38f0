import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoTaskStore } from '../lib/aws/dynamodb-store.ts';
import { KEY_PREFIXES, TABLE, TABLE_NAME_ENV, runKey, taskKey } from '../lib/aws/table-design.ts';
import { RUNNER_PAUSED_EXIT_CODE, runnerExitCode } from '../lib/cloud/runner-exit-codes.ts';
import { AGENT_HIDDEN_ENV, CONFIG_JSON_ENV, RUNNER_WORK_DIR } from '../lib/cloud/runtime-env.ts';
import type { RunKind } from '../lib/core/claude-invocation.ts';
import { validateConfig } from '../lib/core/config.ts';
import type { Config } from '../lib/core/config.ts';
import type { ErrorClass } from '../lib/core/retry.ts';
import type { TaskState } from '../lib/core/state-machine.ts';
import { costBeforeAttempt } from '../lib/core/persistence.ts';
import type { Checkpoint, IterationRecord } from '../lib/core/persistence.ts';
import type { RunRecord, TaskRecord } from '../lib/core/store.ts';
import { runClaude } from '../lib/local/claude-runner.ts';
import { runExecutionLoop } from '../lib/local/execution-loop.ts';
import type { LoopJournal } from '../lib/local/execution-loop.ts';

/**
 * The Fargate runner: one planning or execution run of one task, then exit. The state machine starts it with TASK_ID
 * and MODE (plan | execute) after recording `plan` or `execute`, and reads only its exit code: 0 for success, the pause
 * code when the persistence loop paused, else the code of the error class (lib/cloud/runner-exit-codes.ts), so the
 * core retry policy decides on the same class a local run would report. Claude is run and judged exactly as locally —
 * lib/local/claude-runner.ts builds the prompt and argv with the core and classifies the end with the core
 * `interpretResult` (exit 0 AND subtype success AND is_error false) — and an execution is the SAME persistence loop as
 * locally (lib/local/execution-loop.ts): resume the Claude session until the completion promise, at most
 * `orchestrator.max_iterations` runs, within `budget.per_task_usd` across iterations and attempts, pausing between
 * iterations on the stop flag or a spent daily budget. Its journal is DynamoDB instead of files: an item per
 * iteration and a checkpoint item, so an attempt whose container was killed is resumed by the next one at the next
 * iteration, in the same session. The run (cost, turns, duration, result) is written back before the runner exits.
 *
 * The image runs a single-file esbuild bundle of this module (lib/cloud/runner-image.ts), so it needs no TypeScript
 * toolchain and no npm install of fte's dependencies; locally `npx tsx container/runner.ts` runs the same code.
 */

/** A task as a run needs it. */
export interface RunnerTask {
  readonly record: TaskRecord;
  readonly body: string;
  /** The result of the latest successful planning run: what the human approved. */
  readonly plan: string | null;
  /** The task's stored runs: what earlier attempts cost counts against `budget.per_task_usd`. */
  readonly runs: readonly RunRecord[];
  /** Where an earlier attempt's loop stopped (its container was killed, or it paused), or null. */
  readonly checkpoint: Checkpoint | null;
}

/** What the run leaves behind besides its RunRecord. */
export interface RunOutput {
  /** Claude's final text, clipped: the plan of a planning run, the report of an execution run. */
  readonly result: string | null;
  readonly message: string;
}

/** The runner's view of the table; DynamoRunnerStore in the cloud, a map in tests. */
export interface RunnerStore {
  load(taskId: string): Promise<RunnerTask | null>;
  saveRun(run: RunRecord, output: RunOutput): Promise<void>;
  /** The persistence loop's journal. */
  appendIteration(taskId: string, record: IterationRecord): Promise<void>;
  saveCheckpoint(taskId: string, checkpoint: Checkpoint): Promise<void>;
  clearCheckpoint(taskId: string): Promise<void>;
  /** Why the loop should pause now — the stop flag, or the daily budget the scheduler found spent — or null. */
  pauseReason(): Promise<string | null>;
}

export interface RunnerInput {
  readonly taskId: string;
  readonly mode: RunKind;
  readonly config: Config;
  readonly store: RunnerStore;
  /** Where the task note is written and Claude works. */
  readonly workDir: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal;
  readonly log?: (entry: Record<string, unknown>) => void;
}

export interface RunnerOutcome {
  readonly exitCode: number;
  readonly errorClass: ErrorClass | null;
  readonly message: string;
  /** Null when no agent ran (the task was missing, gone elsewhere, or had no approved plan). */
  readonly run: RunRecord | null;
  /** Why the persistence loop paused between iterations (exit code RUNNER_PAUSED_EXIT_CODE), or null. */
  readonly pausedFor?: string | null;
  /** The iterations this execution ran (empty for a plan). */
  readonly iterations?: readonly IterationRecord[];
}

/** DynamoDB items are at most 400 KB; a result longer than this is cut (the full text is in the container log). */
export const MAX_RESULT_CHARS = 100_000;

const EXPECTED_STATE: Readonly<Record<RunKind, TaskState>> = { plan: 'planning', execute: 'executing' };

function refuse(errorClass: ErrorClass, message: string): RunnerOutcome {
  return { exitCode: runnerExitCode(errorClass), errorClass, message, run: null };
}

/**
 * Run one attempt of one task — a planning run, or an execution's persistence loop; the exit code says how it went.
 * Throws only when the task cannot be read at all (the table unreachable), which `main` reports as a crash: nothing
 * ran, so the retry policy may repeat the attempt.
 */
export async function runTask(input: RunnerInput): Promise<RunnerOutcome> {
  const log = input.log ?? (() => {});
  const { taskId, mode } = input;

  const task = await input.store.load(taskId);
  if (task === null) return refuse('invalid_task', `task ${taskId} does not exist`);
  const { record } = task;
  // The state machine recorded plan/execute just before starting us; anything else means someone (an operator's
  // cancel or reject) moved the task since, and a run now would spend money on work nobody wants.
  if (record.state !== EXPECTED_STATE[mode]) {
    const gone = record.state === 'cancelled' || record.state === 'rejected';
    return refuse(gone ? 'cancelled' : 'invalid_task', `task ${taskId} is ${record.state}, not ${EXPECTED_STATE[mode]}`);
  }
  // Approval binds to this task and its plan; checked again here, where the side effects would happen.
  if (mode === 'execute' && record.approvalRequired && (record.approval === null || task.plan === null)) {
    return refuse('invalid_task', `task ${taskId} needs approval but has no ${record.approval === null ? 'approval' : 'approved plan'}`);
  }

  await mkdir(input.workDir, { recursive: true });
  const notePath = join(input.workDir, `${taskId}.md`);
  await writeFile(notePath, task.body);

  log({ msg: 'run started', taskId, mode, attempt: record.attempts, resumeFrom: mode === 'execute' ? task.checkpoint : null });
  const ran = mode === 'plan' ? await planOnce(input, task, notePath) : await executeLoop(input, task, notePath, log);
  const { runRecord } = ran;
  log({
    msg: 'run ended',
    taskId,
    mode,
    ok: runRecord.ok,
    errorClass: runRecord.errorClass,
    pausedFor: ran.pausedFor,
    message: ran.message,
    costUsd: runRecord.costUsd,
    numTurns: runRecord.numTurns,
    durationMs: runRecord.durationMs,
    iterations: ran.iterations.length,
  });

  try {
    await input.store.saveRun(runRecord, { result: ran.result, message: ran.message });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    log({ msg: 'could not save the run', taskId, mode, error: detail });
    // A plan nobody can read cannot be approved, so that run failed; an execution's side effects happened and
    // running it again to save its bookkeeping would repeat them, so its outcome stands (the step that records it
    // rebuilds the run from the journaled iterations, so its cost still counts).
    if (mode === 'plan' && runRecord.ok) {
      return { exitCode: runnerExitCode('crash'), errorClass: 'crash', message: `the plan could not be saved: ${detail}`, run: runRecord };
    }
  }

  const base = { run: runRecord, iterations: ran.iterations, pausedFor: ran.pausedFor };
  if (ran.pausedFor !== null) return { ...base, exitCode: RUNNER_PAUSED_EXIT_CODE, errorClass: null, message: ran.message };
  if (runRecord.ok) return { ...base, exitCode: 0, errorClass: null, message: ran.message };
  const errorClass = runRecord.errorClass ?? 'crash';
  return { ...base, exitCode: runnerExitCode(errorClass), errorClass, message: ran.message };
}

/** What one mode's run produced, before it is written back. */
interface Ran {
  readonly runRecord: RunRecord;
  readonly result: string | null;
  readonly message: string;
  readonly pausedFor: string | null;
  readonly iterations: readonly IterationRecord[];
}

/** A planning run: one Claude run under the planning permission mode, as locally. */
async function planOnce(input: RunnerInput, task: RunnerTask, notePath: string): Promise<Ran> {
  const { record } = task;
  const run = await runClaude(input.config, {
    kind: 'plan',
    task: { id: record.id, title: record.title, body: task.body, type: record.type },
    notePath,
    plan: null,
    cwd: input.workDir,
    logPath: null,
    env: input.env,
    signal: input.signal,
  });
  return {
    runRecord: {
      taskId: record.id,
      attempt: record.attempts,
      kind: 'plan',
      startedAt: run.startedAt,
      endedAt: run.endedAt,
      ok: run.ok,
      errorClass: run.errorClass,
      exitCode: run.exitCode,
      durationMs: run.durationMs,
      costUsd: run.result?.costUsd ?? 0,
      numTurns: run.result?.numTurns ?? null,
      sessionId: run.result?.sessionId ?? null,
      logPath: null,
    },
    result: run.result === null ? null : run.result.result.slice(0, MAX_RESULT_CHARS),
    message: run.message,
    pausedFor: null,
    iterations: [],
  };
}

/**
 * An execution: the persistence loop, journaled in the table. A checkpoint left by an earlier attempt (its container
 * was killed, or it paused) makes this attempt go on in that session at the next iteration. The checkpoint is cleared
 * once the loop is over (done, or failed for a reason a fresh start should follow) and kept when it paused or was
 * stopped by SIGTERM — exactly the cases the local engine resumes.
 */
async function executeLoop(
  input: RunnerInput,
  task: RunnerTask,
  notePath: string,
  log: (entry: Record<string, unknown>) => void,
): Promise<Ran> {
  const { record } = task;
  const { store } = input;
  // The journal is bookkeeping: a failed write is logged and the loop goes on, because throwing would abandon the
  // agent's work midway — and the run written at the end still carries every iteration's cost.
  const journal: LoopJournal = {
    append: (id, iteration) => bestEffort(log, 'could not journal the iteration', () => store.appendIteration(id, iteration)),
    saveCheckpoint: (id, checkpoint) => bestEffort(log, 'could not save the checkpoint', () => store.saveCheckpoint(id, checkpoint)),
  };
  const loop = await runExecutionLoop({
    config: input.config,
    journal,
    task: { id: record.id, title: record.title, body: task.body, type: record.type },
    attempt: record.attempts,
    notePath,
    plan: task.plan,
    cwd: input.workDir,
    logDir: null,
    resumeFrom: task.checkpoint,
    priorCostUsd: costBeforeAttempt(task.runs, record.attempts),
    shouldPause: async () => {
      try {
        return await store.pauseReason();
      } catch (err) {
        // Unreadable now is not a reason to stop; the next iteration asks again.
        log({ msg: 'could not read the stop flag', taskId: record.id, error: err instanceof Error ? err.message : String(err) });
        return null;
      }
    },
    signal: input.signal,
    env: input.env,
    onSpawn: (pid) => log({ msg: 'agent started', taskId: record.id, pid }),
  });
  const resumable = loop.pausedFor !== null || loop.errorClass === 'interrupted';
  if (!resumable) await bestEffort(log, 'could not clear the checkpoint', () => store.clearCheckpoint(record.id));
  return {
    runRecord: {
      taskId: record.id,
      attempt: record.attempts,
      kind: 'execute',
      startedAt: loop.startedAt,
      endedAt: loop.endedAt,
      ok: loop.ok,
      errorClass: loop.errorClass,
      exitCode: loop.exitCode,
      durationMs: loop.durationMs,
      costUsd: loop.costUsd,
      numTurns: loop.numTurns,
      sessionId: loop.sessionId,
      logPath: null,
    },
    result: loop.iterations.length === 0 ? null : loop.text.slice(0, MAX_RESULT_CHARS),
    message: loop.message,
    pausedFor: loop.pausedFor,
    iterations: loop.iterations,
  };
}

async function bestEffort(log: (entry: Record<string, unknown>) => void, what: string, write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (err) {
    log({ msg: what, error: err instanceof Error ? err.message : String(err) });
  }
}

// ---- The table

type Item = Record<string, unknown>;

/**
 * Reads the task with the DynamoDB adapter; writes the run as an item the adapter's `runs()` reads back. Not through the
 * adapter's `recordRun`: its write also conditions on `state` and clears the step-key attributes, and the runner's role
 * may touch only the cost and the version of a task item (lib/cloud/runner-compute.ts) — the agent shares this
 * container, so the role must not be able to write `state`. The version still moves, which is what refuses a
 * transition or a replayed step computed before this write.
 */
export class DynamoRunnerStore implements RunnerStore {
  private readonly store: DynamoTaskStore;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {
    this.store = new DynamoTaskStore({ client: doc, tableName });
  }

  async load(taskId: string): Promise<RunnerTask | null> {
    const record = await this.store.get(taskId);
    if (record === null) return null;
    const [body, plan, runs, checkpoint] = await Promise.all([
      this.store.getTaskBody(taskId),
      this.latestPlan(taskId),
      this.store.runs(taskId),
      this.store.checkpoint(taskId),
    ]);
    return { record, body: body ?? '', plan, runs, checkpoint };
  }

  // The journal goes through the adapter, whose items carry only the attributes the role allows
  // (RUNNER_ITERATION_ITEM_ATTRIBUTES, RUNNER_CHECKPOINT_ITEM_ATTRIBUTES).

  appendIteration(taskId: string, record: IterationRecord): Promise<void> {
    return this.store.appendIteration(taskId, record);
  }

  saveCheckpoint(taskId: string, checkpoint: Checkpoint): Promise<void> {
    return this.store.saveCheckpoint(taskId, checkpoint);
  }

  clearCheckpoint(taskId: string): Promise<void> {
    return this.store.clearCheckpoint(taskId);
  }

  /** Read from the control item, which the role may read but not write. */
  async pauseReason(): Promise<string | null> {
    const control = await this.store.cloudControl();
    if (control.stopRequested) return `stopped${control.stopReason ? `: ${control.stopReason}` : ''}`;
    return control.budget?.exhausted ?? null;
  }

  async saveRun(run: RunRecord, output: RunOutput): Promise<void> {
    const key = runKey(run.taskId, run.attempt, run.kind);
    const previous = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
    const previousCost = typeof previous.Item?.['costUsd'] === 'number' ? previous.Item['costUsd'] : 0;
    await this.doc.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Put: {
              TableName: this.tableName,
              Item: {
                ...key,
                entity: 'run',
                taskId: run.taskId,
                attempt: run.attempt,
                kind: run.kind,
                startedAt: run.startedAt.getTime(),
                endedAt: run.endedAt.getTime(),
                ok: run.ok,
                errorClass: run.errorClass,
                exitCode: run.exitCode,
                durationMs: run.durationMs,
                costUsd: run.costUsd,
                numTurns: run.numTurns,
                sessionId: run.sessionId,
                logPath: run.logPath,
                result: output.result,
                message: output.message,
              },
            },
          },
          {
            // The task's cost stays the sum of its runs (as `apply` keeps it), and the version moves so that a
            // transition computed from a read before this write fails as stale instead of overwriting the cost.
            Update: {
              TableName: this.tableName,
              Key: taskKey(run.taskId),
              UpdateExpression: 'ADD #cost :cost, #version :one',
              ConditionExpression: 'attribute_exists(#pk)',
              ExpressionAttributeNames: { '#cost': 'costUsd', '#version': 'version', '#pk': TABLE.partitionKey },
              ExpressionAttributeValues: { ':cost': run.costUsd - previousCost, ':one': 1 },
            },
          },
        ],
      }),
    );
  }

  private async latestPlan(taskId: string): Promise<string | null> {
    const { pk } = taskKey(taskId);
    let startKey: Item | undefined;
    do {
      // Newest attempt first: the plan that was approved is the last one made.
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :run)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey },
          ExpressionAttributeValues: { ':pk': pk, ':run': KEY_PREFIXES.run },
          ScanIndexForward: false,
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        if (item['kind'] === 'plan' && item['ok'] === true && typeof item['result'] === 'string') return item['result'];
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return null;
  }
}

// ---- The process

/** Why the container cannot even start a run: a deployment fault, reported with exit code 1 (a crash). */
export class RunnerSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export interface RunnerSetup {
  readonly taskId: string;
  readonly mode: RunKind;
  readonly config: Config;
  readonly tableName: string;
  readonly workDir: string;
}

/** Read TASK_ID, MODE, the table name and the config from the environment the task definition and the state set. */
export function setupFromEnv(env: NodeJS.ProcessEnv): RunnerSetup {
  const taskId = env['TASK_ID'];
  const mode = env['MODE'];
  const tableName = env[TABLE_NAME_ENV];
  const configJson = env[CONFIG_JSON_ENV];
  if (taskId === undefined || taskId === '') throw new RunnerSetupError('TASK_ID is not set');
  if (mode !== 'plan' && mode !== 'execute') throw new RunnerSetupError(`MODE must be plan or execute, not ${JSON.stringify(mode)}`);
  if (tableName === undefined || tableName === '') throw new RunnerSetupError(`${TABLE_NAME_ENV} is not set`);
  if (configJson === undefined) throw new RunnerSetupError(`${CONFIG_JSON_ENV} is not set`);
  let raw: unknown;
  try {
    raw = JSON.parse(configJson);
  } catch (err) {
    throw new RunnerSetupError(`${CONFIG_JSON_ENV} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  let config = validateConfig(raw, CONFIG_JSON_ENV);
  const command = env['FTE_CLAUDE_COMMAND'];
  // The same override the local runtime honours (lib/local/config-file.ts).
  if (command !== undefined && command !== '') config = { ...config, orchestrator: { ...config.orchestrator, claude_command: command } };
  return { taskId, mode, config, tableName, workDir: env['FTE_WORK_DIR'] || RUNNER_WORK_DIR };
}

/**
 * The environment Claude runs with: the runner's, minus what would let the agent reach the task role (see
 * AGENT_HIDDEN_ENV). With Bedrock, Claude authenticates with those very credentials, so only fte's own settings go.
 */
export function agentEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const bedrock = env['CLAUDE_CODE_USE_BEDROCK'] === '1';
  const hidden = new Set<string>(bedrock ? [CONFIG_JSON_ENV, TABLE_NAME_ENV] : AGENT_HIDDEN_ENV);
  return Object.fromEntries(Object.entries(env).filter(([name]) => !hidden.has(name)));
}

function logLine(entry: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), ...entry })}\n`);
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let setup: RunnerSetup;
  try {
    setup = setupFromEnv(env);
  } catch (err) {
    logLine({ msg: 'runner cannot start', error: err instanceof Error ? err.message : String(err) });
    return 1;
  }
  // ECS stops a task with SIGTERM (StopTask, or the state's timeout): stop Claude and still write the run back.
  const abort = new AbortController();
  const onTerm = (): void => abort.abort();
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onTerm);
  const client = new DynamoDBClient({});
  try {
    const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    const outcome = await runTask({
      ...setup,
      store: new DynamoRunnerStore(doc, setup.tableName),
      env: agentEnv(env),
      signal: abort.signal,
      log: logLine,
    });
    logLine({ msg: 'runner exiting', taskId: setup.taskId, mode: setup.mode, exitCode: outcome.exitCode, errorClass: outcome.errorClass, message: outcome.message });
    return outcome.exitCode;
  } catch (err) {
    // The table could not be read: nothing ran, so this attempt is a crash the retry policy may repeat.
    logLine({ msg: 'runner failed', taskId: setup.taskId, error: err instanceof Error ? err.message : String(err) });
    return runnerExitCode('crash');
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onTerm);
    client.destroy();
  }
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(invokedPath).href) {
  process.exitCode = await main();
}
