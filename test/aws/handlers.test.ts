import { Logger } from '@aws-lambda-powertools/logger';
import { ExecutionAlreadyExists, SFNClient, SFNServiceException, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { StartExecutionCommandInput } from '@aws-sdk/client-sfn';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoTaskStore, NotAwaitingApprovalError } from '../../lib/aws/dynamodb-store.ts';
import { runKey } from '../../lib/aws/table-design.ts';
import { FTE_METRICS } from '../../lib/cloud/monitoring.ts';
import { validateConfig } from '../../lib/core/config.ts';
import type { Config, ConfigInput } from '../../lib/core/config.ts';
import { ConfigError } from '../../lib/core/errors.ts';
import { InvalidTransitionError } from '../../lib/core/state-machine.ts';
import { StoreError } from '../../lib/core/store-error.ts';
import { TaskNotFoundError } from '../../lib/core/store.ts';
import type { NewTask } from '../../lib/core/store.ts';
import { CLOUD_MAX_NOTE_BYTES, ingestBatch, ingestDocument } from '../../lambda/ingest.ts';
import type { IngestDeps } from '../../lambda/ingest.ts';
import { METRICS, createMetrics } from '../../lambda/observability.ts';
import { LambdaEnvError, loadConfig } from '../../lambda/runtime.ts';
import {
  DISPATCH_WINDOW_MS,
  ORPHANED_RETRY_GRACE_MS,
  SchedulerStartError,
  executionName,
  runScheduler,
} from '../../lambda/scheduler.ts';
import type { SchedulerDeps } from '../../lambda/scheduler.ts';
import { StepInputError } from '../../lambda/step-contract.ts';
import type { ExecutionInput, StepAction } from '../../lambda/step-contract.ts';
import { handleStep } from '../../lambda/step.ts';
import type { StepDeps } from '../../lambda/step.ts';
import { startLocalDynamo } from './local-dynamo.ts';
import type { LocalDynamo } from './local-dynamo.ts';

/**
 * The Lambda handlers against a real table (dynalite): ingest, scheduler and step. Only Step Functions is mocked, and
 * only for the scheduler, to see exactly which executions it starts.
 */

let local: LocalDynamo;
beforeAll(async () => {
  local = await startLocalDynamo();
});
afterAll(async () => {
  await local.close();
});

const t0 = new Date('2026-11-25T10:00:00.123Z');
const at = (ms: number): Date => new Date(t0.getTime() + ms);
const EVERYTHING = { since: new Date(0), until: new Date(8.64e15) };
const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:fte-tasks';

const silent = (): Logger => new Logger({ serviceName: 'test', logLevel: 'SILENT' });

function config(overrides: ConfigInput = {}): Config {
  return validateConfig(overrides);
}

function note(frontmatter: Record<string, string>, body = 'Please look into it.'): string {
  const lines = Object.entries(frontmatter).map(([k, v]) => `${k}: ${v}`);
  return `---\n${lines.join('\n')}\n---\n${body}\n`;
}

function newTask(id: string, overrides: Partial<NewTask> = {}): NewTask {
  return {
    id, title: `Task ${id}`, type: 'code', sender: null, urgency: 3, deadline: null, created: at(-60_000),
    approvalRequired: false, approvalReasons: [], ...overrides,
  };
}

// Every EMF line the handlers print is kept here instead of cluttering the test output; other output passes through.
const emfLines: string[] = [];
const realWrite = process.stdout.write.bind(process.stdout);
beforeAll(() => {
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (text.includes('"_aws"')) {
      emfLines.push(text);
      return true;
    }
    return realWrite(chunk);
  });
});
afterAll(() => {
  vi.restoreAllMocks();
});

/** The EMF documents Powertools Metrics printed while `fn` ran. */
async function captureEmf<T>(fn: () => Promise<T>): Promise<{ result: T | undefined; error: unknown; emf: Record<string, unknown>[] }> {
  const start = emfLines.length;
  try {
    const result = await fn();
    return { result, error: undefined, emf: parseEmf(emfLines.slice(start)) };
  } catch (error) {
    return { result: undefined, error, emf: parseEmf(emfLines.slice(start)) };
  }
}

function parseEmf(lines: string[]): Record<string, unknown>[] {
  return lines
    .flatMap((l) => l.split('\n'))
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((d) => '_aws' in d);
}

/** The value of metric `name` across documents (summed), or undefined when never emitted. */
function metricValue(emf: Record<string, unknown>[], name: string): number | undefined {
  const values = emf.flatMap((d) => {
    const v = d[name];
    return typeof v === 'number' ? [v] : Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : [];
  });
  return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0);
}

let tableName: string;
let store: DynamoTaskStore;

beforeEach(async () => {
  tableName = await local.createTable();
  store = new DynamoTaskStore({ client: local.client, tableName });
});

