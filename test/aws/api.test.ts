import { Logger } from '@aws-lambda-powertools/logger';
import { SendTaskSuccessCommand, SFNClient, TaskTimedOut } from '@aws-sdk/client-sfn';
import type { SendTaskSuccessCommandInput } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import type { Hono } from 'hono';
import type { APIGatewayProxyResult, LambdaEvent } from 'hono/aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  addTaskResponseSchema,
  dashboardSchema,
  errorResponseSchema,
  healthSchema,
  metricsSchema,
  queueSchema,
  resumeResponseSchema,
  statusSchema,
  stopResponseSchema,
  taskActionResponseSchema,
  taskDetailSchema,
} from '../../lib/app/contracts.ts';
import { createApp } from '../../lib/api/app.ts';
import { APPROVAL_TOKEN_GRACE_MS } from '../../lib/aws/api-backend.ts';
import { DynamoTaskStore } from '../../lib/aws/dynamodb-store.ts';
import { TABLE_NAME_ENV } from '../../lib/aws/table-design.ts';
import { CONFIG_JSON_ENV } from '../../lib/cloud/runtime-env.ts';
import { validateConfig } from '../../lib/core/config.ts';
import type { Config } from '../../lib/core/config.ts';
import { PROMETHEUS_CONTENT_TYPE } from '../../lib/core/prometheus.ts';
import type { TaskStore } from '../../lib/core/store.ts';
import { createLocalBackend } from '../../lib/local/api-backend.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import { callerOf, createApiHandler, handler } from '../../lambda/api.ts';
import type { ApiDeps, ApiHandler } from '../../lambda/api.ts';
import { createMetrics } from '../../lambda/observability.ts';
import { newTask, removeTempDirs, run, tempDir } from '../api/fixtures.ts';
import { startLocalDynamo } from './local-dynamo.ts';
import type { LocalDynamo } from './local-dynamo.ts';

/**
 * The API Lambda (lambda/api.ts) invoked with API Gateway HTTP API (payload 2.0) events over a real table in dynalite.
 * Step Functions is mocked, and only for SendTaskSuccess, to see exactly which wait is answered and how. Every answer
 * is checked against the contracts of lib/app/contracts.ts, and against the local API's answer for the same data.
 */

let local: LocalDynamo;
beforeAll(async () => {
  local = await startLocalDynamo();
});
afterAll(async () => {
  await local.close();
  removeTempDirs();
});

// Powertools prints EMF documents to stdout; keep them for the metric assertions instead of the test output.
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

const NOW = new Date('2026-03-10T12:00:00.000Z');
const MIN = 60_000;
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);
const CALLER = 'arn:aws:sts::123456789012:assumed-role/Operator/alice';
const TOKEN_E = 'token-of-the-approval-wait-of-pending-e';

const sfnMock = mockClient(SFNClient);

function testConfig(): Config {
  return validateConfig({ orchestrator: { max_concurrent_tasks: 2 } });
}

/**
 * The same history, written through the store port into any store, so the local and the cloud API can be compared on
 * identical data: finished, failed, running, pending, approved, queued and retrying tasks, one outside a 24 h window.
 */
