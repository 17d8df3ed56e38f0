import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addColumns, addEvent, emptyTotals } from '../../lib/app/prometheus-metrics.ts';
import type { HistoryColumns } from '../../lib/core/history-columns.ts';
import type { HistoryEvent } from '../../lib/core/history.ts';
import { computeMetrics, computeMetricsFromColumns } from '../../lib/core/metrics.ts';
import { InvalidTransitionError, TASK_EVENT_TYPES, TASK_STATES, TERMINAL_STATES } from '../../lib/core/state-machine.ts';
import type { TaskEvent, TaskState } from '../../lib/core/state-machine.ts';
import { StaleWriteError, TaskNotFoundError } from '../../lib/core/store.ts';
import type { Lease, NewTask, RunRecord, TaskRecord, TaskStore } from '../../lib/core/store.ts';

/**
 * The behaviour every TaskStore adapter owes the engine, written against the port alone so the SQLite, in-memory and
 * DynamoDB adapters are held to one definition. Each test gets a fresh, empty store from `factory`.
 */

export interface StoreFixture {
  store: TaskStore;
  cleanup: () => Promise<void>;
}

// Odd milliseconds everywhere: a store that truncates to seconds fails on every date.
const t0 = new Date('2026-11-25T10:00:00.123Z');
const at = (ms: number): Date => new Date(t0.getTime() + ms);
const EVERYTHING = { since: new Date(0), until: new Date(8.64e15) };

function newTask(id: string, overrides: Partial<NewTask> = {}): NewTask {
  return {
    id,
    title: `Task ${id}`,
    type: 'email',
    sender: 'alice@example.com',
    urgency: 3,
    deadline: at(86_400_007),
    created: at(-3_600_001),
    approvalRequired: false,
    approvalReasons: [],
    ...overrides,
  };
}

function lease(owner = 'engine-1', expiresAt = at(600_001), pid: number | null = 4242): Lease {
  return { owner, pid, expiresAt };
}

function run(taskId: string, attempt: number, kind: RunRecord['kind'], overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    taskId,
    attempt,
    kind,
    startedAt: at(1_001),
    endedAt: at(31_777),
    ok: true,
    errorClass: null,
    exitCode: 0,
    durationMs: 30_776,
    costUsd: 0.125,
    numTurns: 7,
    sessionId: 'session-abc',
    logPath: '/tmp/logs/run.jsonl',
    ...overrides,
  };
}

const anError = { class: 'timeout', message: 'the run took longer than 30m' } as const;

/** What metrics read of an event, as historyColumns keeps it (no cost or duration: NaN) and as history returns it. */
interface MetricsFields {
  at: number;
  to: string;
  event: string;
  type: string;
  durationMs: number | undefined;
  costUsd: number | undefined;
}

function metricsFields(e: HistoryEvent): MetricsFields {
  return { at: e.at, to: e.to, event: e.event, type: e.taskType, durationMs: e.durationMs, costUsd: e.costUsd };
}

function columnRows(c: HistoryColumns): MetricsFields[] {
  const orAbsent = (x: number): number | undefined => (Number.isNaN(x) ? undefined : x);
  return Array.from({ length: c.length }, (_, i) => ({
    at: c.at[i] as number,
    to: TASK_STATES[c.to[i] as number] as string,
    event: TASK_EVENT_TYPES[c.event[i] as number] as string,
    type: c.types[c.type[i] as number] as string,
    durationMs: orAbsent(c.durationMs[i] as number),
    costUsd: orAbsent(c.costUsd[i] as number),
  }));
}

