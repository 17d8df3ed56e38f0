import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DynamoRunnerStore,
  RunnerSetupError,
  agentEnv,
  runTask,
  setupFromEnv,
} from '../../container/runner.ts';
import type { RunOutput, RunnerStore, RunnerTask } from '../../container/runner.ts';
import { DynamoTaskStore } from '../../lib/aws/dynamodb-store.ts';
import { checkpointKey, iterationKey, runKey } from '../../lib/aws/table-design.ts';
import {
  RUNNER_EXIT_BASE,
  RUNNER_PAUSED_EXIT_CODE,
  errorClassOfExitCode,
  runnerExitCode,
} from '../../lib/cloud/runner-exit-codes.ts';
import { stageRunnerBuildContext } from '../../lib/cloud/runner-image.ts';
import {
  CONFIG_JSON_ENV,
  RUNNER_CHECKPOINT_ITEM_ATTRIBUTES,
  RUNNER_ITERATION_ITEM_ATTRIBUTES,
  RUNNER_PUT_ITEM_ATTRIBUTES,
  RUNNER_RUN_ITEM_ATTRIBUTES,
} from '../../lib/cloud/runtime-env.ts';
import { buildPrompt } from '../../lib/core/claude-invocation.ts';
import { defaultConfig } from '../../lib/core/config.ts';
import type { Config } from '../../lib/core/config.ts';
import type { Checkpoint, IterationRecord } from '../../lib/core/persistence.ts';
import { ERROR_CLASSES } from '../../lib/core/retry.ts';
import type { ErrorClass } from '../../lib/core/retry.ts';
import { newTaskRecord } from '../../lib/core/store-apply.ts';
import { transition } from '../../lib/core/state-machine.ts';
import type { TaskEvent, TaskState } from '../../lib/core/state-machine.ts';
import type { NewTask, RunRecord, TaskRecord } from '../../lib/core/store.ts';
import { startLocalDynamo } from '../aws/local-dynamo.ts';
import type { LocalDynamo } from '../aws/local-dynamo.ts';

/**
 * The Fargate runner's decisions, with the stand-in agent (examples/stand-in-claude.mjs) as Claude: which runs it
 * refuses, how it judges a run (the core success rule, as locally), the exit code each outcome becomes, what it writes
 * back — and, at the end, the bundled runner.mjs that goes into the image, run as a process against dynalite.
 */

const STAND_IN = fileURLToPath(new URL('../../examples/stand-in-claude.mjs', import.meta.url));

let dir: string;
let agentLog: string;

beforeAll(() => {
  try {
    accessSync(STAND_IN, constants.X_OK);
  } catch {
    chmodSync(STAND_IN, 0o755);
  }
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fte-runner-'));
  agentLog = join(dir, 'stand-in.jsonl');
  return () => rmSync(dir, { recursive: true, force: true });
});

function config(overrides: { maxIterations?: number; perTaskUsd?: number } = {}): Config {
  const base = defaultConfig();
  return {
    ...base,
    orchestrator: { ...base.orchestrator, claude_command: STAND_IN, max_iterations: overrides.maxIterations ?? base.orchestrator.max_iterations },
    budget: { ...base.budget, ...(overrides.perTaskUsd !== undefined ? { per_task_usd: overrides.perTaskUsd } : {}) },
  };
}

const NEW_TASK: NewTask = {
  id: 'task-1',
  title: 'Tidy the README',
  type: 'general',
  sender: null,
  urgency: 3,
  deadline: null,
  created: new Date('2026-01-01T00:00:00Z'),
  approvalRequired: false,
  approvalReasons: [],
};

/** A task record as the state machine leaves it right before starting the runner. */
function record(events: readonly TaskEvent[], approvalRequired = false): TaskRecord {
  let r: TaskRecord = newTaskRecord({ ...NEW_TASK, approvalRequired }, NEW_TASK.created);
  for (const event of events) r = { ...r, ...transition(r, event, new Date('2026-01-01T01:00:00Z')).status };
  return r;
}