async function seed(store: TaskStore): Promise<void> {
  const create = (id: string, created: Date, overrides: Parameters<typeof newTask>[2] = {}) => store.create(newTask(id, created, overrides), created);
  await create('done-a', ago(180 * MIN), { type: 'email' });
  await store.apply('done-a', { type: 'execute' }, ago(120 * MIN));
  await store.apply('done-a', { type: 'succeed' }, ago(119 * MIN), { run: run('done-a', 1, ago(119 * MIN), 60_000, 0.1) });

  await create('failed-c', ago(180 * MIN), { type: 'code' });
  await store.apply('failed-c', { type: 'execute' }, ago(80 * MIN));
  await store.apply('failed-c', { type: 'dead_letter', error: { class: 'invalid_task', message: 'cannot be done' } }, ago(79 * MIN), {
    run: run('failed-c', 1, ago(79 * MIN), 30_000, 0.05, { ok: false, errorClass: 'invalid_task' }),
  });

  await create('running-d', ago(60 * MIN), { type: 'research' });
  await store.apply('running-d', { type: 'execute' }, ago(10 * MIN));

  const approval = { approvalRequired: true, approvalReasons: ['tasks of type "payment" always need approval'] };
  await create('pending-e', ago(60 * MIN), { type: 'payment', ...approval });
  await store.apply('pending-e', { type: 'plan' }, ago(50 * MIN));
  await store.apply('pending-e', { type: 'plan_ready' }, ago(49 * MIN), {
    run: run('pending-e', 1, ago(49 * MIN), 10_000, 0.01, { kind: 'plan' }),
  });

  await create('approved-f', ago(50 * MIN), { type: 'payment', ...approval });
  await store.apply('approved-f', { type: 'plan' }, ago(45 * MIN));
  await store.apply('approved-f', { type: 'plan_ready' }, ago(44 * MIN));
  await store.apply('approved-f', { type: 'approve', by: 'cli:test' }, ago(20 * MIN));

  await create('queued-g', ago(30 * MIN), { urgency: 5, title: 'Urgent thing' });
  await create('queued-h', ago(40 * MIN), { urgency: 1, title: 'Whenever thing' });

  await create('retry-l', ago(20 * MIN), { type: 'code' });
  await store.apply('retry-l', { type: 'execute' }, ago(15 * MIN));
  await store.apply('retry-l', { type: 'fail', error: { class: 'agent_error', message: 'is_error: true' }, retryAt: new Date(NOW.getTime() + 5 * MIN) }, ago(14 * MIN), {
    run: run('retry-l', 1, ago(14 * MIN), 5_000, 0.02, { ok: false, errorClass: 'agent_error' }),
  });

  await create('old-k', ago(31 * 60 * MIN), { type: 'email' });
  await store.apply('old-k', { type: 'execute' }, ago(30 * 60 * MIN + 16 * MIN));
  await store.apply('old-k', { type: 'succeed' }, ago(30 * 60 * MIN), { run: run('old-k', 1, ago(30 * 60 * MIN), 999_000, 0.5) });

  await store.heartbeat('scheduler', ago(5_000));
}

// ---- API Gateway HTTP API payload 2.0 events

type V2Event = Extract<LambdaEvent, { rawPath: string }>;

interface EventOptions {
  /** A JSON body (serialised, with Content-Type: application/json). */
  readonly json?: unknown;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  /** The IAM principal API Gateway verified; null for an event without an IAM authorizer context. */
  readonly userArn?: string | null;
  readonly base64?: boolean;
}

/** An event as API Gateway sends it for a request to the `$default` route of an IAM-authorized HTTP API. */
function apiEvent(method: 'GET' | 'POST', target: string, options: EventOptions = {}): V2Event {
  const [rawPath = '/', rawQueryString = ''] = target.split('?', 2);
  const text = options.json !== undefined ? JSON.stringify(options.json) : options.body;
  const headers: Record<string, string> = {
    accept: 'application/json',
    host: 'abc123.execute-api.eu-west-1.amazonaws.com',
    'x-amz-date': '20260310T120000Z',
    ...(options.json !== undefined ? { 'content-type': 'application/json' } : {}),
    ...options.headers,
  };
  const userArn = options.userArn === undefined ? CALLER : options.userArn;
  const query = new URLSearchParams(rawQueryString);
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers,
    ...(rawQueryString !== '' ? { queryStringParameters: Object.fromEntries(query.entries()) } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      authentication: null,
      authorizer:
        userArn === null
          ? {}
          : {
              iam: {
                accessKey: 'ASIAEXAMPLE',
                accountId: '123456789012',
                callerId: 'AROAEXAMPLE:alice',
                cognitoIdentity: null,
                principalOrgId: null,
                userArn,
                userId: 'AROAEXAMPLE:alice',
              },
            },
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'fte-cli' },
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      routeKey: '$default',
      stage: '$default',
      time: '10/Mar/2026:12:00:00 +0000',
      timeEpoch: NOW.getTime(),
    },
    body: text === undefined ? null : options.base64 === true ? Buffer.from(text, 'utf8').toString('base64') : text,
    isBase64Encoded: options.base64 === true,
  };
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly text: string;
}