afterEach(async () => {
  await local.deleteTable(tableName);
});

// ---------------------------------------------------------------------------------------------------------------------

describe('ingest', () => {
  let deps: IngestDeps;
  beforeEach(() => {
    deps = { store, config: config(), logger: silent(), metrics: createMetrics('test'), now: () => t0 };
  });

  function sqs(...bodies: string[]): SQSEvent {
    return {
      Records: bodies.map((body, i) => ({ messageId: `m${i}`, body }) as SQSRecord),
    };
  }

  it('admits a valid document with its markdown, deciding approval by the core policy', async () => {
    const markdown = note({ title: 'Fix the build', urgency: 'high', type: 'code' });
    const { result, emf } = await captureEmf(() => ingestBatch(deps, sqs(JSON.stringify({ id: 'fix-build', markdown }))));
    expect(result).toEqual({ batchItemFailures: [] });
    expect(await store.get('fix-build')).toMatchObject({
      state: 'needs_action', title: 'Fix the build', urgency: 4, type: 'code', approvalRequired: false, version: 1,
    });
    expect(await store.getTaskBody('fix-build')).toBe(markdown);
    expect(metricValue(emf, METRICS.ingested)).toBe(1);

    const wire = note({ title: 'Wire the deposit', type: 'payment' }, 'Send the wire transfer today.');
    expect(await ingestDocument(deps, { id: 'pay', markdown: wire }, 'api:1')).toEqual({
      status: 'created', taskId: 'pay', approvalRequired: true,
    });
    const pay = await store.get('pay');
    expect(pay?.approvalRequired).toBe(true);
    expect(pay?.approvalReasons.join(' ')).toMatch(/payment/);
  });

  it('counts a task\'s age from admission, as the local runtime does: a back-dated `created` does not jump the queue', async () => {
    const markdown = note({ title: 'Old news', created: '2020-01-01T00:00:00Z' });
    await ingestDocument(deps, { id: 'back-dated', markdown }, 'sqs:a');
    expect((await store.get('back-dated'))?.created.toISOString()).toBe(t0.toISOString());
  });

  it('is idempotent on the id: a redelivered or reused id changes nothing', async () => {
    const first = note({ title: 'First' });
    await ingestDocument(deps, { id: 't1', markdown: first }, 'sqs:a');
    const before = await store.get('t1');
    expect(await ingestDocument(deps, { id: 't1', markdown: note({ title: 'Second', urgency: 'critical' }) }, 'sqs:b'))
      .toEqual({ status: 'duplicate', taskId: 't1' });
    expect(await store.get('t1')).toEqual(before);
    expect(await store.getTaskBody('t1')).toBe(first);
  });

  it('quarantines malformed documents, consuming their messages instead of retrying them', async () => {
    const event = sqs(
      'not json at all',
      JSON.stringify({ id: 'no-markdown' }),
      JSON.stringify({ id: '../etc/passwd', markdown: 'x' }),
      JSON.stringify({ id: 'bad-yaml', markdown: '---\ntitle: [unclosed\n---\nbody' }),
      JSON.stringify({ id: 'huge', markdown: `# Big\n${'x'.repeat(CLOUD_MAX_NOTE_BYTES)}` }),
      JSON.stringify({ id: 'bad-field', markdown: note({ urgency: 'sometime-ish' }) }),
      JSON.stringify({ id: 'good', markdown: note({ title: 'Fine' }) }),
    );
    const { result, emf } = await captureEmf(() => ingestBatch(deps, event));
    expect(result).toEqual({ batchItemFailures: [] });
    expect((await store.list()).map((t) => t.id)).toEqual(['good']);
    expect(metricValue(emf, METRICS.quarantined)).toBe(6);

    expect(await store.getQuarantined('sqs:m0')).toMatchObject({ reason: 'not_json', excerpt: 'not json at all' });
    expect(await store.getQuarantined('no-markdown')).toMatchObject({ reason: 'invalid_document', field: 'markdown' });
    expect(await store.getQuarantined('bad-yaml')).toMatchObject({ reason: 'bad_yaml' });
    expect(await store.getQuarantined('huge')).toMatchObject({ reason: 'too_large' });
    expect(await store.getQuarantined('bad-field')).toMatchObject({ reason: 'invalid_field', field: 'urgency' });
    const invalidId = await ingestDocument(deps, { id: '../etc/passwd', markdown: 'x' }, 'api:2');
    expect(invalidId).toMatchObject({ status: 'quarantined', reason: 'invalid_id', field: 'id' });
    expect(invalidId.status === 'quarantined' && invalidId.quarantineId).toMatch(/^invalid-id:[0-9a-f]{32}$/);
  });

  it('reports only store failures as batch item failures, so SQS retries exactly those messages', async () => {
    const broken: IngestDeps = { ...deps, store: new DynamoTaskStore({ client: local.client, tableName: 'missing-table' }) };
    const event = sqs(JSON.stringify({ id: 'a', markdown: note({ title: 'A' }) }), 'not json');
    const result = await ingestBatch(broken, event);
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'm0' }, { itemIdentifier: 'm1' }] });
    await expect(ingestDocument(broken, { id: 'a', markdown: 'x' }, 'api:3')).rejects.toBeInstanceOf(StoreError);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe('step', () => {
  let clock: Date;
  let deps: StepDeps;
  beforeEach(() => {
    clock = at(1_000);
    deps = {
      store,
      config: config({ retry: { max_attempts: 3, initial_backoff: 60, jitter: 'none', per_type: { deploy: { max_attempts: 1 } } } }),
      logger: silent(),
      metrics: createMetrics('test'),
      now: () => clock,
      random: () => 0.5,
    };
  });

  const step = (action: StepAction) => handleStep(deps, action);

  it('records transitions from JSON events and returns the new state', async () => {
    await store.create(newTask('t1'), t0);
    expect(await step({ action: 'transition', taskId: 't1', event: { type: 'execute' } })).toEqual({
      taskId: 't1', state: 'executing', attempts: 1, version: 2,
    });
    const retryAt = at(90_123).toISOString();
    await step({
      action: 'transition', taskId: 't1',
      event: { type: 'fail', error: { class: 'timeout', message: 'slow' }, retryAt },
    });
    expect((await store.get('t1'))?.retryAt?.toISOString()).toBe(retryAt);
  });

  it('throws the named errors a state machine Catch matches', async () => {
    await store.create(newTask('t1'), t0);
    const nameOf = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof Error ? e.name : 'non-error'));
    expect(await nameOf(step({ action: 'transition', taskId: 't1', event: { type: 'succeed' } }))).toBe('InvalidTransitionError');
    expect(await nameOf(step({ action: 'transition', taskId: 'ghost', event: { type: 'execute' } }))).toBe('TaskNotFoundError');
    expect(await nameOf(handleStep(deps, { action: 'transition', taskId: 't1', event: { type: 'explode' } }))).toBe('StepInputError');
    expect(await nameOf(handleStep(deps, { action: 'launch' }))).toBe('StepInputError');
    await expect(handleStep(deps, {
      action: 'transition', taskId: 't1', event: { type: 'fail', error: { class: 'timeout', message: 'x' }, retryAt: 'tuesday' },
    })).rejects.toBeInstanceOf(StepInputError);
  });

  it('records the run an event ends, with its cost, and publishes run and outcome metrics', async () => {
    await store.create(newTask('t1'), t0);
    await step({ action: 'transition', taskId: 't1', event: { type: 'execute' } });
    const run = {
      taskId: 't1', attempt: 1, kind: 'execute', startedAt: at(1_001).toISOString(), endedAt: at(61_002).toISOString(),
      ok: true, errorClass: null, exitCode: 0, durationMs: 60_001, costUsd: 0.42, numTurns: 3, sessionId: 's', logPath: null,
    } as const;
    const { result, emf } = await captureEmf(() =>
      step({ action: 'transition', taskId: 't1', event: { type: 'succeed' }, run }),
    );
    expect(result).toMatchObject({ state: 'done' });
    expect((await store.get('t1'))?.costUsd).toBe(0.42);
    expect((await store.runs('t1'))[0]).toMatchObject({ durationMs: 60_001, startedAt: at(1_001) });
    expect(metricValue(emf, METRICS.succeeded)).toBe(1);
    expect(metricValue(emf, METRICS.runDuration)).toBe(60_001);
    expect(metricValue(emf, METRICS.runCost)).toBe(0.42);
  });

  it('replays a retried step with the same step key instead of failing it, until someone else writes', async () => {
    await store.create(newTask('t1'), t0);
    const action: StepAction = { action: 'transition', taskId: 't1', event: { type: 'execute' }, stepKey: 'exec-1#RecordExecute#t1' };
    const first = await step(action);
    expect(await step(action)).toEqual(first);
    expect(await store.history(EVERYTHING)).toHaveLength(1);
    // Without the key the duplicate is what it is: a transition executing does not have.
    await expect(step({ action: 'transition', taskId: 't1', event: { type: 'execute' } })).rejects.toBeInstanceOf(InvalidTransitionError);
    await store.apply('t1', { type: 'cancel', by: 'ops' }, at(2_000));
    await expect(step(action)).rejects.toBeInstanceOf(InvalidTransitionError);
  });

  it('reads the stop flag', async () => {
    expect(await step({ action: 'check_stop' })).toEqual({ stopped: false });
    await store.setStop(true, 'maintenance', t0);
    expect(await step({ action: 'check_stop' })).toEqual({ stopped: true, reason: 'stopped: maintenance' });
  });

  it('stops before an execution while the scheduler finds the daily budget, or the task type\'s, spent', async () => {
    await store.create(newTask('t1', { type: 'research' }), t0);
    await store.create(newTask('t2', { type: 'code' }), t0);
    const block = {
      exhausted: null,
      exhaustedTypes: { research: 'daily budget of type research exhausted: $2.00 of $2.00 (budget.per_type_daily_usd.research)' },
      spentUsd: 2,
      dailyUsd: 10,
      freesAt: at(86_400_000),
      checkedAt: t0,
    };
    await store.recordBudget(block);
    expect(await step({ action: 'check_stop', taskId: 't1' })).toEqual({ stopped: true, reason: block.exhaustedTypes.research });
    expect(await step({ action: 'check_stop', taskId: 't2' })).toEqual({ stopped: false });
    const daily = 'daily budget exhausted: $10.00 spent in the last 24 h of $10.00 (budget.daily_usd)';
    await store.recordBudget({ ...block, exhausted: daily });
    expect(await step({ action: 'check_stop', taskId: 't2' })).toEqual({ stopped: true, reason: daily });
    expect(await step({ action: 'check_stop' })).toEqual({ stopped: true, reason: daily });
  });

  it('puts the run the runner stored on the history event that ends it, without writing it again or counting it twice', async () => {
    await store.create(newTask('t1'), t0);
    await step({ action: 'transition', taskId: 't1', event: { type: 'execute' } });
    const run = {
      taskId: 't1', attempt: 1, kind: 'execute', startedAt: at(1_000), endedAt: at(61_000), ok: true, errorClass: null,
      exitCode: 0, durationMs: 60_000, costUsd: 0.3, numTurns: 4, sessionId: 's', logPath: null,
    } as const;
    // What the Fargate runner does: the run with its result text, and its cost added to the task.
    await store.recordRun(run, { result: 'the report', message: 'completion promise seen' });
    const { result, emf } = await captureEmf(() =>
      step({ action: 'transition', taskId: 't1', event: { type: 'succeed' }, stepKey: 'exec#RecordSucceed#1' }),
    );
    expect(result).toMatchObject({ state: 'done' });
    expect((await store.get('t1'))?.costUsd).toBeCloseTo(0.3, 10);
    const ended = (await store.history(EVERYTHING)).at(-1);
    expect(ended).toMatchObject({ event: 'succeed', costUsd: 0.3, durationMs: 60_000 });
    expect(metricValue(emf, METRICS.runCost)).toBe(0.3);
    // The run item is the runner's, result text included.
    const item = await local.doc.send(new GetCommand({ TableName: tableName, Key: runKey('t1', 1, 'execute') }));
    expect(item.Item?.['result']).toBe('the report');
  });

  it('rebuilds the run of a killed container from its journaled iterations, so its cost counts', async () => {
    await store.create(newTask('t1'), t0);
    await step({ action: 'transition', taskId: 't1', event: { type: 'execute' } });
    const iteration = (n: number) => ({
      attempt: 1, iteration: n, startedAt: at(n * 1_000).toISOString(), endedAt: at(n * 1_000 + 500).toISOString(),
      durationMs: 500, costUsd: 0.25, numTurns: 2, sessionId: 'sess', ok: true, errorClass: null, promiseSeen: false,
    });
    await store.appendIteration('t1', iteration(1));
    await store.appendIteration('t1', iteration(2));
    const error = { class: 'crash', message: 'the runner container exited with code 137' } as const;
    await step({ action: 'transition', taskId: 't1', event: { type: 'fail', error, retryAt: at(120_000).toISOString() } });
    expect(await store.runs('t1')).toEqual([
      expect.objectContaining({ attempt: 1, kind: 'execute', ok: false, errorClass: 'crash', costUsd: 0.5, numTurns: 4, sessionId: 'sess', durationMs: 1_000 }),
    ]);
    expect((await store.get('t1'))?.costUsd).toBeCloseTo(0.5, 10);
    expect((await store.history(EVERYTHING)).at(-1)).toMatchObject({ event: 'fail', costUsd: 0.5, errorClass: 'crash' });
  });

  it('stores the approval token of a pending approval, and refuses one for a task not waiting', async () => {
    await store.create(newTask('t1', { approvalRequired: true }), t0);
    await expect(step({ action: 'await_approval', taskId: 't1', token: 'tok' })).rejects.toBeInstanceOf(NotAwaitingApprovalError);
    await step({ action: 'transition', taskId: 't1', event: { type: 'plan' } });
    await step({ action: 'transition', taskId: 't1', event: { type: 'plan_ready' } });
    expect(await step({ action: 'await_approval', taskId: 't1', token: 'tok' })).toEqual({ taskId: 't1', tokenStored: true });
    expect(await store.getApprovalToken('t1')).toBe('tok');
  });

  it('decides retries with the core policy and the task type, and the decided event applies cleanly', async () => {
    await store.create(newTask('t1'), t0);
    await step({ action: 'transition', taskId: 't1', event: { type: 'execute' } });
    const timeout = { class: 'timeout', message: 'the run took too long' } as const;

    const decision = await step({ action: 'decide_retry', taskId: 't1', error: timeout });
    expect(decision).toEqual({
      retry: true, waitSeconds: 60,
      event: { type: 'fail', error: timeout, retryAt: new Date(clock.getTime() + 60_000).toISOString() },
    });
    if (!('event' in decision)) throw new Error('expected a decision');
    expect(await step({ action: 'transition', taskId: 't1', event: decision.event })).toMatchObject({ state: 'retry_wait' });
    // The Wait state waits waitSeconds; the retry then is exactly on time, never early.
    clock = new Date(clock.getTime() + 60_000);
    expect(await step({ action: 'transition', taskId: 't1', event: { type: 'retry' } })).toMatchObject({ state: 'needs_action' });

    await step({ action: 'transition', taskId: 't1', event: { type: 'execute' } });
    expect(await step({ action: 'decide_retry', taskId: 't1', error: timeout })).toMatchObject({ retry: true, waitSeconds: 120 });
    await store.apply('t1', { type: 'fail', error: timeout, retryAt: clock }, clock);
    await store.apply('t1', { type: 'retry' }, clock);
    await store.apply('t1', { type: 'execute' }, clock);
    const { result, emf } = await captureEmf(async () => {
      const exhausted = await step({ action: 'decide_retry', taskId: 't1', error: timeout });
      expect(exhausted).toEqual({ retry: false, waitSeconds: 0, event: { type: 'dead_letter', error: timeout } });
      if (!('event' in exhausted)) throw new Error('expected a decision');
      return step({ action: 'transition', taskId: 't1', event: exhausted.event });
    });
    expect(result).toMatchObject({ state: 'failed', attempts: 3 });
    expect(metricValue(emf, METRICS.failed)).toBe(1);
  });

  it('does not retry a non-retryable class, honours per-type settings, and applies jitter', async () => {
    await store.create(newTask('code'), t0);
    await store.create(newTask('deploy', { type: 'deploy' }), t0);
    await store.apply('code', { type: 'execute' }, t0);
    await store.apply('deploy', { type: 'execute' }, t0);
    const invalid = { class: 'invalid_task', message: 'no such repository' } as const;
    expect(await step({ action: 'decide_retry', taskId: 'code', error: invalid })).toMatchObject({ retry: false });
    const crash = { class: 'crash', message: 'x'.repeat(10_000) } as const;
    const deploy = await step({ action: 'decide_retry', taskId: 'deploy', error: crash });
    expect(deploy).toMatchObject({ retry: false, event: { type: 'dead_letter' } });
    expect('event' in deploy && deploy.event.error.message.length).toBe(2_000);

    deps = { ...deps, config: config({ retry: { initial_backoff: 60, jitter: 'full' } }) };
    expect(await step({ action: 'decide_retry', taskId: 'code', error: { class: 'crash', message: 'x' } }))
      .toMatchObject({ retry: true, waitSeconds: 30 });
    await expect(step({ action: 'decide_retry', taskId: 'ghost', error: invalid })).rejects.toBeInstanceOf(TaskNotFoundError);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe('scheduler', () => {
  const sfn = new SFNClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const sfnMock = mockClient(sfn);
  const now = at(3_600_000);
  let deps: SchedulerDeps;

  beforeEach(() => {
    sfnMock.reset();
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE_ARN}:x`, startDate: now });
    deps = {
      store, sfn, stateMachineArn: STATE_MACHINE_ARN, config: config({ orchestrator: { max_concurrent_tasks: 3 } }),
      logger: silent(), metrics: createMetrics('test'), owner: 'scheduler:test',
    };
  });

  const startInputs = (): StartExecutionCommandInput[] =>
    sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
  const executionInputs = (): ExecutionInput[] => startInputs().map((i) => JSON.parse(i.input ?? '') as ExecutionInput);

  it('starts at most cap − running executions, best ranked first, with the execution input the machine reads', async () => {
    await store.create(newTask('low', { urgency: 1 }), t0);
    await store.create(newTask('urgent', { urgency: 5 }), t0);
    await store.create(newTask('gated', { urgency: 4, approvalRequired: true }), t0);
    await store.create(newTask('normal', { urgency: 3 }), t0);
    await store.create(newTask('busy'), t0);
    await store.apply('busy', { type: 'execute' }, t0);

    const result = await runScheduler(deps, now);
    expect(result).toMatchObject({ stopped: false, cap: 3, running: 1, queued: 4 });
    expect(result.started.map((s) => s.taskId)).toEqual(['urgent', 'gated']);
    expect(executionInputs()).toEqual([
      { taskId: 'urgent', attempt: 1, state: 'needs_action', approvalRequired: false, firstEvent: 'execute' },
      { taskId: 'gated', attempt: 1, state: 'needs_action', approvalRequired: true, firstEvent: 'plan' },
    ] satisfies ExecutionInput[]);
    for (const input of startInputs()) {
      expect(input.stateMachineArn).toBe(STATE_MACHINE_ARN);
      expect(input.name).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    }
    expect((await store.control()).heartbeatOwner).toBe('scheduler:test');
  });

  it('honours the stop flag: starts nothing but still beats and reports the queue', async () => {
    await store.create(newTask('t1'), t0);
    await store.setStop(true, 'night', t0);
    const { result, emf } = await captureEmf(() => runScheduler(deps, now));
    expect(result).toMatchObject({ stopped: true, started: [] });
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
    expect((await store.control()).heartbeatAt).toEqual(now);
    expect(metricValue(emf, METRICS.queueDepth)).toBe(1);
  });

  it('uses the concurrency cap on the control item over the configured one', async () => {
    for (const id of ['a', 'b', 'c']) await store.create(newTask(id), t0);
    await store.setConcurrencyCap(1);
    expect((await runScheduler(deps, now)).started).toHaveLength(1);
    sfnMock.resetHistory();
    await store.setConcurrencyCap(0);
    expect((await runScheduler(deps, now)).started).toHaveLength(0);
  });

  it('names executions idempotently and counts ExecutionAlreadyExists as started', async () => {
    await store.create(newTask('t1'), t0);
    const first = await runScheduler(deps, now);
    sfnMock.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    const { result: again, emf } = await captureEmf(() => runScheduler(deps, new Date(now.getTime() + 30_000)));
    expect(again?.started).toEqual([{ ...first.started[0], alreadyExisted: true }]);
    expect(startInputs().map((i) => i.name)).toEqual([first.started[0]?.executionName, first.started[0]?.executionName]);
    expect(metricValue(emf, METRICS.started)).toBe(0);
  });

  it('fails the tick when Step Functions refuses a start for another reason', async () => {
    await store.create(newTask('t1'), t0);
    sfnMock.on(StartExecutionCommand).rejects(
      new SFNServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'rate exceeded', $metadata: {} }),
    );
    const { error, emf } = await captureEmf(() => runScheduler(deps, now));
    expect(error).toBeInstanceOf(SchedulerStartError);
    expect(error).toMatchObject({ code: 'SCHEDULER_START_FAILED', taskId: 't1' });
    expect(metricValue(emf, METRICS.queueDepth)).toBe(1);
  });

  it('takes over a retry_wait task only when its execution is evidently gone', async () => {
    await store.create(newTask('t1'), t0);
    await store.apply('t1', { type: 'execute' }, t0);
    const retryAt = new Date(now.getTime() - ORPHANED_RETRY_GRACE_MS + 1);
    await store.apply('t1', { type: 'fail', error: { class: 'crash', message: 'x' }, retryAt }, t0);
    expect((await runScheduler(deps, now)).started).toEqual([]);
    expect((await store.get('t1'))?.state).toBe('retry_wait');

    const later = new Date(now.getTime() + 1);
    const result = await runScheduler(deps, later);
    expect(result.started.map((s) => s.taskId)).toEqual(['t1']);
    expect(await store.get('t1')).toMatchObject({ state: 'needs_action', attempts: 1 });
    expect(executionInputs()).toEqual([
      { taskId: 't1', attempt: 2, state: 'needs_action', approvalRequired: false, firstEvent: 'execute' },
    ]);
  });

  /** A task that ran and finished at `endedAt` having cost `costUsd`: the cost lands on the history event. */
  async function finished(id: string, costUsd: number, endedAt: Date, type = 'code'): Promise<void> {
    await store.create(newTask(id, { type }), t0);
    const startedAt = new Date(endedAt.getTime() - 60_000);
    await store.apply(id, { type: 'execute' }, startedAt);
    await store.apply(id, { type: 'succeed' }, endedAt, {
      run: {
        taskId: id, attempt: 1, kind: 'execute', startedAt, endedAt, ok: true, errorClass: null, exitCode: 0,
        durationMs: 60_000, costUsd, numTurns: 1, sessionId: null, logPath: null,
      },
    });
  }

  const withBudget = (budget: ConfigInput['budget']): Config => config({ orchestrator: { max_concurrent_tasks: 3 }, budget });

  it('stops dispatch while the rolling daily budget is spent, records why on the control item, and resumes later', async () => {
    deps = { ...deps, config: withBudget({ daily_usd: 0.05 }) };
    await finished('spent-1', 0.03, at(-7_200_000));
    await finished('spent-2', 0.03, at(-3_600_000));
    await store.create(newTask('waiting'), t0);

    const { result, emf } = await captureEmf(() => runScheduler(deps, now));
    expect(result).toMatchObject({ stopped: false, started: [], queued: 1 });
    expect(result?.budget?.exhausted).toMatch(/^daily budget exhausted: \$0\.06 spent in the last 24 h of \$0\.05/);
    expect(sfnMock.commandCalls(StartExecutionCommand)).toHaveLength(0);
    expect(metricValue(emf, METRICS.budgetExhausted)).toBe(1);
    expect(metricValue(emf, METRICS.budgetSpent)).toBeCloseTo(0.06, 10);
    // Where status, health, CheckStop and running loops read it.
    const control = await store.cloudControl();
    expect(control.budget).toMatchObject({ exhausted: result?.budget?.exhausted, dailyUsd: 0.05, checkedAt: now });
    expect(control.budget?.freesAt).toEqual(new Date(at(-7_200_000).getTime() + 24 * 3_600_000));
    expect(control.stopRequested).toBe(false);

    // The window moves on: a day later that spend has left it.
    const later = new Date(now.getTime() + 25 * 3_600_000);
    const { result: afterwards, emf: laterEmf } = await captureEmf(() => runScheduler(deps, later));
    expect(afterwards?.started.map((s) => s.taskId)).toEqual(['waiting']);
    expect(afterwards?.budget).toMatchObject({ exhausted: null, spentUsd: 0 });
    expect((await store.cloudControl()).budget?.exhausted).toBeNull();
    expect(metricValue(laterEmf, METRICS.budgetExhausted)).toBe(0);
  });

  it('starts again at once when the operator raises the daily budget', async () => {
    deps = { ...deps, config: withBudget({ daily_usd: 0.05 }) };
    await finished('spent', 0.06, at(-60_000));
    await store.create(newTask('waiting'), t0);
    expect((await runScheduler(deps, now)).started).toEqual([]);
    deps = { ...deps, config: withBudget({ daily_usd: 5 }) };
    expect((await runScheduler(deps, now)).started.map((s) => s.taskId)).toEqual(['waiting']);
  });

  it('counts what running loops have spent so far: the journaled iterations of their current attempt', async () => {
    deps = { ...deps, config: withBudget({ daily_usd: 1 }) };
    await store.create(newTask('busy'), t0);
    await store.apply('busy', { type: 'execute' }, t0);
    const iteration = (n: number, costUsd: number) => ({
      attempt: 1, iteration: n, startedAt: t0.toISOString(), endedAt: t0.toISOString(), durationMs: 1, costUsd,
      numTurns: 1, sessionId: 's', ok: true, errorClass: null, promiseSeen: false,
    });
    await store.appendIteration('busy', iteration(1, 0.6));
    await store.create(newTask('waiting'), t0);
    expect((await runScheduler(deps, now)).started.map((s) => s.taskId)).toEqual(['waiting']);
    sfnMock.resetHistory();
    await store.appendIteration('busy', iteration(2, 0.5));
    await store.create(newTask('next'), t0);
    const result = await runScheduler(deps, now);
    expect(result.budget).toMatchObject({ spentUsd: 1.1 });
    expect(result.budget?.exhausted).toMatch(/daily budget exhausted/);
    expect(result.started).toEqual([]);
  });

  it('skips the task types whose daily budget is spent and starts the others', async () => {
    deps = { ...deps, config: withBudget({ per_type_daily_usd: { research: 0.02 } }) };
    await finished('old-research', 0.03, at(-60_000), 'research');
    await store.create(newTask('research-1', { type: 'research', urgency: 5 }), t0);
    await store.create(newTask('code-1', { type: 'code', urgency: 1 }), t0);
    const result = await runScheduler(deps, now);
    expect(result.started.map((s) => s.taskId)).toEqual(['code-1']);
    expect(result.skipped).toEqual([{ taskId: 'research-1', why: expect.stringMatching(/^daily budget of type research exhausted/) }]);
    expect(result.budget).toMatchObject({ exhausted: null, exhaustedTypes: { research: expect.any(String) } });
  });

  it('clears a verdict left on the control item once no budget is configured', async () => {
    await store.recordBudget({ exhausted: 'daily budget exhausted: old', exhaustedTypes: {}, spentUsd: 9, dailyUsd: 1, freesAt: null, checkedAt: t0 });
    await store.create(newTask('waiting'), t0);
    const result = await runScheduler(deps, now);
    expect(result.budget).toBeNull();
    expect(result.started.map((s) => s.taskId)).toEqual(['waiting']);
    expect((await store.cloudControl()).budget).toBeNull();
  });

  it('reports queue depth, running tasks and the oldest waits as dimensionless metrics the alarms read', async () => {
    await store.create(newTask('q1'), at(-7_200_000));
    await store.create(newTask('q2'), t0);
    await store.create(newTask('gate', { approvalRequired: true }), t0);
    await store.apply('gate', { type: 'plan' }, at(60_000));
    await store.apply('gate', { type: 'plan_ready' }, at(600_000));
    await store.setStop(true, null, t0);
    const { emf } = await captureEmf(() => runScheduler(deps, now));
    expect(metricValue(emf, METRICS.queueDepth)).toBe(2);
    expect(metricValue(emf, METRICS.running)).toBe(0);
    expect(metricValue(emf, METRICS.oldestQueuedAge)).toBe(Math.floor((now.getTime() - at(-7_200_000).getTime()) / 1000));
    expect(metricValue(emf, METRICS.oldestApprovalAge)).toBe(3_000);
    const directive = (emf[0]?.['_aws'] as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] })
      .CloudWatchMetrics[0];
    expect(directive?.Namespace).toBe(FTE_METRICS.namespace);
    expect(directive?.Dimensions.flat()).toEqual([]);
    expect(emf[0]).not.toHaveProperty('service');
    // The names the stack's alarms and dashboard read are the names the handlers write.
    for (const key of ['queueDepth', 'oldestQueuedAge', 'oldestApprovalAge', 'running'] as const) {
      expect(METRICS[key]).toBe(FTE_METRICS[key]);
    }
  });
});

describe('execution names', () => {
  const now = new Date('2026-11-25T10:00:00.000Z');
  const task = { id: 'fix-build', attempts: 0, version: 1 };

  it('are valid Step Functions names, at most 80 characters, even for long or unusual ids', () => {
    for (const id of ['fix-build', 'Zoë’s report (draft)', 'x'.repeat(200), '请处理这个', 'a b', 'a_b']) {
      const name = executionName({ ...task, id }, now);
      expect(name).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    }
    expect(executionName({ ...task, id: 'x'.repeat(200) }, now)).toHaveLength(80);
  });

  it('differ for ids that sanitise alike, for a new attempt or version, and for a new dispatch window', () => {
    const base = executionName(task, now);
    expect(executionName({ ...task, id: 'fix build' }, now)).not.toBe(executionName({ ...task, id: 'fix_build' }, now));
    expect(executionName({ ...task, attempts: 1 }, now)).not.toBe(base);
    expect(executionName({ ...task, version: 2 }, now)).not.toBe(base);
    expect(executionName(task, new Date(now.getTime() + DISPATCH_WINDOW_MS))).not.toBe(base);
    expect(executionName(task, new Date(now.getTime() + DISPATCH_WINDOW_MS - 1))).toBe(base);
    expect(base.startsWith('fix-build-')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe('cold start configuration', () => {
  it('names the variable when FTE_CONFIG_JSON is missing or not JSON', () => {
    expect(() => loadConfig({})).toThrow(LambdaEnvError);
    expect(() => loadConfig({})).toThrow(/FTE_CONFIG_JSON is not set/);
    expect(() => loadConfig({ FTE_CONFIG_JSON: '{nope' })).toThrow(/FTE_CONFIG_JSON is not valid JSON/);
  });

  it('names the offending key when the config is invalid', () => {
    const err = (() => {
      try {
        loadConfig({ FTE_CONFIG_JSON: JSON.stringify({ orchestrator: { max_concurent_tasks: 3 } }) });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(/FTE_CONFIG_JSON is invalid/);
    expect((err as ConfigError).message).toMatch(/orchestrator.*max_concurent_tasks.*did you mean "max_concurrent_tasks"/);
  });

  it('fails the import of a handler inside Lambda when the config is invalid', async () => {
    vi.resetModules();
    vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', 'fte-step');
    vi.stubEnv('FTE_TABLE_NAME', 'tasks');
    vi.stubEnv('FTE_CONFIG_JSON', JSON.stringify({ retry: { max_attempts: 0 } }));
    try {
      await expect(import('../../lambda/step.ts')).rejects.toThrow(/retry\.max_attempts/);
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });

  it('serves a step through the real entry point, configured only by the environment', async () => {
    vi.resetModules();
    vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', 'fte-step');
    vi.stubEnv('FTE_TABLE_NAME', tableName);
    vi.stubEnv('FTE_CONFIG_JSON', JSON.stringify({}));
    vi.stubEnv('AWS_REGION', 'us-east-1');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'local');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'local');
    vi.stubEnv('AWS_ENDPOINT_URL_DYNAMODB', local.endpoint);
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    try {
      const { handler } = await import('../../lambda/step.ts');
      await store.setStop(true, 'maintenance', t0);
      expect(await handler({ action: 'check_stop' })).toEqual({ stopped: true, reason: 'stopped: maintenance' });
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});