const EXECUTING = record([{ type: 'execute' }]);
const PLANNING = record([{ type: 'plan' }], true);
const APPROVED_EXECUTING = record(
  [{ type: 'plan' }, { type: 'plan_ready' }, { type: 'approve', by: 'ops' }, { type: 'execute' }],
  true,
);

/** A task as the tests write it: the stored runs and the checkpoint default to none. */
type TaskInput = Omit<RunnerTask, 'runs' | 'checkpoint'> & Partial<Pick<RunnerTask, 'runs' | 'checkpoint'>>;

class MemoryRunnerStore implements RunnerStore {
  readonly saved: { run: RunRecord; output: RunOutput }[] = [];
  readonly journal: IterationRecord[] = [];
  checkpoint: Checkpoint | null;
  failSave = false;
  /** Asked between iterations, with the iterations journaled so far. */
  pause: (journal: readonly IterationRecord[]) => string | null = () => null;

  constructor(private readonly task: TaskInput | null) {
    this.checkpoint = task?.checkpoint ?? null;
  }

  async load(): Promise<RunnerTask | null> {
    return this.task === null ? null : { runs: [], ...this.task, checkpoint: this.checkpoint };
  }

  async saveRun(run: RunRecord, output: RunOutput): Promise<void> {
    if (this.failSave) throw new Error('DynamoDB is unreachable');
    this.saved.push({ run, output });
  }

  async appendIteration(_taskId: string, record: IterationRecord): Promise<void> {
    this.journal.push(record);
  }

  async saveCheckpoint(_taskId: string, checkpoint: Checkpoint): Promise<void> {
    this.checkpoint = checkpoint;
  }

  async clearCheckpoint(): Promise<void> {
    this.checkpoint = null;
  }

  async pauseReason(): Promise<string | null> {
    return this.pause(this.journal);
  }
}

async function run(task: TaskInput | null, mode: 'plan' | 'execute', store = new MemoryRunnerStore(task), cfg = config()) {
  const outcome = await runTask({
    taskId: 'task-1',
    mode,
    config: cfg,
    store,
    workDir: join(dir, 'work'),
    env: { ...process.env, FTE_STAND_IN_STATE: join(dir, 'state'), FTE_STAND_IN_LOG: agentLog },
  });
  return { outcome, store };
}

interface AgentRun {
  promptSha256: string;
  argv: string[];
  sessionId: string;
}

function agentRuns(): AgentRun[] {
  if (!existsSync(agentLog)) return [];
  return readFileSync(agentLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AgentRun);
}

/** The value of a flag in an agent run's argv, or undefined. */
function flag(agentRun: AgentRun | undefined, name: string): string | undefined {
  const argv = agentRun?.argv ?? [];
  const at = argv.indexOf(name);
  return at < 0 ? undefined : argv[at + 1];
}

const codesOfClasses = (): number[] => ERROR_CLASSES.map(runnerExitCode);

describe('exit codes', () => {
  it('give every error class its own code above the base, and nothing else a class', () => {
    const codes = ERROR_CLASSES.map(runnerExitCode);
    expect(new Set(codes).size).toBe(ERROR_CLASSES.length);
    for (const errorClass of ERROR_CLASSES) expect(errorClassOfExitCode(runnerExitCode(errorClass))).toBe(errorClass);
    for (const code of [0, 1, 2, RUNNER_EXIT_BASE - 1, RUNNER_EXIT_BASE + ERROR_CLASSES.length, 137]) {
      expect(errorClassOfExitCode(code)).toBeNull();
    }
  });

  it('keep the pause code apart from every class and from the codes Node exits with itself', () => {
    expect(codesOfClasses()).not.toContain(RUNNER_PAUSED_EXIT_CODE);
    expect(errorClassOfExitCode(RUNNER_PAUSED_EXIT_CODE)).toBeNull();
    expect(RUNNER_PAUSED_EXIT_CODE).toBeGreaterThan(14);
    expect(RUNNER_PAUSED_EXIT_CODE).toBeLessThan(126);
  });
});

