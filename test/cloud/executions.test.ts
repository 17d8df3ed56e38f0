import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DynamoRunnerStore, runTask } from '../../container/runner.ts';
import { createMetrics } from '../../lambda/observability.ts';
import { handleStep } from '../../lambda/step.ts';
import type { StepDeps } from '../../lambda/step.ts';
import type { ExecutionInput } from '../../lambda/step-contract.ts';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoTaskStore } from '../../lib/aws/dynamodb-store.ts';
import { runKey } from '../../lib/aws/table-design.ts';
import { runnerExitCode } from '../../lib/cloud/runner-exit-codes.ts';
import { stageRunnerBuildContext } from '../../lib/cloud/runner-image.ts';
import { CONFIG_JSON_ENV } from '../../lib/cloud/runtime-env.ts';
import { STATE_NAMES } from '../../lib/cloud/task-state-machine.ts';
import type { ApprovalAnswer } from '../../lib/cloud/task-state-machine.ts';
import type { Config } from '../../lib/core/config.ts';
import type { ErrorClass } from '../../lib/core/retry.ts';
import type { HistoryEvent } from '../../lib/core/history.ts';
import type { TaskRecord } from '../../lib/core/store.ts';
import { startLocalDynamo } from '../aws/local-dynamo.ts';
import type { LocalDynamo } from '../aws/local-dynamo.ts';
import { renderDefinition } from './asl.ts';
import { localMachine } from './local-sfn.ts';
import type { Json, LocalHandler, LocalMachine, LocalRun } from './local-sfn.ts';
import { namedError } from './step-double.ts';
import { TEST_CONFIG_YAML, lambdaConfig, synthFteStack } from './synth.ts';

/**
 * The synthesized state machine EXECUTED (aws-local-stepfunctions) with its step Lambda bound to the real handler
 * (lambda/step.ts `handleStep`) over the real DynamoDB adapter on dynalite, and its Fargate runs bound to scripted
 * local functions — or, in the last scenarios, to the real runner (container/runner.ts) running the stand-in agent:
 * in-process, or as the bundled runner.mjs of the image in its own process, killed mid-loop as a container would be.
 * Each scenario asserts the task's final state and the events recorded in the table's history, in order.
 */

const STAND_IN = fileURLToPath(new URL('../../examples/stand-in-claude.mjs', import.meta.url));
const TASK_ID = 'task-1';

let dynamo: LocalDynamo;
let machine: LocalMachine;
let config: Config;
let workDir: string;
/** The image's build context, with runner.mjs bundled as `cdk synth` bundles it. */
let runnerContext: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  // The handler's metrics would print an EMF document per step.
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
  const { template } = synthFteStack({ configYaml: TEST_CONFIG_YAML });
  config = lambdaConfig(template);
  machine = localMachine(renderDefinition(template));
  dynamo = await startLocalDynamo();
  workDir = mkdtempSync(join(tmpdir(), 'fte-executions-'));
  runnerContext = stageRunnerBuildContext(join(workDir, 'image'));
  try {
    accessSync(STAND_IN, constants.X_OK);
  } catch {
    chmodSync(STAND_IN, 0o755);
  }
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  vi.unstubAllEnvs();
  await dynamo?.close();
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
});

type RunScript = 'ok' | 'capacity' | 'cancelled-meanwhile' | { fails: ErrorClass };

interface Scenario {
  readonly approvalRequired: boolean;
  readonly approval?: 'approve' | 'reject' | 'timeout';
  /** The Fargate runs in order; past the end of the list, runs succeed. */
  readonly runs?: readonly RunScript[];
  /** `budget-before-start`: the scheduler's verdict on the control item says the daily budget is spent. */
  readonly stop?: 'before-start' | 'before-execute' | 'budget-before-start';
  readonly body?: string;
  /** Bind the runs to the real runner with the stand-in agent instead of scripts. */
  readonly realRunner?: boolean;
  /** Settings of the persistence loop for the real runner. */
  readonly loop?: { readonly maxIterations?: number; readonly perTaskUsd?: number };
  /** The first execution run is the bundled runner in its own process, killed (with its agent) after its first checkpoint. */
  readonly killFirstExecution?: boolean;
  /** The stop flag is set while the first execution run's first iteration runs. */
  readonly stopDuringFirstExecution?: boolean;
  /** After the execution ends, resume (clear the stop flag) and start one more, as the scheduler would. */
  readonly thenRestart?: boolean;
}