function headerOf(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function answerOf(result: APIGatewayProxyResult): Answer {
  const text = result.isBase64Encoded ? Buffer.from(result.body, 'base64').toString('utf8') : result.body;
  return { status: result.statusCode, headers: result.headers ?? {}, text };
}

async function expectBody<S extends z.ZodType>(answer: Answer, status: number, schema: S): Promise<z.output<S>> {
  expect(answer.status, answer.text).toBe(status);
  expect(headerOf(answer, 'content-type')).toMatch(/^application\/json/);
  return schema.parse(JSON.parse(answer.text));
}

function expectError(answer: Answer, status: number, code: string): string {
  expect(answer.status, answer.text).toBe(status);
  const body = errorResponseSchema.parse(JSON.parse(answer.text));
  expect(body.error.code).toBe(code);
  return body.error.message;
}

// ---- The cloud API over a fresh table per test

let tableName: string;
let store: DynamoTaskStore;
let deps: ApiDeps;
let invoke: ApiHandler;
let clockNow: Date;

async function call(method: 'GET' | 'POST', target: string, options: EventOptions = {}): Promise<Answer> {
  return answerOf(await invoke(apiEvent(method, target, options)));
}

beforeEach(async () => {
  sfnMock.reset();
  sfnMock.on(SendTaskSuccessCommand).resolves({});
  tableName = await local.createTable();
  store = new DynamoTaskStore({ client: local.client, tableName });
  clockNow = NOW;
  deps = {
    store,
    config: testConfig(),
    sfn: new SFNClient({ region: 'eu-west-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
    logger: new Logger({ serviceName: 'test', logLevel: 'SILENT' }),
    metrics: createMetrics('test'),
    location: `dynamodb:${tableName}`,
    clock: () => clockNow,
  };
  invoke = createApiHandler(deps);
});

afterEach(async () => {
  await local.deleteTable(tableName);
});

function sendTaskSuccessCalls(): SendTaskSuccessCommandInput[] {
  return sfnMock.commandCalls(SendTaskSuccessCommand).map((c) => c.args[0].input);
}

// ---------------------------------------------------------------------------------------------------------------------

describe('reads', () => {
  beforeEach(async () => {
    await seed(store);
  });

  it('serve every read route with its contract', async () => {
    const status = await expectBody(await call('GET', '/status'), 200, statusSchema);
    expect(status.vault).toBe(`dynamodb:${tableName}`);
    expect(status.counts).toMatchObject({ done: 2, failed: 1, executing: 1, pending_approval: 1, approved: 1, needs_action: 2, retry_wait: 1 });
    // No orchestrator process in the cloud: the scheduler's fresh heartbeat is what "running" means.
    expect(status.orchestrator).toEqual({ running: true, pid: null, heartbeatAt: ago(5_000).toISOString(), heartbeatAgeSeconds: 5 });
    expect(status.pendingApproval.map((p) => p.id)).toEqual(['pending-e']);

    const queue = await expectBody(await call('GET', '/queue'), 200, queueSchema);
    expect(queue.tasks.map((t) => t.id)).toEqual(['approved-f', 'queued-g', 'queued-h']);
    expect(queue.retrying.map((t) => t.id)).toEqual(['retry-l']);

    const metrics = await expectBody(await call('GET', '/metrics?since=24h'), 200, metricsSchema);
    expect(metrics).toMatchObject({ completed: 1, failed: 1, since: ago(24 * 60 * MIN).toISOString(), until: NOW.toISOString() });
    expect(metrics.resources.available).toBe(false);
    const week = await expectBody(await call('GET', `/metrics?since=7d&until=${encodeURIComponent(NOW.toISOString())}`), 200, metricsSchema);
    expect(week.completed).toBe(2);

    const health = await expectBody(await call('GET', '/health'), 200, healthSchema);
    expect(health.checks.map((c) => c.name)).toContain('backlog');

    const dashboard = await expectBody(await call('GET', '/dashboard?since=24h'), 200, dashboardSchema);
    expect(dashboard.queue.head.map((t) => t.id)).toEqual(['approved-f', 'queued-g', 'queued-h']);

    const detail = await expectBody(await call('GET', '/tasks/pending-e'), 200, taskDetailSchema);
    expect(detail.task.state).toBe('pending_approval');
    expect(detail.history.map((h) => h.event)).toEqual(['plan', 'plan_ready']);
    expect(detail.runs).toHaveLength(1);
    expect(detail.allowedEvents).toEqual(expect.arrayContaining(['approve', 'reject']));
    expect(detail).toMatchObject({ folder: null, notePath: null });

    const prometheus = await call('GET', '/metrics/prometheus');
    expect(prometheus.status).toBe(200);
    expect(headerOf(prometheus, 'content-type')).toBe(PROMETHEUS_CONTENT_TYPE);
    expect(prometheus.text).toMatch(/^fte_tasks\{state="pending_approval"\} 1$/m);
    expect(prometheus.text).toMatch(/^fte_tasks_succeeded_total 2$/m);
  });

  it('answer 404, 400 and 503 as JSON errors', async () => {
    expectError(await call('GET', '/tasks/nope'), 404, 'TASK_NOT_FOUND');
    expectError(await call('GET', '/nowhere'), 404, 'NOT_FOUND');
    expectError(await call('GET', '/metrics?since=soon'), 400, 'SINCE_INVALID');
    // A table that is not there (another region, not deployed): the store is unavailable, not the request wrong.
    const missing = createApiHandler({ ...deps, store: new DynamoTaskStore({ client: local.client, tableName: 'fte-not-deployed' }) });
    expectError(answerOf(await missing(apiEvent('GET', '/status'))), 503, 'STORE_UNAVAILABLE');
  });

  it('are the local API’s answers for the same data', async () => {
    const memory = new MemoryTaskStore();
    await seed(memory);
    const service = new TaskService(tempDir('fte-cloud-compare-'), memory, testConfig(), () => NOW);
    service.vault.ensure();
    const localApp = createApp({ backend: createLocalBackend(service, { clock: () => NOW }), auth: { kind: 'none' }, clock: () => NOW });

    const localAnswer = async (target: string): Promise<Answer> => {
      const response = await localApp.request(target);
      return { status: response.status, headers: Object.fromEntries(response.headers.entries()), text: await response.text() };
    };
    const routes = ['/status', '/queue', '/metrics?since=24h', '/metrics?since=7d', '/health', '/dashboard?since=24h', '/tasks/pending-e', '/tasks/done-a', '/tasks/retry-l'];
    for (const route of routes) {
      const [cloud, mine] = [await call('GET', route), await localAnswer(route)];
      expect(cloud.status, route).toBe(200);
      expect(mine.status, route).toBe(200);
      expect(withoutRuntimeFields(JSON.parse(cloud.text)), route).toEqual(withoutRuntimeFields(JSON.parse(mine.text)));
    }
    const [cloudText, localText] = [(await call('GET', '/metrics/prometheus')).text, (await localAnswer('/metrics/prometheus')).text];
    expect(cloudText).toBe(localText);
    await service.close();
  });
});

/**
 * What only one runtime can know, set aside before comparing: where the tasks live (a vault folder or a table), where
 * a task's note is, the local machine's processes (pid, CPU, memory).
 */
function withoutRuntimeFields(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutRuntimeFields);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (['vault', 'folder', 'notePath', 'resources', 'orchestrator'].includes(key)) continue;
    out[key] = withoutRuntimeFields(v);
  }
  return out;
}

describe('approve and reject', () => {
  beforeEach(async () => {
    await seed(store);
    await store.setApprovalToken('pending-e', TOKEN_E);
  });

  it('approve records the decision by the IAM caller, then completes the stored token with SendTaskSuccess', async () => {
    let stateWhenAnswered: string | undefined;
    sfnMock.on(SendTaskSuccessCommand).callsFake(async () => {
      // The decision is in the table before the wait hears of it (docs/CLOUD.md: record first, then answer).
      stateWhenAnswered = (await store.get('pending-e'))?.state;
      return {};
    });
    const body = await expectBody(await call('POST', '/tasks/pending-e/approve'), 200, taskActionResponseSchema);
    expect(body).toMatchObject({ id: 'pending-e', state: 'approved', task: { approval: { by: CALLER, at: NOW.toISOString() } } });
    expect(sendTaskSuccessCalls()).toEqual([{ taskToken: TOKEN_E, output: JSON.stringify({ decision: 'approve', by: CALLER }) }]);
    expect(stateWhenAnswered).toBe('approved');
    // The token belonged to that one wait: gone with the transition, so nothing can complete it twice.
    expect(await store.getApprovalToken('pending-e')).toBeNull();
    const detail = await expectBody(await call('GET', '/tasks/pending-e'), 200, taskDetailSchema);
    expect(detail.history.at(-1)).toMatchObject({ event: 'approve', from: 'pending_approval', to: 'approved' });
  });

  it('reject records the decision with its reason and answers the wait with decision reject', async () => {
    const body = await expectBody(
      await call('POST', '/tasks/pending-e/reject', { json: { reason: 'not this quarter' } }),
      200,
      taskActionResponseSchema,
    );
    expect(body).toMatchObject({ id: 'pending-e', state: 'rejected', task: { reason: 'not this quarter' } });
    expect(sendTaskSuccessCalls()).toEqual([{ taskToken: TOKEN_E, output: JSON.stringify({ decision: 'reject', by: CALLER }) }]);
    expect(await store.getApprovalToken('pending-e')).toBeNull();
  });

  it('approving a task that is not pending approval is 409, and no wait is answered', async () => {
    for (const id of ['queued-g', 'approved-f', 'running-d', 'done-a']) {
      const before = await store.get(id);
      expectError(await call('POST', `/tasks/${id}/approve`), 409, 'INVALID_TRANSITION');
      expect((await store.get(id))?.version, id).toBe(before?.version);
    }
    expectError(await call('POST', '/tasks/nope/approve'), 404, 'TASK_NOT_FOUND');
    expectError(await call('POST', '/tasks/nope/reject'), 404, 'TASK_NOT_FOUND');
    // A second approval of the same task finds it approved already.
    await expectBody(await call('POST', '/tasks/pending-e/approve'), 200, taskActionResponseSchema);
    expectError(await call('POST', '/tasks/pending-e/approve'), 409, 'INVALID_TRANSITION');
    expect(sendTaskSuccessCalls()).toHaveLength(1);
  });

  it('a pending task whose wait has not stored its token yet is 409 APPROVAL_NOT_READY; past the grace it is decided without an answer', async () => {
    await store.setApprovalToken('pending-e', null);
    // pending-e entered pending_approval 49 minutes before NOW; move the clock to just after it.
    clockNow = new Date(ago(49 * MIN).getTime() + 1_000);
    expectError(await call('POST', '/tasks/pending-e/approve'), 409, 'APPROVAL_NOT_READY');
    expect((await store.get('pending-e'))?.state).toBe('pending_approval');
    clockNow = new Date(ago(49 * MIN).getTime() + APPROVAL_TOKEN_GRACE_MS + 1);
    await expectBody(await call('POST', '/tasks/pending-e/approve'), 200, taskActionResponseSchema);
    expect((await store.get('pending-e'))?.state).toBe('approved');
    expect(sendTaskSuccessCalls()).toEqual([]);
  });

  it('rejecting a task that waits on nobody (queued, running) records it and answers nothing', async () => {
    for (const id of ['queued-g', 'running-d']) {
      const body = await expectBody(await call('POST', `/tasks/${id}/reject`), 200, taskActionResponseSchema);
      expect(body.state).toBe('rejected');
    }
    expectError(await call('POST', '/tasks/done-a/reject'), 409, 'INVALID_TRANSITION');
    expect(sendTaskSuccessCalls()).toEqual([]);
  });

  it('a wait that is already over does not undo or fail the recorded decision', async () => {
    sfnMock.on(SendTaskSuccessCommand).rejects(new TaskTimedOut({ message: 'Task Timed Out', $metadata: {} }));
    const body = await expectBody(await call('POST', '/tasks/pending-e/approve'), 200, taskActionResponseSchema);
    expect(body.state).toBe('approved');
    expect(sendTaskSuccessCalls()).toHaveLength(1);
  });

  it('takes the caller from the IAM context, and records "api" for an event without one', async () => {
    const body = await expectBody(await call('POST', '/tasks/pending-e/approve', { userArn: null }), 200, taskActionResponseSchema);
    expect(body.task.approval?.by).toBe('api');
    expect(sendTaskSuccessCalls()[0]?.output).toBe(JSON.stringify({ decision: 'approve', by: 'api' }));
    expect(callerOf({ requestContext: { authorizer: { iam: { userArn: CALLER } } } })).toBe(CALLER);
    expect(callerOf({ requestContext: { authorizer: { jwt: {} } } })).toBe('api');
    expect(callerOf(undefined)).toBe('api');
  });

  it('refuses a body on approve and a malformed reject body', async () => {
    expectError(await call('POST', '/tasks/pending-e/approve', { json: { extra: true } }), 400, 'VALIDATION_FAILED');
    expectError(await call('POST', '/tasks/pending-e/reject', { body: 'reason=no', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(sendTaskSuccessCalls()).toEqual([]);
  });
});

describe('POST /tasks', () => {
  it('admits the note through the ingest path: core parser, approval policy, body stored for the runner', async () => {
    const start = emfLines.length;
    const created = await expectBody(
      await call('POST', '/tasks', { json: { title: 'Pay the invoice', type: 'payment', urgency: 'high', body: 'Invoice 42.' } }),
      201,
      addTaskResponseSchema,
    );
    expect(created.id).toBe('pay-the-invoice');
    expect(created.task).toMatchObject({
      state: 'needs_action',
      type: 'payment',
      urgency: 4,
      approvalRequired: true,
      created: NOW.toISOString(),
    });
    const record = await store.get('pay-the-invoice');
    expect(record?.approvalReasons.length).toBeGreaterThan(0);
    expect(await store.getTaskBody('pay-the-invoice')).toMatch(/^---\ntitle: Pay the invoice\n[\s\S]*---\nInvoice 42\.\n$/);
    // The admission is counted like one from the intake queue.
    expect(emfLines.slice(start).join('')).toContain('"TasksIngested":1');
  });

  it('takes the next free id when the title’s slug is taken, as the local API does', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await expectBody(await call('POST', '/tasks', { json: { title: 'Weekly report' } }), 201, addTaskResponseSchema)).id);
    }
    expect(ids).toEqual(['weekly-report', 'weekly-report-2', 'weekly-report-3']);
    // Concurrent requests race for a name through conditional writes: each gets its own.
    const racing = await Promise.all([1, 2, 3].map(() => call('POST', '/tasks', { json: { title: 'Race' } })));
    const raced = racing.map((a) => addTaskResponseSchema.parse(JSON.parse(a.text)).id).sort();
    expect(raced).toEqual(['race', 'race-2', 'race-3']);
  });

  it('refuses a field the note parser rejects with 400, writing nothing (not even a quarantine record)', async () => {
    const message = expectError(await call('POST', '/tasks', { json: { title: 'x', deadline: '2026-02-30' } }), 400, 'TASK_PARSE_ERROR');
    expect(message).toMatch(/deadline/);
    expect(await store.list()).toEqual([]);
    expect(await store.getQuarantined('x')).toBeNull();
    expectError(await call('POST', '/tasks', { json: { body: 'no title' } }), 400, 'VALIDATION_FAILED');
    expectError(await call('POST', '/tasks', { body: '{not json', headers: { 'content-type': 'application/json' } }), 400, 'INVALID_JSON');
  });

  it('reads a base64-encoded body, as API Gateway may deliver it', async () => {
    const created = await expectBody(await call('POST', '/tasks', { json: { title: 'Encoded' }, base64: true }), 201, addTaskResponseSchema);
    expect(created.id).toBe('encoded');
  });
});