describe('runTask with the stand-in agent', () => {
  it('plans under the planning permission mode, exits 0 and writes the plan back', async () => {
    const { outcome, store } = await run({ record: PLANNING, body: 'Tidy it.\nstand-in: cost 0.5', plan: null }, 'plan');
    expect(outcome).toMatchObject({ exitCode: 0, errorClass: null });
    expect(store.saved).toHaveLength(1);
    const [saved] = store.saved;
    expect(saved?.run).toMatchObject({ taskId: 'task-1', attempt: 1, kind: 'plan', ok: true, errorClass: null, exitCode: 0, costUsd: 0.5, numTurns: 1 });
    expect(saved?.output.result).toMatch(/^Plan for /);
    expect(agentRuns()[0]?.argv).toEqual(['-p', '<prompt>', '--output-format', 'json', '--permission-mode', 'plan']);
  });

  it('executes with the approved plan in the prompt', async () => {
    const plan = '1. Edit README.md\n2. Nothing else';
    const body = 'Tidy it.';
    const { outcome } = await run({ record: APPROVED_EXECUTING, body, plan }, 'execute');
    expect(outcome.exitCode).toBe(0);
    const expected = buildPrompt({
      kind: 'execute',
      task: { id: 'task-1', title: NEW_TASK.title, body, type: 'general' },
      notePath: join(dir, 'work', 'task-1.md'),
      plan,
      // An execution is the persistence loop: its first prompt asks for the completion promise, as locally.
      completionPromise: defaultConfig().orchestrator.completion_promise,
    });
    expect(agentRuns()[0]?.promptSha256).toBe(createHash('sha256').update(expected).digest('hex'));
  });

  const failures: readonly [string, ErrorClass][] = [
    ['fail', 'agent_error'],
    ['error-exit-0', 'agent_error'],
    ['garbage', 'bad_output'],
    ['crash', 'crash'],
    ['rate-limit', 'rate_limit'],
    ['over-budget', 'budget_exceeded'],
  ];
  for (const [directive, errorClass] of failures) {
    it(`judges "${directive}" as ${errorClass} with the local success rule, and exits with its code`, async () => {
      const { outcome, store } = await run({ record: EXECUTING, body: `stand-in: ${directive}`, plan: null }, 'execute');
      expect(outcome).toMatchObject({ exitCode: runnerExitCode(errorClass), errorClass });
      expect(store.saved[0]?.run).toMatchObject({ ok: false, errorClass, kind: 'execute' });
    });
  }

  it('refuses a task that is gone or no longer in the run\'s state, without starting the agent', async () => {
    expect((await run(null, 'execute')).outcome).toMatchObject({ exitCode: runnerExitCode('invalid_task'), run: null });
    const cancelled = record([{ type: 'execute' }, { type: 'cancel', by: 'ops' }]);
    expect((await run({ record: cancelled, body: '', plan: null }, 'execute')).outcome).toMatchObject({
      exitCode: runnerExitCode('cancelled'),
      errorClass: 'cancelled',
    });
    expect((await run({ record: EXECUTING, body: '', plan: null }, 'plan')).outcome.errorClass).toBe('invalid_task');
    expect(agentRuns()).toEqual([]);
  });

  it('refuses to execute a task that needs approval without an approved plan', async () => {
    const { outcome, store } = await run({ record: APPROVED_EXECUTING, body: 'Tidy it.', plan: null }, 'execute');
    expect(outcome).toMatchObject({ exitCode: runnerExitCode('invalid_task'), message: expect.stringMatching(/no approved plan/) });
    expect(store.saved).toEqual([]);
    expect(agentRuns()).toEqual([]);
  });

  it('fails a plan it could not save, but keeps an execution\'s outcome', async () => {
    const planStore = new MemoryRunnerStore({ record: PLANNING, body: 'x', plan: null });
    planStore.failSave = true;
    expect((await run(null, 'plan', planStore)).outcome).toMatchObject({ exitCode: runnerExitCode('crash'), errorClass: 'crash' });
    const executeStore = new MemoryRunnerStore({ record: EXECUTING, body: 'x', plan: null });
    executeStore.failSave = true;
    expect((await run(null, 'execute', executeStore)).outcome).toMatchObject({ exitCode: 0 });
  });
});

