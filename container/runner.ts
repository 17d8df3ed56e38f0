import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoTaskStore } from '../lib/aws/dynamodb-store.ts';
import { KEY_PREFIXES, TABLE, TABLE_NAME_ENV, runKey, taskKey } from '../lib/aws/table-design.ts';
import { runnerExitCode } from '../lib/cloud/runner-exit-codes.ts';
import { AGENT_HIDDEN_ENV, CONFIG_JSON_ENV, RUNNER_WORK_DIR } from '../lib/cloud/runtime-env.ts';
import type { RunKind } from '../lib/core/claude-invocation.ts';
import { validateConfig } from '../lib/core/config.ts';
import type { Config } from '../lib/core/config.ts';
import type { ErrorClass } from '../lib/core/retry.ts';
import type { TaskState } from '../lib/core/state-machine.ts';
import type { RunRecord, TaskRecord } from '../lib/core/store.ts';
import { runClaude } from '../lib/local/claude-runner.ts';

/**
 * The Fargate runner: one planning or execution run of one task, then exit. The state machine starts it with TASK_ID
 * and MODE (plan | execute) after recording `plan` or `execute`, and reads only its exit code: 0 for success, else the
 * code of the error class (lib/cloud/runner-exit-codes.ts), so the core retry policy decides on the same class a local
 * run would report. Claude is run and judged exactly as locally — lib/local/claude-runner.ts builds the prompt and argv
 * with the core and classifies the end with the core `interpretResult` (exit 0 AND subtype success AND is_error false)
 * — and the run (cost, turns, duration, result) is written back to the table before the runner exits.
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
}

/** DynamoDB items are at most 400 KB; a result longer than this is cut (the full text is in the container log). */
export const MAX_RESULT_CHARS = 100_000;

const EXPECTED_STATE: Readonly<Record<RunKind, TaskState>> = { plan: 'planning', execute: 'executing' };

function refuse(errorClass: ErrorClass, message: string): RunnerOutcome {
  return { exitCode: runnerExitCode(errorClass), errorClass, message, run: null };
}

/** Run one task once. Never throws for anything the task, the agent or the table does; the exit code says it. */
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

  log({ msg: 'run started', taskId, mode, attempt: record.attempts });
  const run = await runClaude(input.config, {
    kind: mode,
    task: { id: record.id, title: record.title, body: task.body, type: record.type },
    notePath,
    plan: mode === 'execute' ? task.plan : null,
    cwd: input.workDir,
    logPath: null,
    // One run per attempt, as the local runner does today; the persistence loop is not part of the run contract yet.
    completionPromise: null,
    env: input.env,
    signal: input.signal,
  });
  const runRecord: RunRecord = {
    taskId,
    attempt: record.attempts,
    kind: mode,
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
  };
  const result = run.result === null ? null : run.result.result.slice(0, MAX_RESULT_CHARS);
  log({
    msg: 'run ended',
    taskId,
    mode,
    ok: run.ok,
    errorClass: run.errorClass,
    message: run.message,
    costUsd: runRecord.costUsd,
    numTurns: runRecord.numTurns,
    durationMs: runRecord.durationMs,
  });

  try {
    await input.store.saveRun(runRecord, { result, message: run.message });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    log({ msg: 'could not save the run', taskId, mode, error: detail });
    // A plan nobody can read cannot be approved, so that run failed; an execution's side effects happened and
    // running it again to save its bookkeeping would repeat them, so its outcome stands.
    if (mode === 'plan' && run.ok) {
      return { exitCode: runnerExitCode('crash'), errorClass: 'crash', message: `the plan could not be saved: ${detail}`, run: runRecord };
    }
  }

  if (run.ok) return { exitCode: 0, errorClass: null, message: run.message, run: runRecord };
  const errorClass = run.errorClass ?? 'crash';
  return { exitCode: runnerExitCode(errorClass), errorClass, message: run.message, run: runRecord };
}

// ---- The table

type Item = Record<string, unknown>;

/** Reads the task with the DynamoDB adapter; writes the run as an item the adapter's `runs()` reads back. */
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
    const body = (await this.store.getTaskBody(taskId)) ?? '';
    return { record, body, plan: await this.latestPlan(taskId) };
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
