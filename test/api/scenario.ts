import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createApp } from '../../lib/api/app.ts';
import type { ApiBackend } from '../../lib/api/backend.ts';
import { validateConfig, type Config } from '../../lib/core/config.ts';
import type { TaskStore } from '../../lib/core/store.ts';
import { createLocalBackend } from '../../lib/local/api-backend.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import { newTask, run, tempDir, writeNote } from './fixtures.ts';

/**
 * A small hand-built vault whose every figure is worked out by hand in the comments below, so tests can assert exact
 * values. NOW is fixed; the store is in memory (or passed in), the vault folders are real.
 *
 *   done-a      email     execute NOW−120m, succeed NOW−119m (60 s, $0.10)
 *   done-b      code      execute NOW−90m,  succeed NOW−88m  (120 s, $0.20)
 *   failed-c    code      execute NOW−80m,  dead_letter NOW−79m (30 s, $0.05, invalid_task)
 *   running-d   research  execute NOW−10m                        → executing
 *   pending-e   payment   plan NOW−50m, plan_ready NOW−49m (10 s, $0.01)   → pending_approval
 *   approved-f  payment   created NOW−50m, plan, plan_ready, approve NOW−20m → approved
 *   queued-g    urgency 5, created NOW−30m                         → needs_action
 *   queued-h    urgency 1, created NOW−40m                         → needs_action
 *   retry-l     code      created NOW−20m, execute NOW−15m, fail NOW−14m (5 s, $0.02), retryAt NOW+5m → retry_wait
 *   old-k       email     execute NOW−30h−16m, succeed NOW−30h (999 s, $0.50)  (outside a 24 h window)
 *   note-i      a note in Needs_Action/ nobody admitted: urgency high, created NOW−60m
 *   bad-j       a malformed note in Needs_Action/
 *   heartbeat   NOW−5s
 */

export const NOW = new Date('2026-03-10T12:00:00.000Z');
export const TOKEN = 'a'.repeat(64);
const MIN = 60_000;
export const ago = (ms: number): Date => new Date(NOW.getTime() - ms);

export interface Scenario {
  vault: string;
  store: TaskStore;
  service: TaskService;
  config: Config;
  backend: ApiBackend;
  clock: () => Date;
}

export async function buildScenario(options: { store?: TaskStore; clock?: () => Date } = {}): Promise<Scenario> {
  const vault = tempDir();
  const store = options.store ?? new MemoryTaskStore();
  const config = validateConfig({ orchestrator: { max_concurrent_tasks: 2 } });
  const clock = options.clock ?? (() => NOW);
  const service = new TaskService(vault, store, config, clock);
  service.vault.ensure();

  const create = (id: string, created: Date, overrides: Parameters<typeof newTask>[2] = {}) => store.create(newTask(id, created, overrides), created);

  await create('done-a', ago(180 * MIN), { type: 'email' });
  await store.apply('done-a', { type: 'execute' }, ago(120 * MIN));
  await store.apply('done-a', { type: 'succeed' }, ago(119 * MIN), { run: run('done-a', 1, ago(119 * MIN), 60_000, 0.1) });

  await create('done-b', ago(180 * MIN), { type: 'code' });
  await store.apply('done-b', { type: 'execute' }, ago(90 * MIN));
  await store.apply('done-b', { type: 'succeed' }, ago(88 * MIN), { run: run('done-b', 1, ago(88 * MIN), 120_000, 0.2) });

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
  await store.apply('pending-e', { type: 'plan_ready' }, ago(49 * MIN), { run: run('pending-e', 1, ago(49 * MIN), 10_000, 0.01, { kind: 'plan' }) });

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

  // Notes for the tasks that wait where a person would find them (approve and reject move them).
  writeNote(vault, 'Pending_Approval', 'pending-e', { title: 'Task pending-e', type: 'payment' });
  writeNote(vault, 'Approved', 'approved-f', { title: 'Task approved-f', type: 'payment' });
  writeNote(vault, 'Needs_Action', 'queued-g', { title: 'Urgent thing', urgency: 5 });
  writeNote(vault, 'Needs_Action', 'queued-h', { title: 'Whenever thing', urgency: 1 });
  writeNote(vault, 'Needs_Action', 'note-i', { title: 'Fresh note', urgency: 'high', created: ago(60 * MIN).toISOString() });
  writeFileSync(join(vault, 'Needs_Action', 'bad-j.md'), '---\ntitle: "unterminated\n---\nbody\n');

  await store.heartbeat('test-orchestrator', ago(5_000));
  mkdirSync(service.vault.stateDir, { recursive: true });

  const backend = createLocalBackend(service, { clock });
  return { vault, store, service, config, backend, clock };
}

export function scenarioApp(scenario: Scenario, options: { maxBodyBytes?: number } = {}) {
  return createApp({
    backend: scenario.backend,
    auth: { kind: 'bearer', token: TOKEN },
    clock: scenario.clock,
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
  });
}

export const AUTH = { authorization: `Bearer ${TOKEN}` };