describe('the persistence loop in the runner (the same loop as locally)', () => {
  it('resumes the session until the completion promise: promise on iteration 3 → exit 0 after exactly 3 runs', async () => {
    const { outcome, store } = await run({ record: EXECUTING, body: 'Write it.\nstand-in: promise-on 3', plan: null }, 'execute');
    expect(outcome).toMatchObject({ exitCode: 0, errorClass: null, pausedFor: null });
    const calls = agentRuns();
    expect(calls).toHaveLength(3);
    for (const call of calls.slice(1)) expect(flag(call, '--resume')).toBe(calls[0]?.sessionId);
    expect(store.journal.map((i) => [i.attempt, i.iteration, i.promiseSeen])).toEqual([
      [1, 1, false],
      [1, 2, false],
      [1, 3, true],
    ]);
    // One run record for the attempt, carrying every iteration's cost and turns.
    expect(store.saved).toHaveLength(1);
    expect(store.saved[0]?.run).toMatchObject({ attempt: 1, kind: 'execute', ok: true, numTurns: 1 + 2 + 3, sessionId: calls[0]?.sessionId });
    expect(store.saved[0]?.run.costUsd).toBeCloseTo(3 * 0.0123, 10);
    expect(store.saved[0]?.output.result).toMatch(/<promise>DONE<\/promise>/);
    // The loop is over: nothing for a later attempt to resume.
    expect(store.checkpoint).toBeNull();
  });

  it('fails the attempt with iterations_exhausted after orchestrator.max_iterations, and exits with its code', async () => {
    const task = { record: EXECUTING, body: 'stand-in: promise-on 999', plan: null };
    const { outcome, store } = await run(task, 'execute', new MemoryRunnerStore(task), config({ maxIterations: 3 }));
    expect(outcome).toMatchObject({ exitCode: runnerExitCode('iterations_exhausted'), errorClass: 'iterations_exhausted' });
    expect(agentRuns()).toHaveLength(3);
    expect(store.saved[0]?.run).toMatchObject({ ok: false, errorClass: 'iterations_exhausted' });
    // A retry starts over: an exhausted loop is not resumed.
    expect(store.checkpoint).toBeNull();
  });

  it('ends with budget_exceeded when the per-task budget is crossed mid-loop, each run capped at what is left', async () => {
    const task = { record: EXECUTING, body: 'stand-in: promise-on 10\nstand-in: cost 0.5', plan: null };
    const { outcome, store } = await run(task, 'execute', new MemoryRunnerStore(task), config({ perTaskUsd: 1.2 }));
    expect(outcome).toMatchObject({ exitCode: runnerExitCode('budget_exceeded'), errorClass: 'budget_exceeded' });
    const budgets = agentRuns().map((c) => Number(flag(c, '--max-budget-usd')));
    expect(budgets).toHaveLength(3); // 0.5, 1.0, then 1.5 ≥ 1.2: no fourth run
    expect(budgets[0]).toBeCloseTo(1.2, 10);
    expect(budgets[1]).toBeCloseTo(0.7, 10);
    expect(budgets[2]).toBeCloseTo(0.2, 10);
    expect(store.saved[0]?.run.costUsd).toBeCloseTo(1.5, 10);
  });

  it('counts what earlier attempts (and the plan) cost from the stored runs against the per-task budget', async () => {
    const earlier = (attempt: number, kind: 'plan' | 'execute', costUsd: number): RunRecord => ({
      taskId: 'task-1', attempt, kind, startedAt: new Date(0), endedAt: new Date(1), ok: false, errorClass: 'agent_error',
      exitCode: 1, durationMs: 1, costUsd, numTurns: 1, sessionId: null, logPath: null,
    });
    const attempt2 = { ...EXECUTING, attempts: 2 };
    const task = { record: attempt2, body: 'stand-in: promise-on 10\nstand-in: cost 0.5', plan: null, runs: [earlier(1, 'plan', 0.4), earlier(1, 'execute', 0.6)] };
    const { outcome } = await run(task, 'execute', new MemoryRunnerStore(task), config({ perTaskUsd: 1.2 }));
    expect(outcome.errorClass).toBe('budget_exceeded');
    const calls = agentRuns();
    expect(calls).toHaveLength(1); // $1.00 before this attempt: one run of at most $0.20, then the budget is spent
    expect(Number(flag(calls[0], '--max-budget-usd'))).toBeCloseTo(0.2, 10);

    // Spent before the attempt even starts: no run at all.
    const spent = { ...task, runs: [earlier(1, 'execute', 1.2)] };
    const none = await run(spent, 'execute', new MemoryRunnerStore(spent), config({ perTaskUsd: 1.2 }));
    expect(none.outcome).toMatchObject({ exitCode: runnerExitCode('budget_exceeded'), iterations: [] });
    expect(agentRuns()).toHaveLength(1);
  });

  it('pauses between iterations on the stop flag (pause exit code, checkpoint kept); the next attempt resumes there', async () => {
    const task = { record: EXECUTING, body: 'stand-in: promise-on 3', plan: null };
    const first = new MemoryRunnerStore(task);
    first.pause = (journal) => (journal.length >= 1 ? 'stopped: maintenance' : null);
    const paused = await run(task, 'execute', first);
    expect(paused.outcome).toMatchObject({ exitCode: RUNNER_PAUSED_EXIT_CODE, errorClass: null, pausedFor: 'stopped: maintenance' });
    expect(agentRuns()).toHaveLength(1);
    const session = agentRuns()[0]?.sessionId;
    expect(first.checkpoint).toEqual({ attempt: 1, iteration: 1, sessionId: session });
    expect(first.saved[0]?.run).toMatchObject({ ok: false, errorClass: null, costUsd: 0.0123 });

    // The next attempt (the scheduler restarts the task after resume) goes on at iteration 2 in the same session.
    const second = new MemoryRunnerStore({ ...task, record: { ...EXECUTING, attempts: 2 }, checkpoint: first.checkpoint });
    const resumed = await run(null, 'execute', second);
    expect(resumed.outcome).toMatchObject({ exitCode: 0 });
    expect(second.journal.map((i) => [i.attempt, i.iteration, i.promiseSeen])).toEqual([
      [2, 2, false],
      [2, 3, true],
    ]);
    expect(agentRuns().slice(1).map((c) => flag(c, '--resume'))).toEqual([session, session]);
    expect(second.checkpoint).toBeNull();
  });
});