describe('stop and resume', () => {
  it('set and clear the stop flag on the control item', async () => {
    const stopped = await expectBody(await call('POST', '/stop', { json: { reason: 'maintenance' } }), 200, stopResponseSchema);
    expect(stopped).toEqual({ stopped: true, now: false, reason: 'maintenance' });
    expect(await store.control()).toMatchObject({ stopRequested: true, stopReason: 'maintenance', stopChangedAt: NOW });
    const status = await expectBody(await call('GET', '/status'), 200, statusSchema);
    expect(status.stop).toEqual({ stopped: true, reason: 'maintenance', stopFile: false });

    const resumed = await expectBody(await call('POST', '/resume'), 200, resumeResponseSchema);
    expect(resumed).toEqual({ stopped: false, removedStopFile: false });
    expect(await store.control()).toMatchObject({ stopRequested: false, stopReason: null });
  });

  it('names the caller when no reason is given, and says `now: false` since running runs finish in the cloud', async () => {
    const stopped = await expectBody(await call('POST', '/stop', { json: { now: true } }), 200, stopResponseSchema);
    expect(stopped).toEqual({ stopped: true, now: false, reason: `${CALLER} stopped dispatch` });
  });
});

describe('writes, compared with the local API', () => {
  it('answer approve, reject, add, stop and resume in the same shapes with the same values', async () => {
    await seed(store);
    await store.setApprovalToken('pending-e', TOKEN_E);
    const memory = new MemoryTaskStore();
    await seed(memory);
    const service = new TaskService(tempDir('fte-cloud-compare-'), memory, testConfig(), () => NOW);
    service.vault.ensure();
    const localApp: Hono = createApp({
      backend: createLocalBackend(service, { clock: () => NOW }),
      auth: { kind: 'none' },
      clock: () => NOW,
      identify: () => CALLER,
    });
    const requests: [string, unknown][] = [
      ['/tasks/pending-e/approve', undefined],
      ['/tasks/queued-g/reject', { reason: 'duplicate' }],
      ['/tasks', { title: 'Write the notes', urgency: 2, type: 'docs', from: 'Ann <ann@example.com>' }],
      ['/tasks/queued-h/approve', undefined],
      ['/stop', { reason: 'lunch' }],
      ['/resume', undefined],
    ];
    for (const [path, json] of requests) {
      const cloud = await call('POST', path, json === undefined ? {} : { json });
      const response = await localApp.request(path, {
        method: 'POST',
        ...(json === undefined ? {} : { body: JSON.stringify(json), headers: { 'content-type': 'application/json' } }),
      });
      expect(cloud.status, path).toBe(response.status);
      expect(withoutRuntimeFields(JSON.parse(cloud.text)), path).toEqual(withoutRuntimeFields(await response.json()));
    }
    await service.close();
  });
});