interface Outcome {
  readonly run: LocalRun;
  /** The execution `thenRestart` started, or null. */
  readonly restarted: LocalRun | null;
  readonly task: TaskRecord;
  /** `event:from>to`, in the order the table's history has them. */
  readonly history: string[];
  readonly events: HistoryEvent[];
  /** The modes the Fargate runs were started with, including starts the Retry block repeated. */
  readonly runs: string[];
  readonly store: DynamoTaskStore;
  readonly tableName: string;
  readonly standInState: string;
}

function stoppedTask(exitCode: number): Json {
  return { Containers: [{ Name: 'runner', ExitCode: exitCode, LastStatus: 'STOPPED' }], StoppedReason: 'Essential container in task exited' };
}

async function execute(scenario: Scenario): Promise<Outcome> {
  const tableName = await dynamo.createTable();
  const store = new DynamoTaskStore({ client: dynamo.doc, tableName });
  let clock = Date.UTC(2026, 0, 1);
  // A minute passes with every step, so the retry after a zero-length Wait is not before its retryAt.
  const now = (): Date => new Date((clock += 60_000));
  await store.createWithBody(
    {
      id: TASK_ID,
      title: 'Deploy the landing page',
      type: 'general',
      sender: null,
      urgency: 3,
      deadline: null,
      created: now(),
      approvalRequired: scenario.approvalRequired,
      approvalReasons: scenario.approvalRequired ? ['keyword: deploy'] : [],
    },
    scenario.body ?? 'Deploy it.',
    now(),
  );
  if (scenario.stop === 'before-start') await store.setStop(true, 'maintenance', now());
  if (scenario.stop === 'budget-before-start') {
    await store.recordBudget({
      exhausted: 'daily budget exhausted: $5.00 spent in the last 24 h of $5.00 (budget.daily_usd)',
      exhaustedTypes: {},
      spentUsd: 5,
      dailyUsd: 5,
      freesAt: null,
      checkedAt: now(),
    });
  }
  const runnerConfig: Config = {
    ...config,
    orchestrator: {
      ...config.orchestrator,
      claude_command: STAND_IN,
      max_iterations: scenario.loop?.maxIterations ?? config.orchestrator.max_iterations,
    },
    budget: { ...config.budget, ...(scenario.loop?.perTaskUsd !== undefined ? { per_task_usd: scenario.loop.perTaskUsd } : {}) },
  };
  const standInState = join(workDir, tableName, '.stand-in');
  let executions = 0;

  const deps: StepDeps = {
    store,
    config,
    logger: new Logger({ serviceName: 'test', logLevel: 'SILENT' }),
    metrics: createMetrics('test'),
    now,
    random: () => 0.5,
  };
  const payloadOf = (input: Json): unknown =>
    input !== null && typeof input === 'object' && !Array.isArray(input) ? input['Payload'] : undefined;
  const step: LocalHandler = async (input) => ({ StatusCode: 200, Payload: (await handleStep(deps, payloadOf(input))) as unknown as Json });

  const runs: string[] = [];
  const scripts = [...(scenario.runs ?? [])];
  const runner = (mode: 'plan' | 'execute'): LocalHandler => async () => {
    runs.push(mode);
    if (scenario.realRunner === true) {
      const first = mode === 'execute' && executions++ === 0;
      if (first && scenario.killFirstExecution === true) {
        // ECS reports a container killed by SIGKILL as exit code 137: a crash, which the retry policy retries.
        await killedRunner(tableName, store, runnerConfig, standInState);
        throw namedError('States.TaskFailed', JSON.stringify(stoppedTask(137)));
      }
      const running = runTask({
        taskId: TASK_ID,
        mode,
        config: runnerConfig,
        store: new DynamoRunnerStore(dynamo.doc, tableName),
        workDir: join(workDir, tableName),
        env: { ...process.env, FTE_STAND_IN_STATE: standInState },
      });
      // The flag is read between iterations only; the first iteration runs for its `delay`.
      if (first && scenario.stopDuringFirstExecution === true) await store.setStop(true, 'maintenance', now());
      const outcome = await running;
      if (outcome.exitCode === 0) return stoppedTask(0);
      throw namedError('States.TaskFailed', JSON.stringify(stoppedTask(outcome.exitCode)));
    }
    const script = scripts.shift() ?? 'ok';
    if (script === 'capacity') throw namedError('ECS.AmazonECSException', 'Capacity is unavailable at this time');
    if (script === 'cancelled-meanwhile') await store.apply(TASK_ID, { type: 'cancel', by: 'ops', reason: 'not needed' }, now());
    if (typeof script === 'object') {
      throw namedError('States.TaskFailed', JSON.stringify(stoppedTask(runnerExitCode(script.fails))));
    }
    return stoppedTask(0);
  };
  const answer = (value: ApprovalAnswer): Json => ({ ...value });
  const awaitApproval: LocalHandler = async (input) => {
    await handleStep(deps, payloadOf(input));
    // What the API does when a human answers: record the decision, then complete the stored token.
    expect(await store.getApprovalToken(TASK_ID)).toBe('token-of-this-wait');
    switch (scenario.approval ?? 'approve') {
      case 'approve':
        await store.apply(TASK_ID, { type: 'approve', by: 'ops@example.com' }, now());
        if (scenario.stop === 'before-execute') await store.setStop(true, 'maintenance', now());
        return answer({ decision: 'approve', by: 'ops@example.com' });
      case 'reject':
        await store.apply(TASK_ID, { type: 'reject', by: 'ops@example.com', reason: 'too risky' }, now());
        return answer({ decision: 'reject', by: 'ops@example.com' });
      case 'timeout':
        // Nobody answers: the executor's own TimeoutSeconds (approval.timeout = 1 s) ends the wait first.
        await new Promise((resolve) => setTimeout(resolve, config.approval.timeout * 1000 + 400));
        return answer({ decision: 'approve', by: 'too late' });
    }
  };

  const handlers: Record<string, LocalHandler> = {};
  for (const name of [
    STATE_NAMES.checkStop,
    STATE_NAMES.recordPlan,
    STATE_NAMES.recordPlanReady,
    STATE_NAMES.recordExpire,
    STATE_NAMES.recordExecute,
    STATE_NAMES.recordSucceed,
    STATE_NAMES.decideRetry,
    STATE_NAMES.recordFailure,
    STATE_NAMES.recordRetry,
    STATE_NAMES.recordPause,
  ]) {
    handlers[name] = step;
  }
  handlers[STATE_NAMES.awaitApproval] = awaitApproval;
  handlers[STATE_NAMES.runPlan] = runner('plan');
  handlers[STATE_NAMES.runExecute] = runner('execute');

  const task = await store.get(TASK_ID);
  if (task === null) throw new Error('the task was not created');
  const input: ExecutionInput = {
    taskId: TASK_ID,
    attempt: task.attempts + 1,
    state: 'needs_action',
    approvalRequired: scenario.approvalRequired,
    firstEvent: scenario.approvalRequired ? 'plan' : 'execute',
  };
  const run = await machine.run(input as unknown as Json, { handlers, taskToken: 'token-of-this-wait' });
  let restarted: LocalRun | null = null;
  if (scenario.thenRestart === true) {
    await store.setStop(false, null, now());
    const queued = await store.get(TASK_ID);
    if (queued === null || (queued.state !== 'needs_action' && queued.state !== 'approved')) {
      throw new Error(`the task is ${queued?.state ?? 'gone'}, not queued`);
    }
    const again: ExecutionInput = {
      taskId: TASK_ID,
      attempt: queued.attempts + 1,
      state: queued.state,
      approvalRequired: scenario.approvalRequired,
      firstEvent: queued.state === 'needs_action' && scenario.approvalRequired ? 'plan' : 'execute',
    };
    restarted = await machine.run(again as unknown as Json, { handlers, taskToken: 'token-of-this-wait' });
  }
  const events = (await store.history({ since: new Date(0), until: new Date(Date.UTC(2100, 0, 1)) })).filter((e) => e.taskId === TASK_ID);
  const history = events.map((e) => `${e.event}:${e.from}>${e.to}`);
  const final = await store.get(TASK_ID);
  if (final === null) throw new Error('the task is gone');
  return { run, restarted, task: final, history, events, runs, store, tableName, standInState };
}