describe('the runner process environment', () => {
  const env = {
    TASK_ID: 'task-1',
    MODE: 'plan',
    FTE_TABLE_NAME: 'tasks',
    [CONFIG_JSON_ENV]: JSON.stringify(defaultConfig()),
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/secret',
    ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/x',
    ANTHROPIC_API_KEY: 'sk-test',
    PATH: '/usr/bin',
  };

  it('is read and validated, naming what is missing', () => {
    expect(setupFromEnv(env)).toMatchObject({ taskId: 'task-1', mode: 'plan', tableName: 'tasks', workDir: '/home/node/work' });
    expect(() => setupFromEnv({ ...env, MODE: 'run' })).toThrow(RunnerSetupError);
    expect(() => setupFromEnv({ ...env, TASK_ID: '' })).toThrow(/TASK_ID/);
    expect(() => setupFromEnv({ ...env, [CONFIG_JSON_ENV]: '{"orchestrator":{"max_concurrent_tasks":0}}' })).toThrow(
      /orchestrator\.max_concurrent_tasks/,
    );
    expect(setupFromEnv({ ...env, FTE_CLAUDE_COMMAND: '/opt/fte/claude-as-agent' }).config.orchestrator.claude_command).toBe(
      '/opt/fte/claude-as-agent',
    );
  });

  it('hides the task role from Claude when Claude uses an API key, and only fte\'s settings with Bedrock', () => {
    const forAgent = agentEnv(env);
    expect(Object.keys(forAgent).sort()).toEqual(['ANTHROPIC_API_KEY', 'MODE', 'PATH', 'TASK_ID']);
    const bedrock = agentEnv({ ...env, CLAUDE_CODE_USE_BEDROCK: '1' });
    expect(bedrock['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI']).toBe('/v2/credentials/secret');
    expect(bedrock[CONFIG_JSON_ENV]).toBeUndefined();
  });
});