describe('the exported handler', () => {
  const saved: Record<string, string | undefined> = {};
  const setEnv = (vars: Record<string, string>): void => {
    for (const [k, v] of Object.entries(vars)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
  };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('builds itself from the environment the stack sets (table, settings) and serves the app', async () => {
    await seed(store);
    await store.setApprovalToken('pending-e', TOKEN_E);
    setEnv({
      [TABLE_NAME_ENV]: tableName,
      [CONFIG_JSON_ENV]: JSON.stringify(testConfig()),
      // The SDK's own endpoint override, so the real client of the handler talks to dynalite.
      AWS_ENDPOINT_URL_DYNAMODB: local.endpoint,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    const status = answerOf(await handler(apiEvent('GET', '/status')));
    expect(statusSchema.parse(JSON.parse(status.text)).vault).toBe(`dynamodb:${tableName}`);
    const approved = answerOf(await handler(apiEvent('POST', '/tasks/pending-e/approve')));
    expect(taskActionResponseSchema.parse(JSON.parse(approved.text)).state).toBe('approved');
    // aws-sdk-client-mock replaces every SFNClient's send, the handler's own included.
    expect(sendTaskSuccessCalls()).toEqual([{ taskToken: TOKEN_E, output: JSON.stringify({ decision: 'approve', by: CALLER }) }]);
  });
});