export function describeTaskStoreContract(name: string, factory: () => Promise<StoreFixture>): void {
  describe(`TaskStore contract: ${name}`, () => {
    let store: TaskStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });

    afterEach(async () => {
      await cleanup();
    });

    const allHistory = (): Promise<HistoryEvent[]> => store.history(EVERYTHING);

    /** Asserts `attempt` is rejected with `errorType` and leaves the task and the history exactly as they were. */
    async function expectNoEffect(id: string, attempt: () => Promise<unknown>, errorType: new (...a: never[]) => Error) {
      const before = await store.get(id);
      const historyBefore = await allHistory();
      const runsBefore = await store.runs(id);
      await expect(attempt()).rejects.toBeInstanceOf(errorType);
      expect(await store.get(id)).toEqual(before);
      expect(await allHistory()).toEqual(historyBefore);
      expect(await store.runs(id)).toEqual(runsBefore);
    }

    describe('create', () => {
      it('admits a task in needs_action with no attempts, no cost, no lease, version 1', async () => {
        const task = newTask('t1', { approvalRequired: true, approvalReasons: ['type payment', 'sender unknown ✉'] });
        expect(await store.create(task, t0)).toBe(true);
        const record = await store.get('t1');
        expect(record).toEqual({
          ...task,
          state: 'needs_action',
          approval: null,
          attempts: 0,
          retryAt: null,
          lastError: null,
          reason: null,
          stateSince: t0,
          costUsd: 0,
          lease: null,
          version: 1,
        } satisfies TaskRecord);
      });

      it('is idempotent on the id: a second create returns false and changes nothing', async () => {
        expect(await store.create(newTask('t1'), t0)).toBe(true);
        const first = await store.get('t1');
        expect(await store.create(newTask('t1', { title: 'Another title', urgency: 5 }), at(5_000))).toBe(false);
        expect(await store.get('t1')).toEqual(first);
      });

      it('records no history: admission is not a transition', async () => {
        await store.create(newTask('t1'), t0);
        expect(await allHistory()).toEqual([]);
      });

      it('keeps null sender and deadline', async () => {
        await store.create(newTask('t1', { sender: null, deadline: null }), t0);
        const record = await store.get('t1');
        expect(record?.sender).toBeNull();
        expect(record?.deadline).toBeNull();
      });

      it('round-trips dates to the millisecond', async () => {
        const created = new Date('2025-01-02T03:04:05.678Z');
        const deadline = new Date('2027-12-31T23:59:59.999Z');
        const now = new Date('2026-06-15T12:00:00.001Z');
        await store.create(newTask('t1', { created, deadline }), now);
        const record = await store.get('t1');
        expect(record?.created.getTime()).toBe(created.getTime());
        expect(record?.deadline?.getTime()).toBe(deadline.getTime());
        expect(record?.stateSince.getTime()).toBe(now.getTime());
      });
    });

    describe('get and list', () => {
      it('returns null for an unknown id', async () => {
        expect(await store.get('nope')).toBeNull();
      });

      it('lists every task ordered by created, then id', async () => {
        await store.create(newTask('b', { created: at(2) }), t0);
        await store.create(newTask('c', { created: at(1) }), t0);
        await store.create(newTask('a', { created: at(2) }), t0);
        expect((await store.list()).map((r) => r.id)).toEqual(['c', 'a', 'b']);
      });

      it('filters by states', async () => {
        await store.create(newTask('queued', { created: at(1) }), t0);
        await store.create(newTask('running', { created: at(2) }), t0);
        await store.create(newTask('gated', { created: at(3), approvalRequired: true }), t0);
        await store.apply('running', { type: 'execute' }, at(10));
        await store.apply('gated', { type: 'plan' }, at(10));

        expect((await store.list({ states: ['needs_action'] })).map((r) => r.id)).toEqual(['queued']);
        expect((await store.list({ states: ['executing', 'planning'] })).map((r) => r.id)).toEqual(['running', 'gated']);
        expect(await store.list({ states: ['done'] })).toEqual([]);
        expect(await store.list({ states: [] })).toEqual([]);
        expect(await store.list({})).toHaveLength(3);
      });

      it('lists the same records get returns', async () => {
        await store.create(newTask('t1'), t0);
        await store.apply('t1', { type: 'execute' }, at(10), { lease: lease() });
        expect(await store.list()).toEqual([await store.get('t1')]);
      });
    });

    describe('stateCounts and listLatest', () => {
      const FINISHED: TaskState[] = [...TERMINAL_STATES];

      /** d1 done@100, f1 failed@200, d2 done@300 and c1 cancelled@300 (a tie), q1 queued, r1 failed then requeued. */
      async function finishSome(): Promise<void> {
        for (const id of ['d1', 'd2', 'f1', 'c1', 'q1', 'r1']) await store.create(newTask(id), t0);
        await store.apply('d1', { type: 'execute' }, at(1));
        await store.apply('d1', { type: 'succeed' }, at(100));
        await store.apply('f1', { type: 'execute' }, at(1));
        await store.apply('f1', { type: 'dead_letter', error: anError }, at(200));
        await store.apply('d2', { type: 'execute' }, at(1));
        await store.apply('d2', { type: 'succeed' }, at(300));
        await store.apply('c1', { type: 'cancel', by: 'ops' }, at(300));
        await store.apply('r1', { type: 'execute' }, at(1));
        await store.apply('r1', { type: 'dead_letter', error: anError }, at(400));
        await store.apply('r1', { type: 'requeue', by: 'ops' }, at(500));
      }

      it('counts every state, at 0 when empty', async () => {
        const empty = await store.stateCounts();
        expect(Object.keys(empty).sort()).toEqual([...TASK_STATES].sort());
        expect(Object.values(empty).every((n) => n === 0)).toBe(true);
      });

      it('counts the tasks per state as they move, as a listing would', async () => {
        await finishSome();
        await store.apply('q1', { type: 'execute' }, at(600));
        // A create that admits nothing counts nothing.
        expect(await store.create(newTask('d1'), at(700))).toBe(false);
        const counts = await store.stateCounts();
        const listed = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
        for (const r of await store.list()) listed[r.state] += 1;
        expect(counts).toEqual(listed);
        expect(counts).toMatchObject({ needs_action: 1, executing: 1, done: 2, failed: 1, cancelled: 1, expired: 0 });
      });

      it('lists the tasks that entered the given states last, newest first, ties by id, with the ties at the cut', async () => {
        await finishSome();
        const ids = async (states: TaskState[], limit: number): Promise<string[]> =>
          (await store.listLatest({ states, limit })).map((r) => r.id);
        // c1 and d2 both finished at 300: a limit of 1 keeps both, so no caller's tie-break is decided for it.
        expect(await ids(FINISHED, 1)).toEqual(['c1', 'd2']);
        expect(await ids(FINISHED, 2)).toEqual(['c1', 'd2']);
        expect(await ids(FINISHED, 3)).toEqual(['c1', 'd2', 'f1']);
        // r1 left failed when it was requeued: only where a task is now counts.
        expect(await ids(FINISHED, 10)).toEqual(['c1', 'd2', 'f1', 'd1']);
        expect(await ids(['done'], 1)).toEqual(['d2']);
        expect(await ids(['needs_action'], 5)).toEqual(['r1', 'q1']);
        expect(await ids(FINISHED, 0)).toEqual([]);
        expect(await ids([], 5)).toEqual([]);
        expect(await ids(['expired'], 5)).toEqual([]);
      });

      it('returns the records get returns', async () => {
        await finishSome();
        const latest = await store.listLatest({ states: FINISHED, limit: 10 });
        expect(latest).toHaveLength(4);
        for (const record of latest) expect(record).toEqual(await store.get(record.id));
      });

      it('refuses a limit that is not a whole number ≥ 0', async () => {
        await expect(store.listLatest({ states: FINISHED, limit: -1 })).rejects.toBeInstanceOf(RangeError);
        await expect(store.listLatest({ states: FINISHED, limit: 1.5 })).rejects.toBeInstanceOf(RangeError);
      });
    });

    describe('apply', () => {
      it('drives a full lifecycle with approval, recording every step in order', async () => {
        await store.create(newTask('t1', { approvalRequired: true, type: 'payment' }), t0);

        const planning = await store.apply('t1', { type: 'plan' }, at(1_000), { expectedVersion: 1, lease: lease() });
        expect(planning).toMatchObject({ state: 'planning', attempts: 1, version: 2, lease: lease() });

        const planRun = run('t1', 1, 'plan', { costUsd: 0.25 });
        const pending = await store.apply('t1', { type: 'plan_ready' }, at(2_000), { expectedVersion: 2, run: planRun });
        expect(pending).toMatchObject({ state: 'pending_approval', version: 3, lease: null, costUsd: 0.25 });

        const approved = await store.apply('t1', { type: 'approve', by: 'bob' }, at(3_000), { expectedVersion: 3 });
        expect(approved).toMatchObject({ state: 'approved', version: 4, approval: { by: 'bob', at: at(3_000) } });

        const executing = await store.apply('t1', { type: 'execute' }, at(4_000), {
          expectedVersion: 4,
          lease: lease('engine-2'),
        });
        expect(executing).toMatchObject({ state: 'executing', attempts: 2, version: 5, lease: lease('engine-2') });

        const execRun = run('t1', 2, 'execute', { costUsd: 1.5, durationMs: 12_345.5 });
        const done = await store.apply('t1', { type: 'succeed' }, at(5_000), { expectedVersion: 5, run: execRun });
        expect(done).toMatchObject({ state: 'done', attempts: 2, version: 6, lease: null, costUsd: 1.75 });
        expect(done.stateSince).toEqual(at(5_000));
        expect(done.approval).toEqual({ by: 'bob', at: at(3_000) });
        expect(await store.get('t1')).toEqual(done);

        const base = { taskId: 't1', taskType: 'payment' } as const;
        expect(await allHistory()).toStrictEqual([
          { ...base, from: 'needs_action', to: 'planning', event: 'plan', at: at(1_000).getTime(), attempt: 1 },
          { ...base, from: 'planning', to: 'pending_approval', event: 'plan_ready', at: at(2_000).getTime(),
            attempt: 1, durationMs: planRun.durationMs, costUsd: 0.25 },
          { ...base, from: 'pending_approval', to: 'approved', event: 'approve', at: at(3_000).getTime(), attempt: 1 },
          { ...base, from: 'approved', to: 'executing', event: 'execute', at: at(4_000).getTime(), attempt: 2 },
          { ...base, from: 'executing', to: 'done', event: 'succeed', at: at(5_000).getTime(), attempt: 2,
            durationMs: 12_345.5, costUsd: 1.5 },
        ] satisfies HistoryEvent[]);
        expect(await store.runs('t1')).toEqual([planRun, execRun]);
      });

      it('returns exactly what get returns afterwards', async () => {
        await store.create(newTask('t1'), t0);
        const applied = await store.apply('t1', { type: 'execute' }, at(1), { lease: lease('o', at(99), null) });
        expect(await store.get('t1')).toEqual(applied);
      });

      it('rejects a transition the table does not allow and changes nothing', async () => {
        await store.create(newTask('t1'), t0);
        await expectNoEffect('t1', () => store.apply('t1', { type: 'succeed' }, at(1)), InvalidTransitionError);
        await expectNoEffect('t1', () => store.apply('t1', { type: 'plan_ready' }, at(1)), InvalidTransitionError);
      });

      it('rejects a transition whose guard fails and changes nothing', async () => {
        await store.create(newTask('gated', { approvalRequired: true }), t0);
        await expectNoEffect('gated', () => store.apply('gated', { type: 'execute' }, at(1)), InvalidTransitionError);
      });

      it('rejects a transition with a run and writes neither the run nor its cost', async () => {
        await store.create(newTask('t1'), t0);
        const attempt = () => store.apply('t1', { type: 'succeed' }, at(1), { run: run('t1', 1, 'execute') });
        await expectNoEffect('t1', attempt, InvalidTransitionError);
        expect((await store.get('t1'))?.costUsd).toBe(0);
      });

      it('throws TaskNotFoundError for an unknown id', async () => {
        const err = await store.apply('ghost', { type: 'execute' }, at(1)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TaskNotFoundError);
        expect(err).toMatchObject({ code: 'TASK_NOT_FOUND', taskId: 'ghost' });
        expect(await allHistory()).toEqual([]);
      });

      it('throws StaleWriteError when expectedVersion is not the current version, and writes nothing', async () => {
        await store.create(newTask('t1'), t0);
        await store.apply('t1', { type: 'execute' }, at(1), { expectedVersion: 1 });
        const err = await store.apply('t1', { type: 'succeed' }, at(2), { expectedVersion: 1 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StaleWriteError);
        expect(err).toMatchObject({ code: 'STALE_WRITE', taskId: 't1', expected: 1, actual: 2 });
        await expectNoEffect(
          't1',
          () => store.apply('t1', { type: 'succeed' }, at(2), { expectedVersion: 3, run: run('t1', 1, 'execute') }),
          StaleWriteError,
        );
      });

      it('lets exactly one of 20 concurrent conditional writes through', async () => {
        await store.create(newTask('t1'), t0);
        const { version } = (await store.get('t1')) as TaskRecord;
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            store.apply('t1', { type: 'execute' }, at(i), { expectedVersion: version, lease: lease(`engine-${i}`) }),
          ),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(19);
        for (const r of lost) {
          expect(r.reason instanceof StaleWriteError || r.reason instanceof InvalidTransitionError).toBe(true);
        }
        const history = await allHistory();
        expect(history.filter((e) => e.event === 'execute')).toHaveLength(1);
        expect(history).toHaveLength(1);
        const record = await store.get('t1');
        expect(record).toMatchObject({ state: 'executing', attempts: 1, version: version + 1 });
        expect(won[0]?.status === 'fulfilled' && won[0].value).toEqual(record);
      });

      it('increments the version by one per write', async () => {
        await store.create(newTask('t1'), t0);
        const versions = [(await store.get('t1'))?.version];
        for (const event of [
          { type: 'execute' },
          { type: 'fail', error: anError, retryAt: at(60_000) },
          { type: 'retry' },
          { type: 'execute' },
        ] satisfies TaskEvent[]) {
          versions.push((await store.apply('t1', event, at(120_000))).version);
        }
        expect(versions).toEqual([1, 2, 3, 4, 5]);
      });
    });

    describe('leases', () => {
      it('sets the lease on execute and clears it on succeed', async () => {
        await store.create(newTask('t1'), t0);
        const held = await store.apply('t1', { type: 'execute' }, at(1), { lease: lease('engine-1', at(300_999)) });
        expect(held.lease).toEqual({ owner: 'engine-1', pid: 4242, expiresAt: at(300_999) });
        expect((await store.get('t1'))?.lease).toEqual(held.lease);
        const done = await store.apply('t1', { type: 'succeed' }, at(2));
        expect(done.lease).toBeNull();
        expect((await store.get('t1'))?.lease).toBeNull();
      });

      it('clears the lease on fail even when one is passed', async () => {
        await store.create(newTask('t1'), t0);
        await store.apply('t1', { type: 'execute' }, at(1), { lease: lease() });
        const waiting = await store.apply('t1', { type: 'fail', error: anError, retryAt: at(60_000) }, at(2), {
          lease: lease('someone-else'),
        });
        expect(waiting.lease).toBeNull();
        expect((await store.get('t1'))?.lease).toBeNull();
      });

      it('keeps a lease with no pid', async () => {
        await store.create(newTask('t1', { approvalRequired: true }), t0);
        await store.apply('t1', { type: 'plan' }, at(1), { lease: lease('lambda', at(900_000), null) });
        expect((await store.get('t1'))?.lease).toEqual({ owner: 'lambda', pid: null, expiresAt: at(900_000) });
      });

      it('enters a running state without a lease when none is given', async () => {
        await store.create(newTask('t1'), t0);
        expect((await store.apply('t1', { type: 'execute' }, at(1))).lease).toBeNull();
      });
    });

    describe('runs and cost', () => {
      it('accumulates run costs, puts them on the history events, and lists the runs by attempt', async () => {
        await store.create(newTask('t1'), t0);
        await store.apply('t1', { type: 'execute' }, at(1));
        const failed = run('t1', 1, 'execute', {
          ok: false, errorClass: 'timeout', exitCode: null, costUsd: 0.5, durationMs: 1_800_000, numTurns: null,
          sessionId: null, logPath: null,
        });
        await store.apply('t1', { type: 'fail', error: anError, retryAt: at(60_000) }, at(2), { run: failed });
        await store.apply('t1', { type: 'retry' }, at(60_000));
        await store.apply('t1', { type: 'execute' }, at(60_001));
        const succeeded = run('t1', 2, 'execute', { costUsd: 0.25 });
        const done = await store.apply('t1', { type: 'succeed' }, at(90_000), { run: succeeded });

        expect(done.costUsd).toBeCloseTo(0.75, 10);
        expect((await store.get('t1'))?.costUsd).toBeCloseTo(0.75, 10);
        expect(await store.runs('t1')).toEqual([failed, succeeded]);
        expect(await store.runs('other')).toEqual([]);

        const history = await allHistory();
        expect(history.find((e) => e.event === 'fail')).toStrictEqual({
          taskId: 't1', taskType: 'email', from: 'executing', to: 'retry_wait', event: 'fail', at: at(2).getTime(),
          attempt: 1, durationMs: 1_800_000, costUsd: 0.5, errorClass: 'timeout',
        } satisfies HistoryEvent);
        expect(history.find((e) => e.event === 'succeed')).toMatchObject({ costUsd: 0.25, attempt: 2 });
        expect(history.find((e) => e.event === 'succeed')).not.toHaveProperty('errorClass');
        expect(history.find((e) => e.event === 'retry')).not.toHaveProperty('costUsd');
        expect(history.find((e) => e.event === 'retry')).not.toHaveProperty('durationMs');
      });

      it('takes the error class of a dead_letter event onto its history event', async () => {
        await store.create(newTask('t1'), t0);
        await store.apply('t1', { type: 'execute' }, at(1));
        await store.apply('t1', { type: 'dead_letter', error: { class: 'budget_exceeded', message: 'over $5' } }, at(2));
        expect((await allHistory()).at(-1)).toMatchObject({ event: 'dead_letter', to: 'failed', errorClass: 'budget_exceeded' });
      });

      it('keeps costUsd the sum of the runs when a run is written again', async () => {
        await store.create(newTask('t1'), t0);
        await store.apply('t1', { type: 'execute' }, at(1));
        await store.apply('t1', { type: 'fail', error: anError, retryAt: at(2) }, at(2), {
          run: run('t1', 1, 'execute', { costUsd: 1 }),
        });
        await store.apply('t1', { type: 'retry' }, at(3));
        await store.apply('t1', { type: 'execute' }, at(4));
        // The engine re-reports attempt 1 with its final cost.
        const corrected = run('t1', 1, 'execute', { costUsd: 3 });
        const record = await store.apply('t1', { type: 'interrupt', reason: 'stop --now' }, at(5), { run: corrected });
        expect(record.costUsd).toBe(3);
        expect(await store.runs('t1')).toEqual([corrected]);
      });
    });

    describe('recorded fields', () => {
      it('round-trips lastError and retryAt', async () => {
        await store.create(newTask('t1'), t0);
        await store.apply('t1', { type: 'execute' }, at(1));
        await store.apply('t1', { type: 'fail', error: anError, retryAt: at(61_234) }, at(2));
        const record = await store.get('t1');
        expect(record?.lastError).toEqual(anError);
        expect(record?.retryAt).toEqual(at(61_234));
      });

      it('round-trips the approval', async () => {
        await store.create(newTask('t1', { approvalRequired: true }), t0);
        await store.apply('t1', { type: 'plan' }, at(1));
        await store.apply('t1', { type: 'plan_ready' }, at(2));
        await store.apply('t1', { type: 'approve', by: 'Zoë <zoe@example.com>' }, at(3_456));
        expect((await store.get('t1'))?.approval).toEqual({ by: 'Zoë <zoe@example.com>', at: at(3_456) });
      });

      it('round-trips the reason of a reject and clears it on requeue', async () => {
        await store.create(newTask('t1'), t0);
        await store.apply('t1', { type: 'execute' }, at(1));
        await store.apply('t1', { type: 'dead_letter', error: anError }, at(2));
        await store.apply('t1', { type: 'requeue', by: 'ops' }, at(3));
        expect(await store.get('t1')).toMatchObject({ state: 'needs_action', attempts: 0, lastError: null });
        await store.apply('t1', { type: 'reject', by: 'bob', reason: 'not our job' }, at(4));
        expect(await store.get('t1')).toMatchObject({ state: 'rejected', reason: 'not our job' });
      });
    });

    describe('history', () => {
      it('returns events with since ≤ at < until, oldest first', async () => {
        await store.create(newTask('a'), t0);
        await store.create(newTask('b'), t0);
        await store.apply('a', { type: 'execute' }, at(100));
        await store.apply('b', { type: 'execute' }, at(200));
        await store.apply('a', { type: 'succeed' }, at(300));
        await store.apply('b', { type: 'cancel', by: 'ops' }, at(400));

        const window = await store.history({ since: at(200), until: at(400) });
        expect(window.map((e) => [e.taskId, e.event])).toEqual([['b', 'execute'], ['a', 'succeed']]);
        expect(await store.history({ since: at(200), until: at(200) })).toEqual([]);
        expect(await store.history({ since: at(401), until: at(10_000) })).toEqual([]);
        expect((await store.history({ since: at(100), until: at(401) })).map((e) => e.at)).toEqual([
          at(100).getTime(), at(200).getTime(), at(300).getTime(), at(400).getTime(),
        ]);
      });

      it('gives the same events as columns (historyColumns), in the same order, and so the same metrics', async () => {
        // Twelve tasks of three types: runs that cost and take time (fractional, zero, free), a retry, interrupted runs
        // (requeued like a retry, told apart only by the event), dead letters, plans, a cancel, and several events in the
        // same millisecond — thirty-odd events, so an adapter that packs
        // history in blocks holds some in blocks and some not yet.
        const types = ['email', 'code', 'report'];
        for (let i = 0; i < 12; i++) {
          await store.create(newTask(`h${i}`, { type: types[i % 3] as string, approvalRequired: i % 4 === 1 }), t0);
        }
        for (let i = 0; i < 12; i++) {
          const id = `h${i}`;
          const start = 1_000 * i;
          const cost = { costUsd: [0.125, 0, 1 / 3, 0.000_000_7][i % 4] as number, durationMs: [1_000, 0, 1_234.5, 99][i % 4] as number };
          if (i % 5 === 4) {
            await store.apply(id, { type: 'cancel', by: 'ops' }, at(start));
            continue;
          }
          if (i % 4 === 1) {
            await store.apply(id, { type: 'plan' }, at(start));
            await store.apply(id, { type: 'plan_ready' }, at(start + 10), { run: run(id, 1, 'plan', cost) });
            await store.apply(id, { type: 'approve', by: 'ops' }, at(start + 10));
          }
          await store.apply(id, { type: 'execute' }, at(start + 20));
          let attempt = 1;
          if (i % 4 === 3) {
            await store.apply(id, { type: 'interrupt', reason: 'stop --now' }, at(start + 25), { run: run(id, attempt++, 'execute', cost) });
            await store.apply(id, { type: 'execute' }, at(start + 26));
          }
          if (i % 3 === 2) {
            await store.apply(id, { type: 'fail', error: anError, retryAt: at(start + 30) }, at(start + 30), { run: run(id, attempt++, 'execute', cost) });
            await store.apply(id, { type: 'retry' }, at(start + 30));
            await store.apply(id, { type: 'execute' }, at(start + 40));
          }
          const outcome: TaskEvent = i % 6 === 5 ? { type: 'dead_letter', error: anError } : { type: 'succeed' };
          await store.apply(id, outcome, at(start + 500 + i), { run: run(id, attempt, 'execute', cost) });
        }

        const all = await allHistory();
        expect(all.length).toBeGreaterThan(30);
        const cuts = [...new Set(all.map((e) => e.at))];
        const windows = [
          { since: at(-1), until: at(20_000) },
          // Bounds exactly on events: since takes its event in, until leaves its event out.
          { since: new Date(cuts[3] as number), until: new Date(cuts[cuts.length - 4] as number) },
          { since: new Date(cuts[1] as number), until: new Date((cuts[1] as number) + 1) },
          { since: at(5_000), until: at(5_000) },
          { since: at(50_000), until: at(60_000) },
        ];
        for (const window of [EVERYTHING, ...windows]) {
          const events = await store.history(window);
          const columns = await store.historyColumns(window);
          expect(columnRows(columns)).toEqual(events.map(metricsFields));
          // Task numbers are the store's own; two rows share one exactly when they share the task.
          for (let i = 0; i < events.length; i++) {
            for (let j = i + 1; j < events.length; j++) {
              expect(columns.task[i] === columns.task[j]).toBe(events[i]?.taskId === events[j]?.taskId);
            }
          }
          expect(Math.max(-1, ...columns.task)).toBeLessThan(columns.taskCount);
        }
        for (const window of windows) {
          for (const bucketMs of [undefined, 1_000, 60_000]) {
            const w = { ...window, ...(bucketMs === undefined ? {} : { bucketMs }) };
            const fromColumns = computeMetricsFromColumns(await store.historyColumns(window), w);
            expect(fromColumns).toEqual(computeMetrics(await store.history(window), w));
          }
          // The Prometheus counters read columns too: the totals of the event objects, to the bit.
          const fromEvents = emptyTotals();
          for (const e of await store.history(window)) addEvent(fromEvents, e);
          const totals = emptyTotals();
          addColumns(totals, await store.historyColumns(window));
          expect(totals).toEqual(fromEvents);
        }
        expect(all.filter((e) => e.event === 'interrupt')).toHaveLength(3);
      });
    });

    describe('control', () => {
      it('starts running, with no heartbeat', async () => {
        expect(await store.control()).toEqual({
          stopRequested: false, stopReason: null, stopChangedAt: null, heartbeatAt: null, heartbeatOwner: null,
        });
      });

      it('sets and clears the stop flag with its reason and time', async () => {
        const stopped = await store.setStop(true, 'budget exceeded', at(1_001));
        expect(stopped).toMatchObject({ stopRequested: true, stopReason: 'budget exceeded', stopChangedAt: at(1_001) });
        expect(await store.control()).toEqual(stopped);

        const resumed = await store.setStop(false, 'ignored when resuming', at(2_002));
        expect(resumed).toMatchObject({ stopRequested: false, stopReason: null, stopChangedAt: at(2_002) });
        expect(await store.control()).toEqual(resumed);
      });

      it('stores the heartbeat without touching the stop flag', async () => {
        await store.setStop(true, 'maintenance', at(1));
        await store.heartbeat('host-1:1234', at(5_555));
        expect(await store.control()).toEqual({
          stopRequested: true, stopReason: 'maintenance', stopChangedAt: at(1),
          heartbeatAt: at(5_555), heartbeatOwner: 'host-1:1234',
        });
        await store.heartbeat('host-2:99', at(6_666));
        expect(await store.control()).toMatchObject({ heartbeatAt: at(6_666), heartbeatOwner: 'host-2:99' });
      });
    });
  });
}