describe('against DynamoDB (dynalite)', () => {
  let dynamo: LocalDynamo;
  let outdir: string;
  let context: string;

  beforeAll(async () => {
    dynamo = await startLocalDynamo();
    outdir = mkdtempSync(join(tmpdir(), 'fte-runner-image-'));
    context = stageRunnerBuildContext(outdir);
  }, 60_000);

  afterAll(async () => {
    await dynamo?.close();
    if (outdir !== undefined) rmSync(outdir, { recursive: true, force: true });
  });

  async function taskIn(state: TaskState, body: string): Promise<{ tableName: string; store: DynamoTaskStore }> {
    const tableName = await dynamo.createTable();
    const store = new DynamoTaskStore({ client: dynamo.doc, tableName });
    await store.createWithBody({ ...NEW_TASK, approvalRequired: state === 'planning' }, body, NEW_TASK.created);
    await store.apply('task-1', { type: state === 'planning' ? 'plan' : 'execute' }, new Date('2026-01-01T01:00:00Z'));
    return { tableName, store };
  }

  it('writes a run item with the allowed attributes only, and adds its cost to the task', async () => {
    const { tableName, store } = await taskIn('executing', 'stand-in: cost 0.2');
    const outcome = await runTask({
      taskId: 'task-1',
      mode: 'execute',
      config: config(),
      store: new DynamoRunnerStore(dynamo.doc, tableName),
      workDir: join(dir, 'work'),
      env: { ...process.env, FTE_STAND_IN_STATE: join(dir, 'state') },
    });
    expect(outcome.exitCode).toBe(0);
    const item = (await dynamo.doc.send(new GetCommand({ TableName: tableName, Key: runKey('task-1', 1, 'execute') }))).Item;
    expect(Object.keys(item ?? {}).sort()).toEqual([...RUNNER_RUN_ITEM_ATTRIBUTES].sort());
    expect(await store.runs('task-1')).toEqual([expect.objectContaining({ attempt: 1, kind: 'execute', ok: true, costUsd: 0.2 })]);
    expect((await store.get('task-1'))?.costUsd).toBeCloseTo(0.2, 10);
    // The cost write moved the version, so a transition computed before it would be refused as stale.
    expect((await store.get('task-1'))?.version).toBe(3);
  });

  it('journals iterations and the checkpoint as items the role may write, and pauses on the stop flag or the budget block', async () => {
    const { tableName, store } = await taskIn('executing', 'stand-in: promise-on 2');
    const runnerStore = new DynamoRunnerStore(dynamo.doc, tableName);
    const attempt = (): Promise<{ exitCode: number }> =>
      runTask({
        taskId: 'task-1',
        mode: 'execute',
        config: config(),
        store: runnerStore,
        workDir: join(dir, 'work'),
        env: { ...process.env, FTE_STAND_IN_STATE: join(dir, 'state') },
      });
    // Read between iterations only: the first iteration of a fresh attempt runs, then the loop pauses.
    await store.setStop(true, 'maintenance', new Date('2026-01-01T01:01:00Z'));
    expect(await attempt()).toMatchObject({ exitCode: RUNNER_PAUSED_EXIT_CODE });
    expect(await runnerStore.pauseReason()).toBe('stopped: maintenance');

    const item = async (key: { pk: string; sk: string }) =>
      (await dynamo.doc.send(new GetCommand({ TableName: tableName, Key: key }))).Item ?? {};
    const iteration = await item(iterationKey('task-1', 1, 1));
    const checkpoint = await item(checkpointKey('task-1'));
    expect(Object.keys(iteration).sort()).toEqual([...RUNNER_ITERATION_ITEM_ATTRIBUTES].sort());
    expect(Object.keys(checkpoint).sort()).toEqual([...RUNNER_CHECKPOINT_ITEM_ATTRIBUTES].sort());
    for (const key of [...Object.keys(iteration), ...Object.keys(checkpoint)]) expect(RUNNER_PUT_ITEM_ATTRIBUTES).toContain(key);
    // Only the two new attribute names were added to what the role may put.
    expect(RUNNER_PUT_ITEM_ATTRIBUTES.filter((a) => !(RUNNER_RUN_ITEM_ATTRIBUTES as readonly string[]).includes(a)).sort()).toEqual([
      'iteration',
      'promiseSeen',
    ]);
    const saved = await store.checkpoint('task-1');
    expect(saved).toMatchObject({ attempt: 1, iteration: 1 });

    // The daily-budget block the scheduler records pauses a loop too.
    await store.setStop(false, null, new Date('2026-01-01T01:02:00Z'));
    expect(await runnerStore.pauseReason()).toBeNull();
    const block = {
      exhausted: 'daily budget exhausted: $5.00 spent in the last 24 h of $5.00 (budget.daily_usd)',
      exhaustedTypes: {},
      spentUsd: 5,
      dailyUsd: 5,
      freesAt: null,
      checkedAt: new Date('2026-01-01T01:02:00Z'),
    };
    await store.recordBudget(block);
    expect(await runnerStore.pauseReason()).toBe(block.exhausted);
    await store.recordBudget(null);

    // The state machine records the pause (the runner's run goes on the history event), the scheduler starts the
    // task again, and the new attempt resumes at iteration 2 in the saved session.
    const paused = await store.applyStepEndingRun('task-1', null, { type: 'interrupt', reason: 'paused' }, new Date('2026-01-01T01:03:00Z'));
    expect(paused.run).toMatchObject({ stored: true, run: { attempt: 1, costUsd: 0.0123 } });
    await store.apply('task-1', { type: 'execute' }, new Date('2026-01-01T01:04:00Z'));
    expect(await attempt()).toMatchObject({ exitCode: 0 });
    expect((await store.iterations('task-1')).map((i) => [i.attempt, i.iteration, i.sessionId === saved?.sessionId, i.promiseSeen])).toEqual([
      [1, 1, true, false],
      [2, 2, true, true],
    ]);
    expect(await store.checkpoint('task-1')).toBeNull();
    expect(Object.keys(await item(checkpointKey('task-1'))).sort()).toEqual([...RUNNER_CHECKPOINT_ITEM_ATTRIBUTES].sort());
    expect((await store.get('task-1'))?.costUsd).toBeCloseTo(2 * 0.0123, 10);
  });

  /** Run the bundled runner.mjs of the image as its own process, as ECS would. */
  function runBundled(tableName: string, mode: 'plan' | 'execute'): Promise<{ code: number | null; stdout: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [join(context, 'runner.mjs')], {
        env: {
          PATH: process.env['PATH'],
          TASK_ID: 'task-1',
          MODE: mode,
          FTE_TABLE_NAME: tableName,
          [CONFIG_JSON_ENV]: JSON.stringify(defaultConfig()),
          FTE_CLAUDE_COMMAND: STAND_IN,
          FTE_WORK_DIR: join(dir, 'work'),
          FTE_STAND_IN_STATE: join(dir, 'state'),
          AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'local',
          AWS_SECRET_ACCESS_KEY: 'local',
          AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout }));
    });
  }

  it('bundled as in the image, plans a task and exits 0; a spent budget exits with its code', async () => {
    const planning = await taskIn('planning', 'Tidy it.');
    const ok = await runBundled(planning.tableName, 'plan');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('"msg":"runner exiting"');
    expect(await planning.store.runs('task-1')).toEqual([expect.objectContaining({ kind: 'plan', ok: true, costUsd: 0.0123 })]);

    const broke = await taskIn('executing', 'stand-in: over-budget');
    expect((await runBundled(broke.tableName, 'execute')).code).toBe(runnerExitCode('budget_exceeded'));
    expect(await broke.store.runs('task-1')).toEqual([expect.objectContaining({ ok: false, errorClass: 'budget_exceeded' })]);
  }, 30_000);
});
