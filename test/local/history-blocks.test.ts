import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TASK_EVENT_TYPES, TASK_STATES } from '../../lib/core/state-machine.ts';
import type { HistoryColumns } from '../../lib/core/history-columns.ts';
import type { HistoryEvent } from '../../lib/core/history.ts';
import { computeMetricsFromColumns, type MetricsWindow } from '../../lib/core/metrics.ts';
import type { NewTask } from '../../lib/core/store.ts';
import { MIGRATIONS, SCHEMA_VERSION } from '../../lib/local/sqlite-schema.ts';
import { SqliteTaskStore } from '../../lib/local/sqlite-store.ts';
import { referenceMetrics } from '../core/metrics-reference.ts';
import { prng, randomHistory, randomWindow } from '../core/random-history.ts';

/**
 * The SQLite store's history blocks (lib/local/history-blocks.ts): however the rows got into the file — through apply,
 * through a migration of an older file, or by raw SQL behind the store's back — historyColumns returns exactly the
 * events history returns, and metrics over them are the figures of the implementation metrics had before blocks.
 */

const DAY = 86_400_000;
const T0 = Date.parse('2026-03-29T00:00:00.000Z');
const EVERYTHING = { since: new Date(-8.64e15), until: new Date(8.64e15) };

let dir: string;
let path: string;
const opened: SqliteTaskStore[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fte-blocks-'));
  path = join(dir, 'fte.db');
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(options: { readonly?: boolean; historyBlockRows?: number } = {}): SqliteTaskStore {
  const store = SqliteTaskStore.open(path, options);
  opened.push(store);
  return store;
}

function newTask(id: string): NewTask {
  return { id, title: id, type: 'code', sender: null, urgency: 3, deadline: null, created: new Date(T0), approvalRequired: false, approvalReasons: [] };
}

/** Writes `events` (and a task row for each task) with plain SQL, as an older fte or a bulk import would have. */
function writeRaw(db: Database.Database, events: readonly HistoryEvent[]): void {
  const task = db.prepare(
    `INSERT INTO tasks (id, title, type, urgency, created, approval_required, approval_reasons, state, attempts,
     state_since, cost_usd, version) VALUES (?, 'raw', 'code', 3, ?, 0, '[]', 'done', 1, ?, 0, 1) ON CONFLICT (id) DO NOTHING`,
  );
  const history = db.prepare(
    `INSERT INTO history (task_id, task_type, from_state, to_state, event, at, attempt, duration_ms, cost_usd, error_class)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
  );
  db.transaction(() => {
    for (const e of events) {
      task.run(e.taskId, T0, T0);
      // NaN has no SQL form: SQLite stores it as NULL, which history reads back as absent.
      const nullable = (x: number | undefined): number | null => (x === undefined || Number.isNaN(x) ? null : x);
      history.run(e.taskId, e.taskType, e.from, e.to, e.event, e.at, e.attempt, nullable(e.durationMs), nullable(e.costUsd));
    }
  })();
}

/** Random edge-heavy events with whole-millisecond times, as the INTEGER `at` column holds them. */
function storableHistory(seed: number, n: number): HistoryEvent[] {
  return randomHistory(prng(seed), n, T0 - DAY, 3 * DAY, Math.ceil(n / 3)).map((e) => ({ ...e, at: Math.floor(e.at) }));
}

function countBlocks(): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[], number>('SELECT count(*) FROM history_blocks').pluck().get() ?? 0;
  } finally {
    db.close();
  }
}

function blockEdges(): Array<{ min: number; max: number }> {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[], { min: number; max: number }>('SELECT min_at AS min, max_at AS max FROM history_blocks ORDER BY last_seq').all();
  } finally {
    db.close();
  }
}

function rowsOf(c: HistoryColumns): unknown[] {
  return Array.from({ length: c.length }, (_, i) => [
    c.at[i], TASK_STATES[c.to[i] as number], TASK_EVENT_TYPES[c.event[i] as number], c.types[c.type[i] as number], c.durationMs[i], c.costUsd[i],
  ]);
}

function rowsOfEvents(events: readonly HistoryEvent[]): unknown[] {
  return events.map((e) => [e.at, e.to, e.event, e.taskType, e.durationMs ?? Number.NaN, e.costUsd ?? Number.NaN]);
}

/** historyColumns is history as columns, task for task, and gives the figures the old computation gives. */
async function expectColumnsMatchHistory(store: SqliteTaskStore, windows: readonly MetricsWindow[]): Promise<void> {
  for (const window of [EVERYTHING, ...windows]) {
    const events = await store.history(window);
    const columns = await store.historyColumns(window);
    expect(rowsOf(columns)).toEqual(rowsOfEvents(events));
    const firstIndexOf = new Map<string, number>();
    events.forEach((e, i) => {
      const first = firstIndexOf.get(e.taskId);
      if (first === undefined) firstIndexOf.set(e.taskId, i);
      else expect(columns.task[i]).toBe(columns.task[first]);
    });
    expect(new Set(columns.task).size).toBe(firstIndexOf.size);
    if (window !== EVERYTHING) expect(computeMetricsFromColumns(columns, window)).toEqual(referenceMetrics(events, window));
  }
}

/** Windows whose bounds fall exactly on the first and last times of blocks, and random ones. */
function windowsFor(seed: number): MetricsWindow[] {
  const random = prng(seed);
  const windows: MetricsWindow[] = [];
  for (const { min, max } of blockEdges().slice(0, 6)) {
    windows.push({ since: new Date(min), until: new Date(max) });
    windows.push({ since: new Date(min), until: new Date(max + 1) });
    windows.push({ since: new Date(min + 1), until: new Date(T0 + 2 * DAY) });
  }
  for (let i = 0; i < 12; i++) windows.push(randomWindow(random, T0 - DAY, 3 * DAY));
  return windows;
}

describe('SQLite history blocks', () => {
  it.each(Array.from({ length: SCHEMA_VERSION - 1 }, (_, i) => i + 1))(
    'migrates a version-%i file with 2,000 history events: sealed into blocks on open, read back exactly',
    async (version) => {
      const raw = new Database(path);
      for (const migration of MIGRATIONS.slice(0, version)) raw.exec(migration);
      raw.pragma(`user_version = ${version}`);
      writeRaw(raw, storableHistory(version, 2_000));
      raw.close();

      const store = open({ historyBlockRows: 128 });
      const check = new Database(path, { readonly: true });
      expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      check.close();
      // 15 full blocks; the last 80 rows stay in the tail until 128 are there.
      expect(countBlocks()).toBe(15);
      await expectColumnsMatchHistory(store, windowsFor(version));
    },
  );

  it('drops blocks sealed without events by a version-3 fte and seals the rows anew', async () => {
    const raw = new Database(path);
    for (const migration of MIGRATIONS.slice(0, 3)) raw.exec(migration);
    raw.pragma('user_version = 3');
    writeRaw(raw, storableHistory(31, 300));
    // A block of the version-3 format (31 bytes a row, no event column) over the first 128 rows.
    raw
      .prepare(
        `INSERT INTO history_blocks (last_seq, first_seq, rows, min_at, max_at, types, states, packed)
         SELECT 128, 1, 128, min(at), max(at), '["code"]', '["done"]', zeroblob(128 * 31) FROM history WHERE seq <= 128`,
      )
      .run();
    raw.close();

    const store = open({ historyBlockRows: 128 });
    expect(countBlocks()).toBe(2);
    await expectColumnsMatchHistory(store, windowsFor(32));
  });

  it('seals as apply writes, and a read-only connection reads the same columns', async () => {
    const store = open({ historyBlockRows: 5 });
    for (let i = 0; i < 8; i++) {
      await store.create(newTask(`t${i}`), new Date(T0));
      await store.apply(`t${i}`, { type: 'execute' }, new Date(T0 + i * 1_000));
      await store.apply(`t${i}`, i % 3 === 0 ? { type: 'dead_letter', error: { class: 'crash', message: 'x' } } : { type: 'succeed' }, new Date(T0 + i * 1_000 + 500), {
        run: {
          taskId: `t${i}`, attempt: 1, kind: 'execute', startedAt: new Date(T0), endedAt: new Date(T0), ok: i % 3 !== 0,
          errorClass: null, exitCode: 0, durationMs: 100 * i + 0.5, costUsd: i / 7, numTurns: 1, sessionId: null, logPath: null,
        },
      });
    }
    // 16 events: three blocks of 5, one row left in the tail.
    expect(countBlocks()).toBe(3);
    const reader = open({ readonly: true });
    const window = { since: new Date(T0), until: new Date(T0 + DAY) };
    const fromWriter = await store.historyColumns(window);
    expect(rowsOf(await reader.historyColumns(window))).toEqual(rowsOf(fromWriter));
    expect(computeMetricsFromColumns(fromWriter, window)).toEqual(referenceMetrics(await store.history(window), window));
  });

  it('reads rows written behind its back: inside, before and after sealed blocks, updated and deleted', async () => {
    const raw = new Database(path);
    for (const migration of MIGRATIONS) raw.exec(migration);
    raw.pragma(`user_version = ${SCHEMA_VERSION}`);
    writeRaw(raw, storableHistory(11, 200));
    raw.close();
    const store = open({ historyBlockRows: 16 });
    expect(countBlocks()).toBe(12);

    const edit = new Database(path);
    // A changed row drops the block holding it and every later one: they are tail again.
    edit.prepare('UPDATE history SET cost_usd = 9.5, duration_ms = 1 WHERE seq = 40').run();
    expect(countBlocks()).toBe(2);
    await expectColumnsMatchHistory(store, windowsFor(12));
    const reopened = open({ historyBlockRows: 16 });
    expect(countBlocks()).toBe(12);

    edit.prepare('DELETE FROM history WHERE seq = 100').run();
    expect(countBlocks()).toBe(6);
    // A row slipped into the gap the delete left, under a seq below the last sealed one.
    writeRaw(edit, []);
    edit
      .prepare(
        `INSERT INTO history (seq, task_id, task_type, from_state, to_state, event, at, attempt, duration_ms, cost_usd)
         SELECT 100, task_id, 'late', 'executing', 'done', 'succeed', at, 1, 123, 0.5 FROM history WHERE seq = 3`,
      )
      .run();
    expect(countBlocks()).toBe(6);
    await expectColumnsMatchHistory(reopened, windowsFor(13));
    // Appended rows are the tail; the writer's next apply (or open) seals them.
    writeRaw(edit, storableHistory(14, 50));
    edit.close();
    await expectColumnsMatchHistory(store, windowsFor(15));
    open({ historyBlockRows: 16 });
    expect(countBlocks()).toBe(15);
    await expectColumnsMatchHistory(store, windowsFor(16));
  });

  it('fails a read of a damaged block with STORE_UNAVAILABLE rather than returning wrong figures', async () => {
    const raw = new Database(path);
    for (const migration of MIGRATIONS) raw.exec(migration);
    raw.pragma(`user_version = ${SCHEMA_VERSION}`);
    writeRaw(raw, storableHistory(21, 40));
    raw.close();
    const store = open({ historyBlockRows: 8 });
    const edit = new Database(path);
    edit.prepare('UPDATE history_blocks SET packed = zeroblob(10) WHERE last_seq = 16').run();
    edit.close();
    await expect(store.historyColumns(EVERYTHING)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', name: 'StoreError' });
  });
});