/**
 * The bundled runner.mjs as its own process — what the image runs — killed with SIGKILL, together with its agent's
 * process group, right after its first checkpoint (iteration 1 done, iteration 2 started): what ECS does to a
 * container that is stopped hard or loses its host.
 */
async function killedRunner(tableName: string, store: DynamoTaskStore, runnerConfig: Config, standInState: string): Promise<void> {
  const child = spawn(process.execPath, [join(runnerContext, 'runner.mjs')], {
    env: {
      PATH: process.env['PATH'],
      TASK_ID,
      MODE: 'execute',
      FTE_TABLE_NAME: tableName,
      [CONFIG_JSON_ENV]: JSON.stringify(runnerConfig),
      FTE_WORK_DIR: join(workDir, tableName),
      FTE_STAND_IN_STATE: standInState,
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const agents: number[] = [];
  let buffered = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const entry = JSON.parse(line) as { msg?: string; pid?: number };
      if (entry.msg === 'agent started' && typeof entry.pid === 'number') agents.push(entry.pid);
    }
  });
  const closed = new Promise((resolve) => child.on('close', resolve));
  const deadline = Date.now() + 20_000;
  // The checkpoint of iteration 1, then the agent of iteration 2 (spawned right after it).
  while ((await store.checkpoint(TASK_ID)) === null || agents.length < 2) {
    if (Date.now() > deadline) throw new Error('the runner never reached its second iteration');
    if (child.exitCode !== null) throw new Error(`the runner exited with ${child.exitCode} before it was killed`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  child.kill('SIGKILL');
  for (const pid of agents) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // That agent (iteration 1) had already exited with its group.
    }
  }
  await closed;
}

