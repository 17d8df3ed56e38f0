import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HistoryEvent } from '../../lib/core/history.ts';
import { StaleWriteError } from '../../lib/core/store.ts';
import type { NewTask, TaskRecord } from '../../lib/core/store.ts';
import { MIGRATIONS, SCHEMA_VERSION } from '../../lib/local/sqlite-schema.ts';
import { SqliteTaskStore, StoreError } from '../../lib/local/sqlite-store.ts';
import { describeTaskStoreContract } from '../contract/task-store.contract.ts';

describeTaskStoreContract('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fte-'));
  // Blocks of 4 history rows: every contract test that writes history also seals some of it (history-blocks.ts).
  const store = SqliteTaskStore.open(join(dir, 'fte.db'), { historyBlockRows: 4 });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const t0 = new Date('2026-11-25T10:00:00.123Z');
const EVERYTHING = { since: new Date(0), until: new Date(8.64e15) };

function newTask(id: string, overrides: Partial<NewTask> = {}): NewTask {
  return {
    id, title: `Task ${id}`, type: 'code', sender: null, urgency: 3, deadline: null, created: t0,
    approvalRequired: false, approvalReasons: [], ...overrides,
  };
}

/** Catches what `fn` throws, so a test can look at the error itself. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('SqliteTaskStore', () => {
  let dir: string;
  let path: string;
  const opened: SqliteTaskStore[] = [];
  const open = (options?: { readonly?: boolean }): SqliteTaskStore => {
    const store = SqliteTaskStore.open(path, options);
    opened.push(store);
    return store;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fte-'));
    path = join(dir, 'fte.db');
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps everything across close and reopen', async () => {
    const first = open();
    await first.create(newTask('t1', { approvalReasons: ['type code'] }), t0);
    await first.apply('t1', { type: 'execute' }, t0, { lease: { owner: 'o', pid: 1, expiresAt: t0 } });
    await first.setStop(true, 'night', t0);
    const before = await first.get('t1');
    const historyBefore = await first.history(EVERYTHING);
    await first.close();

    const second = open();
    expect(await second.get('t1')).toEqual(before);
    expect(await second.history(EVERYTHING)).toEqual(historyBefore);
    expect((await second.control()).stopReason).toBe('night');
  });

  it('lets one of two connections win a race on the same expected version', async () => {
    const a = open();
    const b = open();
    await a.create(newTask('t1'), t0);
    const { version } = (await b.get('t1')) as TaskRecord;
    const results = await Promise.allSettled([
      a.apply('t1', { type: 'execute' }, t0, { expectedVersion: version }),
      b.apply('t1', { type: 'cancel', by: 'ops' }, t0, { expectedVersion: version }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(lost?.reason).toBeInstanceOf(StaleWriteError);
    expect(await a.history(EVERYTHING)).toHaveLength(1);
    expect((await b.get('t1'))?.version).toBe(version + 1);
  });

  it('turns a file that is not a database into STORE_UNAVAILABLE with a readable message', () => {
    writeFileSync(path, Buffer.alloc(16_384, 'garbage! '));
    const err = thrown(() => SqliteTaskStore.open(path));
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', name: 'StoreError' });
    expect((err as StoreError).message).toContain(path);
    expect((err as StoreError).message).toMatch(/not a database/);
    expect((err as StoreError).cause).toBeInstanceOf(Database.SqliteError);
  });

  it('turns a path that cannot be opened into STORE_UNAVAILABLE', () => {
    path = join(dir, 'no-such-folder', 'fte.db');
    expect(thrown(() => SqliteTaskStore.open(path))).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(thrown(() => SqliteTaskStore.open(join(dir, 'missing.db'), { readonly: true })))
      .toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('reads a database opened read-only and refuses writes to it with STORE_UNAVAILABLE', async () => {
    const writer = open();
    await writer.create(newTask('t1'), t0);
    const reader = open({ readonly: true });
    expect((await reader.get('t1'))?.state).toBe('needs_action');
    await expect(reader.create(newTask('t2'), t0)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(reader.apply('t1', { type: 'execute' }, t0)).rejects.toBeInstanceOf(StoreError);
    expect((await writer.get('t1'))?.version).toBe(1);
  });

  it('refuses a database from a newer fte', async () => {
    await open().close();
    const raw = new Database(path);
    raw.pragma('user_version = 99');
    raw.close();
    const err = thrown(() => SqliteTaskStore.open(path));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toMatch(/schema version 99/);
  });

  it('refuses calls after close with STORE_UNAVAILABLE', async () => {
    const store = open();
    await store.close();
    await expect(store.get('t1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('uses WAL and records the schema version', async () => {
    await open().create(newTask('t1'), t0);
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      raw.close();
    }
  });

  it('migrates a version-1 file: its existing tasks are counted, and later writes keep the counts', async () => {
    const raw = new Database(path);
    raw.exec(MIGRATIONS[0] as string);
    raw.pragma('user_version = 1');
    const insert = raw.prepare(
      `INSERT INTO tasks (id, title, type, urgency, created, approval_required, approval_reasons, state, attempts,
       state_since, cost_usd, version) VALUES (?, 'old', 'code', 3, ?, 0, '[]', ?, 0, ?, 0, 1)`,
    );
    insert.run('old-done-1', t0.getTime(), 'done', t0.getTime() + 5);
    insert.run('old-done-2', t0.getTime(), 'done', t0.getTime() + 9);
    insert.run('old-queued', t0.getTime(), 'needs_action', t0.getTime());
    raw.close();

    const store = open();
    expect(await store.stateCounts()).toMatchObject({ done: 2, needs_action: 1, executing: 0 });
    expect((await store.listLatest({ states: ['done'], limit: 1 })).map((r) => r.id)).toEqual(['old-done-2']);
    await store.apply('old-queued', { type: 'execute' }, t0);
    await store.create(newTask('new'), t0);
    expect(await store.stateCounts()).toMatchObject({ done: 2, needs_action: 1, executing: 1 });
  });

  it('keeps the counts of a task a raw SQL write moved or deleted (the counts follow the table, not the port)', async () => {
    const store = open();
    await store.create(newTask('a'), t0);
    await store.create(newTask('b'), t0);
    const raw = new Database(path);
    raw.prepare(`UPDATE tasks SET state = 'cancelled' WHERE id = 'a'`).run();
    raw.prepare(`DELETE FROM tasks WHERE id = 'b'`).run();
    raw.close();
    expect(await store.stateCounts()).toMatchObject({ needs_action: 0, cancelled: 1 });
  });

  it('refuses an invalid Date instead of storing NULL', async () => {
    const store = open();
    await expect(store.create(newTask('t1', { created: new Date(Number.NaN) }), t0)).rejects.toBeInstanceOf(RangeError);
    expect(await store.get('t1')).toBeNull();
  });

  it('reads 10,000 history events back in order', async () => {
    const store = open();
    await store.create(newTask('t1'), t0);
    // Written in one raw transaction: through `apply`, 10,000 fsynced commits would take most of the test's time.
    const raw = new Database(path);
    const insert = raw.prepare(
      `INSERT INTO history (task_id, task_type, from_state, to_state, event, at, attempt, duration_ms, cost_usd,
       error_class) VALUES ('t1', 'code', 'executing', 'retry_wait', 'fail', ?, ?, ?, ?, ?)`,
    );
    raw.transaction(() => {
      for (let i = 0; i < 10_000; i++) {
        const endsRun = i % 3 === 0;
        insert.run(t0.getTime() + i, i, endsRun ? i * 1.5 : null, endsRun ? i / 100 : null, endsRun ? 'crash' : null);
      }
    })();
    raw.close();

    const history = await store.history(EVERYTHING);
    expect(history).toHaveLength(10_000);
    expect(history.every((e, i) => e.at === t0.getTime() + i && e.attempt === i)).toBe(true);
    const base = { taskId: 't1', taskType: 'code', from: 'executing', to: 'retry_wait', event: 'fail' } as const;
    expect(history[3]).toStrictEqual({
      ...base, at: t0.getTime() + 3, attempt: 3, durationMs: 4.5, costUsd: 0.03, errorClass: 'crash',
    } satisfies HistoryEvent);
    expect(history[4]).toStrictEqual({ ...base, at: t0.getTime() + 4, attempt: 4 } satisfies HistoryEvent);
    const window = await store.history({ since: new Date(t0.getTime() + 1_000), until: new Date(t0.getTime() + 3_000) });
    expect(window.map((e) => e.attempt)).toEqual(Array.from({ length: 2_000 }, (_, i) => 1_000 + i));
  });

  it('leaves a consistent database when the writing process is killed with SIGKILL', async () => {
    const script = fileURLToPath(new URL('../fixtures/sqlite-crash-writer.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, path], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`writer exited early (${code}): ${stderr}`)));
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const raw = new Database(path);
    try {
      expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(raw.pragma('foreign_key_check')).toEqual([]);
    } finally {
      raw.close();
    }

    const store = open();
    const tasks = await store.list();
    expect(tasks.length).toBeGreaterThan(1);
    const byTask = new Map<string, HistoryEvent[]>();
    for (const event of await store.history(EVERYTHING)) {
      byTask.set(event.taskId, [...(byTask.get(event.taskId) ?? []), event]);
    }
    for (const task of tasks) {
      const events = byTask.get(task.id) ?? [];
      expect(events, task.id).toHaveLength(task.version - 1);
      expect(events.at(-1)?.to ?? 'needs_action', task.id).toBe(task.state);
      const runs = await store.runs(task.id);
      const runCost = runs.reduce((sum, r) => sum + r.costUsd, 0);
      expect(task.costUsd, task.id).toBeCloseTo(runCost, 10);
    }
  }, 30_000);
});