describe('executing the synthesized state machine against the step handler and DynamoDB', () => {
  it('runs a task that needs no approval to done', async () => {
    const { run, task, history, runs } = await execute({ approvalRequired: false });
    expect(run.error).toBeNull();
    expect(run.visited.at(-1)).toBe(STATE_NAMES.done);
    expect(task.state).toBe('done');
    expect(history).toEqual(['execute:needs_action>executing', 'succeed:executing>done']);
    expect(runs).toEqual(['execute']);
  });

  it('plans, waits for the approval, then executes the approved task', async () => {
    const { run, task, history, runs, store } = await execute({ approvalRequired: true, approval: 'approve' });
    expect(run.visited.at(-1)).toBe(STATE_NAMES.done);
    expect(task).toMatchObject({ state: 'done', approval: { by: 'ops@example.com' }, attempts: 2 });
    expect(history).toEqual([
      'plan:needs_action>planning',
      'plan_ready:planning>pending_approval',
      'approve:pending_approval>approved',
      'execute:approved>executing',
      'succeed:executing>done',
    ]);
    expect(runs).toEqual(['plan', 'execute']);
    // The token belonged to that one wait; leaving pending_approval removed it.
    expect(await store.getApprovalToken(TASK_ID)).toBeNull();
  });

  it('ends a rejected task as rejected and never executes it', async () => {
    const { run, task, history, runs } = await execute({ approvalRequired: true, approval: 'reject' });
    expect(run.error).toBeNull();
    expect(run.visited.at(-1)).toBe(STATE_NAMES.rejected);
    expect(task).toMatchObject({ state: 'rejected', reason: 'too risky' });
    expect(history).toEqual(['plan:needs_action>planning', 'plan_ready:planning>pending_approval', 'reject:pending_approval>rejected']);
    expect(runs).toEqual(['plan']);
  });

  it('expires an approval nobody answers within approval.timeout, and never executes it', async () => {
    const { run, task, history, runs } = await execute({ approvalRequired: true, approval: 'timeout' });
    expect(run.visited).toContain(STATE_NAMES.recordExpire);
    expect(run.visited.at(-1)).toBe(STATE_NAMES.expired);
    expect(task.state).toBe('expired');
    expect(history).toEqual(['plan:needs_action>planning', 'plan_ready:planning>pending_approval', 'expire:pending_approval>expired']);
    expect(runs).toEqual(['plan']);
  });

  it('does not start a task while the stop flag is set; the task stays queued', async () => {
    const { run, task, history, runs } = await execute({ approvalRequired: false, stop: 'before-start' });
    expect(run.visited).toEqual([STATE_NAMES.checkStop, STATE_NAMES.dispatch, STATE_NAMES.stopped]);
    expect(task.state).toBe('needs_action');
    expect(history).toEqual([]);
    expect(runs).toEqual([]);
  });

  it('checks the stop flag again after the approval: an approved task is not executed while stopped', async () => {
    const { run, task, history, runs } = await execute({ approvalRequired: true, approval: 'approve', stop: 'before-execute' });
    expect(run.visited.at(-1)).toBe(STATE_NAMES.stopped);
    expect(task.state).toBe('approved');
    expect(history.at(-1)).toBe('approve:pending_approval>approved');
    expect(runs).toEqual(['plan']);
  });

  it('retries a run that failed once, then finishes', async () => {
    const { run, task, history } = await execute({ approvalRequired: false, runs: [{ fails: 'agent_error' }] });
    expect(run.visited.at(-1)).toBe(STATE_NAMES.done);
    expect(task).toMatchObject({ state: 'done', attempts: 2, lastError: { class: 'agent_error' } });
    expect(history).toEqual([
      'execute:needs_action>executing',
      'fail:executing>retry_wait',
      'retry:retry_wait>needs_action',
      'execute:needs_action>executing',
      'succeed:executing>done',
    ]);
  });

  it('keeps the approval across a retry of the execution: no second plan, no second approval', async () => {
    const { task, history, runs } = await execute({ approvalRequired: true, approval: 'approve', runs: ['ok', { fails: 'rate_limit' }] });
    expect(task.state).toBe('done');
    expect(history.slice(3)).toEqual([
      'execute:approved>executing',
      'fail:executing>retry_wait',
      'retry:retry_wait>approved',
      'execute:approved>executing',
      'succeed:executing>done',
    ]);
    expect(runs).toEqual(['plan', 'execute', 'execute']);
  });

  it('dead-letters a task whose runs keep failing after max_attempts, and fails the execution', async () => {
    const fails = { fails: 'crash' } as const;
    const { run, task, history, runs } = await execute({ approvalRequired: false, runs: [fails, fails, fails, fails] });
    expect(run.error?.name).toBe('TaskFailed');
    expect(run.visited.at(-1)).toBe(STATE_NAMES.failed);
    expect(task).toMatchObject({ state: 'failed', attempts: config.retry.max_attempts, lastError: { class: 'crash' } });
    expect(history).toEqual([
      'execute:needs_action>executing',
      'fail:executing>retry_wait',
      'retry:retry_wait>needs_action',
      'execute:needs_action>executing',
      'fail:executing>retry_wait',
      'retry:retry_wait>needs_action',
      'execute:needs_action>executing',
      'dead_letter:executing>failed',
    ]);
    expect(runs).toHaveLength(3);
  });

  it('dead-letters a non-retryable failure (a spent budget) at once', async () => {
    const { task, history } = await execute({ approvalRequired: false, runs: [{ fails: 'budget_exceeded' }] });
    expect(task).toMatchObject({ state: 'failed', attempts: 1, lastError: { class: 'budget_exceeded' } });
    expect(history).toEqual(['execute:needs_action>executing', 'dead_letter:executing>failed']);
  });

  it('retries a Fargate start that found no capacity inside the step: not an attempt', async () => {
    const { task, history, runs } = await execute({ approvalRequired: false, runs: ['capacity', 'capacity', 'ok'] });
    expect(task).toMatchObject({ state: 'done', attempts: 1 });
    expect(history).toEqual(['execute:needs_action>executing', 'succeed:executing>done']);
    expect(runs).toEqual(['execute', 'execute', 'execute']);
  });

  it('ends quietly when an operator cancelled the task during its run', async () => {
    const { run, task, history } = await execute({ approvalRequired: false, runs: ['cancelled-meanwhile'] });
    expect(run.error).toBeNull();
    expect(run.visited.at(-1)).toBe(STATE_NAMES.superseded);
    expect(task.state).toBe('cancelled');
    expect(history).toEqual(['execute:needs_action>executing', 'cancel:executing>cancelled']);
  });

  it('runs the real runner with the stand-in agent: a failed plan is retried, the plan approved and executed', async () => {
    const { task, history, runs, store, tableName } = await execute({
      approvalRequired: true,
      approval: 'approve',
      realRunner: true,
      body: 'Deploy the page.\nstand-in: fail-once\nstand-in: cost 0.25',
    });
    expect(history).toEqual([
      'plan:needs_action>planning',
      'fail:planning>retry_wait',
      'retry:retry_wait>needs_action',
      'plan:needs_action>planning',
      'plan_ready:planning>pending_approval',
      'approve:pending_approval>approved',
      'execute:approved>executing',
      'succeed:executing>done',
    ]);
    expect(runs).toEqual(['plan', 'plan', 'execute']);
    expect(task).toMatchObject({ state: 'done', attempts: 3, lastError: { class: 'agent_error' } });
    // Each run was written back by the runner, and the task's cost is their sum.
    const records = await store.runs(TASK_ID);
    expect(records.map((r) => [r.attempt, r.kind, r.ok, r.errorClass])).toEqual([
      [1, 'plan', false, 'agent_error'],
      [2, 'plan', true, null],
      [3, 'execute', true, null],
    ]);
    expect(task.costUsd).toBeCloseTo(0.75, 10);
    // The execution run was given the plan the human approved: the latest successful planning run's result.
    const loaded = await new DynamoRunnerStore(dynamo.doc, tableName).load(TASK_ID);
    expect(loaded?.plan).toMatch(/^Plan for .*task-1\.md \(stand-in agent, nothing was changed\)/);
  }, 30_000);

  it('does not start a task while the daily budget is spent: CheckStop reads the scheduler\'s verdict', async () => {
    const { run, task, history, runs } = await execute({ approvalRequired: false, stop: 'budget-before-start' });
    expect(run.visited).toEqual([STATE_NAMES.checkStop, STATE_NAMES.dispatch, STATE_NAMES.stopped]);
    expect(task.state).toBe('needs_action');
    expect(history).toEqual([]);
    expect(runs).toEqual([]);
  });

  it('runs the persistence loop in the real runner: promise on iteration 3 → done, the run\'s cost on the history', async () => {
    const { run, task, history, events, store, tableName } = await execute({
      approvalRequired: false,
      realRunner: true,
      body: 'Write the essay.\nstand-in: promise-on 3',
    });
    expect(run.visited.at(-1)).toBe(STATE_NAMES.done);
    expect(history).toEqual(['execute:needs_action>executing', 'succeed:executing>done']);
    expect((await store.iterations(TASK_ID)).map((i) => [i.attempt, i.iteration, i.promiseSeen])).toEqual([
      [1, 1, false],
      [1, 2, false],
      [1, 3, true],
    ]);
    expect(task.costUsd).toBeCloseTo(3 * 0.0123, 10);
    // The event that ended the run carries its cost, which is what the scheduler's daily budget adds up.
    expect(events.at(-1)?.costUsd).toBeCloseTo(3 * 0.0123, 10);
    // Attached, not written again: the run item keeps the result text the runner stored with it.
    const item = await dynamo.doc.send(new GetCommand({ TableName: tableName, Key: runKey(TASK_ID, 1, 'execute') }));
    expect(item.Item?.['result']).toMatch(/<promise>DONE<\/promise>/);
  }, 30_000);

  it('dead-letters a loop that crossed the per-task budget at once (budget_exceeded is not retried)', async () => {
    const { task, history, events, store } = await execute({
      approvalRequired: false,
      realRunner: true,
      loop: { perTaskUsd: 1.2 },
      body: 'stand-in: promise-on 10\nstand-in: cost 0.5',
    });
    expect(task).toMatchObject({ state: 'failed', attempts: 1, lastError: { class: 'budget_exceeded' } });
    expect(history).toEqual(['execute:needs_action>executing', 'dead_letter:executing>failed']);
    expect(await store.iterations(TASK_ID)).toHaveLength(3);
    expect(events.at(-1)?.costUsd).toBeCloseTo(1.5, 10);
    expect(task.costUsd).toBeCloseTo(1.5, 10);
  }, 30_000);

  it('retries iterations_exhausted like locally: each attempt starts the loop over, until max_attempts', async () => {
    const { task, history, store } = await execute({
      approvalRequired: false,
      realRunner: true,
      loop: { maxIterations: 2 },
      body: 'stand-in: promise-on 999',
    });
    expect(task).toMatchObject({ state: 'failed', attempts: 3, lastError: { class: 'iterations_exhausted' } });
    expect(history.at(-1)).toBe('dead_letter:executing>failed');
    expect((await store.iterations(TASK_ID)).map((i) => [i.attempt, i.iteration])).toEqual([
      [1, 1], [1, 2], [2, 1], [2, 2], [3, 1], [3, 2],
    ]);
    expect(await store.checkpoint(TASK_ID)).toBeNull();
  }, 30_000);

  it('pauses a loop between iterations on the stop flag, and the next execution resumes it at the next iteration', async () => {
    const { run, restarted, task, history, store } = await execute({
      approvalRequired: false,
      realRunner: true,
      stopDuringFirstExecution: true,
      thenRestart: true,
      body: 'stand-in: promise-on 3\nstand-in: delay 800',
    });
    expect(run.error).toBeNull();
    expect(run.visited.at(-1)).toBe(STATE_NAMES.paused);
    expect(restarted?.visited.at(-1)).toBe(STATE_NAMES.done);
    expect(history).toEqual([
      'execute:needs_action>executing',
      'interrupt:executing>needs_action',
      'execute:needs_action>executing',
      'succeed:executing>done',
    ]);
    const iterations = await store.iterations(TASK_ID);
    expect(iterations.map((i) => [i.attempt, i.iteration, i.promiseSeen])).toEqual([
      [1, 1, false],
      [2, 2, false],
      [2, 3, true],
    ]);
    expect(new Set(iterations.map((i) => i.sessionId)).size).toBe(1);
    expect(task).toMatchObject({ state: 'done', attempts: 2 });
    expect(task.costUsd).toBeCloseTo(3 * 0.0123, 10);
  }, 30_000);

  it('resumes at the next iteration in the same session after the container was killed mid-loop', async () => {
    const { run, task, history, events, store } = await execute({
      approvalRequired: false,
      realRunner: true,
      killFirstExecution: true,
      body: 'stand-in: promise-on 3\nstand-in: delay 1500',
    });
    expect(run.visited).toContain(STATE_NAMES.runExitedAbnormally);
    expect(run.visited.at(-1)).toBe(STATE_NAMES.done);
    expect(history).toEqual([
      'execute:needs_action>executing',
      'fail:executing>retry_wait',
      'retry:retry_wait>needs_action',
      'execute:needs_action>executing',
      'succeed:executing>done',
    ]);
    expect(task).toMatchObject({ state: 'done', attempts: 2, lastError: { class: 'crash' } });
    const iterations = await store.iterations(TASK_ID);
    const [first, ...later] = iterations;
    // The killed attempt journaled iteration 1 (its iteration 2 died with it); the retry went on from iteration 2,
    // never from iteration 1, and in the session the checkpoint named.
    expect(first).toMatchObject({ attempt: 1, iteration: 1, promiseSeen: false });
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((i) => i.attempt === 2 && i.iteration >= 2)).toBe(true);
    expect(later[0]?.iteration).toBe(2);
    expect(later.at(-1)?.promiseSeen).toBe(true);
    expect(iterations.every((i) => i.sessionId === first?.sessionId)).toBe(true);
    // The killed attempt never wrote its run; the step that recorded the crash rebuilt it from the journal, so its
    // cost is on the task and on the history event that ended it.
    const runs = await store.runs(TASK_ID);
    expect(runs.map((r) => [r.attempt, r.ok, r.errorClass])).toEqual([
      [1, false, 'crash'],
      [2, true, null],
    ]);
    expect(runs[0]?.costUsd).toBeCloseTo(0.0123, 10);
    expect(events.find((e) => e.event === 'fail')?.costUsd).toBeCloseTo(0.0123, 10);
    expect(task.costUsd).toBeCloseTo(iterations.reduce((sum, i) => sum + i.costUsd, 0), 10);
    expect(await store.checkpoint(TASK_ID)).toBeNull();
  }, 60_000);
});
