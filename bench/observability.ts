import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ApiActions } from '../lib/api/backend.ts';
import { combineBackend, storeReads } from '../lib/api/backend.ts';
import { readMetrics, type ReadSources, type TimeWindow } from '../lib/app/reads.ts';
import { defaultConfig, type Config } from '../lib/core/config.ts';
import type { HistoryEvent } from '../lib/core/history.ts';
import { columnsFromEvents } from '../lib/core/history-columns.ts';
import { computeMetrics, computeMetricsFromColumns } from '../lib/core/metrics.ts';
import type { ErrorClass } from '../lib/core/retry.ts';
import { TASK_STATES, TERMINAL_STATES, type TaskEventType, type TaskState } from '../lib/core/state-machine.ts';
import { localReadSources } from '../lib/local/api-backend.ts';
import { startApiServer, type RunningApiServer } from '../lib/local/http-server.ts';
import { SqliteTaskStore } from '../lib/local/sqlite-store.ts';
import { Scratch } from './harness.ts';
import { formatMs, percentile, printTable, type Row } from './table.ts';
import { mulberry32 as prng } from '../test/prng.ts';

/**
 * Issue 4's proof figures: computeMetrics over 1M history events (the seed's target: < 100 ms), the same through the
 * SQLite store (readMetrics), dashboard / queue / status latency over real HTTP at 10k tasks (target: a refresh
 * < 200 ms) and the Prometheus scrape — both again with 100k finished tasks added, which must not slow them. The ratio column is the measured p50 against the target, so ×1 or more misses it.
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const METRICS_TARGET_MS = 100;
const REFRESH_TARGET_MS = 200;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };


/** Per task type: share of tasks, median run time (ms), median cost of a run (USD), approval share. */
const TYPES = [
  { type: 'general', share: 0.35, medianMs: 45_000, medianUsd: 0.04, approval: 0.05 },
  { type: 'email', share: 0.25, medianMs: 20_000, medianUsd: 0.02, approval: 0.1 },
  { type: 'research', share: 0.15, medianMs: 240_000, medianUsd: 0.35, approval: 0.05 },
  { type: 'code', share: 0.15, medianMs: 420_000, medianUsd: 0.6, approval: 0.2 },
  { type: 'payment', share: 0.05, medianMs: 30_000, medianUsd: 0.05, approval: 1 },
  { type: 'deploy', share: 0.05, medianMs: 180_000, medianUsd: 0.25, approval: 1 },
] as const;

const ERRORS: readonly ErrorClass[] = ['timeout', 'crash', 'rate_limit', 'agent_error'];

interface SyntheticTask {
  id: string;
  type: string;
  title: string;
  urgency: number;
  created: number;
  approvalRequired: boolean;
  events: HistoryEvent[];
}

/** A log-normal-ish value around `median` (spread ×/÷ ~3). */
function skewed(random: () => number, median: number): number {
  const gauss = (random() + random() + random() - 1.5) * 2; // roughly N(0, 1)
  return median * Math.exp(gauss * 1.1);
}

/**
 * One task's history from admission to a terminal state: an optional planning run and approval, then execution
 * attempts (up to 3) that succeed (~85%), fail retryably (→ retry_wait, then queued again) or dead-letter.
 */
function syntheticTask(random: () => number, index: number, createdAt: number): SyntheticTask {
  const created = Math.round(createdAt);
  let pick = random();
  let spec: (typeof TYPES)[number] = TYPES[0];
  for (const t of TYPES) {
    if (pick < t.share) {
      spec = t;
      break;
    }
    pick -= t.share;
  }
  // Joined, not a template literal: V8 keeps a 13-character concatenation as a rope, whose every character read is
  // several times slower than a flat string's, and ids read from a note, SQLite or JSON are always flat.
  const id = ['bench-', String(index).padStart(7, '0')].join('');
  const approvalRequired = random() < spec.approval;
  const events: HistoryEvent[] = [];
  let at = created + random() * 10 * 60_000;
  let attempt = 0;
  const push = (from: TaskState, to: TaskState, event: TaskEventType, extra: Partial<HistoryEvent> = {}): void => {
    const e: Mutable<HistoryEvent> = { taskId: id, taskType: spec.type, from, to, event, at: Math.round(at), attempt };
    if (extra.durationMs !== undefined) e.durationMs = extra.durationMs;
    if (extra.costUsd !== undefined) e.costUsd = extra.costUsd;
    if (extra.errorClass !== undefined) e.errorClass = extra.errorClass;
    events.push(e);
  };
  const run = (): { durationMs: number; costUsd: number } => {
    const durationMs = Math.round(skewed(random, spec.medianMs));
    at += durationMs;
    return { durationMs, costUsd: Math.round(skewed(random, spec.medianUsd) * 1e6) / 1e6 };
  };
  let queued: TaskState = 'needs_action';
  if (approvalRequired) {
    attempt = 1;
    push('needs_action', 'planning', 'plan');
    push('planning', 'pending_approval', 'plan_ready', run());
    at += 10 * 60_000 + random() * 6 * HOUR_MS;
    const answer = random();
    if (answer < 0.08) {
      push('pending_approval', 'rejected', 'reject');
      return { id, type: spec.type, title: `Benchmark task ${index}`, urgency: 1 + Math.floor(random() * 5), created, approvalRequired, events };
    }
    if (answer < 0.11) {
      push('pending_approval', 'expired', 'expire');
      return { id, type: spec.type, title: `Benchmark task ${index}`, urgency: 1 + Math.floor(random() * 5), created, approvalRequired, events };
    }
    push('pending_approval', 'approved', 'approve');
    queued = 'approved';
    at += random() * 5 * 60_000;
  }
  for (;;) {
    attempt++;
    push(queued, 'executing', 'execute');
    const r = run();
    const outcome = random();
    if (outcome < 0.85) {
      push('executing', 'done', 'succeed', r);
      break;
    }
    const errorClass = ERRORS[Math.floor(random() * ERRORS.length)] as ErrorClass;
    if (outcome < 0.95 && attempt < 3) {
      push('executing', 'retry_wait', 'fail', { ...r, errorClass });
      at += 30_000 * 2 ** attempt * (1 + random());
      push('retry_wait', queued, 'retry');
      continue;
    }
    push('executing', 'failed', 'dead_letter', { ...r, errorClass });
    break;
  }
  return { id, type: spec.type, title: `Benchmark task ${index}`, urgency: 1 + Math.floor(random() * 5), created, approvalRequired, events };
}

/** Finished tasks created uniformly over the last 30 days until `total` events; events after `now` are dropped. */
function syntheticHistory(total: number, now: number, seed = 7): { tasks: SyntheticTask[]; events: HistoryEvent[] } {
  const random = prng(seed);
  const tasks: SyntheticTask[] = [];
  const events: HistoryEvent[] = [];
  for (let i = 0; events.length < total; i++) {
    const task = syntheticTask(random, i, now - 30 * DAY_MS + random() * (30 * DAY_MS - HOUR_MS));
    task.events = task.events.filter((e) => e.at < now);
    tasks.push(task);
    for (const e of task.events) events.push(e);
  }
  events.sort((a, b) => a.at - b.at);
  events.length = Math.min(events.length, total);
  return { tasks, events };
}

/** Where an open task stands, by weight; running ones are capped at the default concurrency (5). */
const OPEN_STATES: ReadonlyArray<{ state: TaskState; weight: number }> = [
  { state: 'needs_action', weight: 0.7 },
  { state: 'pending_approval', weight: 0.1 },
  { state: 'approved', weight: 0.05 },
  { state: 'retry_wait', weight: 0.1 },
  { state: 'executing', weight: 0.03 },
  { state: 'planning', weight: 0.02 },
];

/**
 * `n` tasks in mixed states: ~80% finished over the last 30 days, the rest open (created within the last 48 h, their
 * history cut where they reached the open state drawn for them: queued, awaiting approval, approved, retrying, or
 * running — at most `maxRunning` of those, as with the default concurrency).
 */
function syntheticStore(n: number, now: number, maxRunning: number, seed = 11): SyntheticTask[] {
  const random = prng(seed);
  const tasks: SyntheticTask[] = [];
  let running = 0;
  for (let i = 0; i < n; i++) {
    const open = random() < 0.2;
    const created = open ? now - random() * 48 * HOUR_MS : now - 30 * DAY_MS + random() * (30 * DAY_MS - HOUR_MS);
    const task = syntheticTask(random, i, created);
    let events = task.events.filter((e) => e.at < now);
    if (open) {
      let pick = random();
      let target: TaskState = 'needs_action';
      for (const o of OPEN_STATES) {
        if (pick < o.weight) {
          target = o.state;
          break;
        }
        pick -= o.weight;
      }
      if ((target === 'executing' || target === 'planning') && running >= maxRunning) target = 'needs_action';
      const k = events.findIndex((e) => e.to === target);
      // Not on this task's path (no approval step, no retry): it waits in the queue, never started.
      events = k < 0 ? [] : events.slice(0, k + 1);
      if (k >= 0 && (target === 'executing' || target === 'planning')) running++;
    }
    task.events = events;
    tasks.push(task);
  }
  return tasks;
}

/** The states a task can still leave: what the reads list (lib/app/reads.ts). */
const OPEN_TASK_STATES: TaskState[] = TASK_STATES.filter((s) => !TERMINAL_STATES.has(s));
/** Finished tasks added under the 10k store to show a year of use: a task every ~5 minutes for a year. */
const BACKLOG_TASKS = 100_000;

/**
 * `n` tasks created over the year before the mixed store's 30 days, ids after its own: what a year of use leaves
 * behind. Each runs its whole course (done, failed, rejected or expired) long before now.
 */
function finishedBacklog(n: number, firstIndex: number, now: number, seed = 13): SyntheticTask[] {
  const random = prng(seed);
  const tasks: SyntheticTask[] = [];
  for (let i = 0; i < n; i++) tasks.push(syntheticTask(random, firstIndex + i, now - 395 * DAY_MS + random() * 365 * DAY_MS));
  return tasks;
}

// ---- Seeding a SQLite file in the store's schema (created by SqliteTaskStore.open, rows written directly).

async function seedDatabase(path: string, tasks: readonly SyntheticTask[], events: readonly HistoryEvent[], now: number): Promise<void> {
  // The store creates and migrates the file: the schema is lib/local/sqlite-schema.ts, not a copy.
  await SqliteTaskStore.open(path).close();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insertTask = db.prepare(
    `INSERT INTO tasks (id, title, type, sender, urgency, deadline, created, approval_required, approval_reasons, state,
       approval_by, approval_at, attempts, retry_at, last_error_class, last_error_message, reason, state_since, cost_usd,
       lease_owner, lease_pid, lease_expires_at, version)
     VALUES (@id, @title, @type, @sender, @urgency, @deadline, @created, @approval_required, @approval_reasons, @state,
       @approval_by, @approval_at, @attempts, @retry_at, @last_error_class, @last_error_message, @reason, @state_since,
       @cost_usd, @lease_owner, @lease_pid, @lease_expires_at, @version)`,
  );
  const insertHistory = db.prepare(
    `INSERT INTO history (task_id, task_type, from_state, to_state, event, at, attempt, duration_ms, cost_usd, error_class)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  db.transaction(() => {
    for (const t of tasks) {
      const last = t.events.at(-1);
      const state: TaskState = last?.to ?? 'needs_action';
      const stateSince = last?.at ?? t.created;
      const approve = t.events.find((e) => e.event === 'approve');
      const lastError = [...t.events].reverse().find((e) => e.errorClass !== undefined);
      const errorOpen = state === 'failed' || state === 'retry_wait';
      const running = state === 'planning' || state === 'executing';
      let cost = 0;
      for (const e of t.events) cost += e.costUsd ?? 0;
      insertTask.run({
        id: t.id,
        title: t.title,
        type: t.type,
        sender: null,
        urgency: t.urgency,
        deadline: t.urgency >= 4 ? t.created + 3 * DAY_MS : null,
        created: t.created,
        approval_required: t.approvalRequired ? 1 : 0,
        approval_reasons: JSON.stringify(t.approvalRequired ? [`type ${t.type} requires approval`] : []),
        state,
        approval_by: approve === undefined ? null : 'human',
        approval_at: approve?.at ?? null,
        attempts: last?.attempt ?? 0,
        retry_at: state === 'retry_wait' ? stateSince + 5 * 60_000 : null,
        last_error_class: errorOpen && lastError !== undefined ? (lastError.errorClass as string) : null,
        last_error_message: errorOpen && lastError !== undefined ? 'synthetic failure' : null,
        reason: state === 'rejected' ? 'not now' : null,
        state_since: stateSince,
        cost_usd: cost,
        lease_owner: running ? 'bench' : null,
        lease_pid: null,
        lease_expires_at: running ? now + 10 * 60_000 : null,
        version: t.events.length + 1,
      });
    }
    for (const e of events) {
      insertHistory.run(e.taskId, e.taskType, e.from, e.to, e.event, e.at, e.attempt, e.durationMs ?? null, e.costUsd ?? null, e.errorClass ?? null);
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/** What one transition costs through the store port (BEGIN IMMEDIATE, synchronous = FULL), to justify the bulk insert. */
async function applyRate(scratch: Scratch): Promise<number> {
  const store = SqliteTaskStore.open(scratch.path('apply-probe.db'));
  const n = 100;
  const now = new Date();
  for (let i = 0; i < n; i++) {
    await store.create(
      { id: `p-${i}`, title: 'probe', type: 'general', sender: null, urgency: 3, deadline: null, created: now, approvalRequired: false, approvalReasons: [] },
      now,
    );
  }
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await store.apply(`p-${i}`, { type: 'execute' }, now);
    await store.apply(`p-${i}`, { type: 'succeed' }, now);
  }
  const perApply = (performance.now() - t0) / (2 * n);
  await store.close();
  return perApply;
}

/**
 * Section 1's in-memory part: generates the history, times computeMetrics over the event objects and over the same
 * events as columns, and seeds the SQLite file at `dbPath` with them. Returns only figures, so the events can go.
 */
async function metricsInMemory(
  totalEvents: number,
  now: number,
  quick: boolean,
  dbPath: string,
): Promise<{ rows: Row[]; events: number; seedMs: number; description: string }> {
  let t0 = performance.now();
  const { tasks, events } = syntheticHistory(totalEvents, now);
  const genMs = performance.now() - t0;
  const mix = new Map<string, number>();
  for (const e of events) mix.set(e.to, (mix.get(e.to) ?? 0) + 1);
  const nowDate = new Date(now);
  const rows: Row[] = [];
  const iterations = quick ? 5 : 15;
  for (const w of WINDOWS) {
    const window = { since: new Date(now - w.ms), until: nowDate };
    let inWindow = 0;
    const samples = await timeIt(() => {
      inWindow = computeMetrics(events, window).completed;
    }, iterations, 2);
    rows.push(row(`computeMetrics ${w.label}`, samples, METRICS_TARGET_MS, events.length, { done: String(inWindow) }));
  }
  const columns = columnsFromEvents(events);
  for (const w of WINDOWS) {
    const window = { since: new Date(now - w.ms), until: nowDate };
    let inWindow = 0;
    const samples = await timeIt(() => {
      inWindow = computeMetricsFromColumns(columns, window).completed;
    }, iterations, 2);
    rows.push(row(`  from columns ${w.label}`, samples, METRICS_TARGET_MS, events.length, { done: String(inWindow) }));
  }
  t0 = performance.now();
  await seedDatabase(dbPath, tasks, events, now);
  const seedMs = performance.now() - t0;
  const description =
    `Events: ${tasks.length.toLocaleString('en-US')} tasks over 30 days; transitions by target state: ${[...mix].map(([to, c]) => `${to} ${c.toLocaleString('en-US')}`).join(', ')}; ` +
    `${TYPES.length} types (${TYPES.map((t) => t.type).join(', ')}); generated in ${formatMs(genMs)}.`;
  return { rows, events: events.length, seedMs, description };
}

function countHistoryBlocks(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[], number>('SELECT count(*) FROM history_blocks').pluck().get() ?? 0;
  } finally {
    db.close();
  }
}

// ---- Measuring

async function timeIt(fn: () => unknown, iterations: number, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return samples;
}

function row(name: string, samples: readonly number[], target: number, n: number | string, extra: Record<string, string> = {}): Row {
  const p50 = percentile(samples, 50);
  const p99 = percentile(samples, 99);
  return {
    name,
    n,
    p50,
    p95: percentile(samples, 95),
    max: Math.max(...samples),
    ratio: p50 / target,
    extra: { p99: formatMs(p99), runs: String(samples.length), verdict: p99 < target ? 'meets' : p50 < target ? 'p99 misses' : 'MISSES', ...extra },
  };
}

const WINDOWS: ReadonlyArray<{ label: string; ms: number }> = [
  { label: '24h', ms: DAY_MS },
  { label: '7d', ms: 7 * DAY_MS },
  { label: '30d', ms: 30 * DAY_MS },
];

const rejectWrites: ApiActions = {
  addTask: () => Promise.reject(new Error('read-only benchmark backend')),
  approve: () => Promise.reject(new Error('read-only benchmark backend')),
  reject: () => Promise.reject(new Error('read-only benchmark backend')),
  stop: () => Promise.reject(new Error('read-only benchmark backend')),
  resume: () => Promise.reject(new Error('read-only benchmark backend')),
};

async function serve(src: ReadSources, stateDir: string): Promise<RunningApiServer> {
  return startApiServer({ backend: combineBackend(storeReads(src), rejectWrites), stateDir, port: 0, advertise: false, web: false });
}

async function get(server: RunningApiServer, path: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.token}` } });
  const body = await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${body.slice(0, 300)}`);
  return ms;
}

async function getMany(server: RunningApiServer, path: string, n: number, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await get(server, path);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) samples.push(await get(server, path));
  return samples;
}

export async function benchObservability(options: { quick: boolean }): Promise<void> {
  const { quick } = options;
  const totalEvents = quick ? 100_000 : 1_000_000;
  const storeTasks = 10_000;
  const requests = quick ? 30 : 200;
  const scratch = new Scratch('observability');
  const config: Config = defaultConfig();
  try {
    // ---- 1. computeMetrics in memory (events as objects, then as columns), then readMetrics through the SQLite store.
    const now = Date.now();
    const nowDate = new Date(now);
    const dbPath = scratch.path('metrics.db');
    // In a function of its own so that the million event objects are garbage once it returns: the SQLite rows below
    // time what a server does, and a server holds no such array (with it alive, every collection walks it).
    const inMemory = await metricsInMemory(totalEvents, now, quick, dbPath);
    const rows = inMemory.rows;
    const perApply = await applyRate(scratch);
    // The rows were written behind the store's back, as a V1 file's history is when it migrates: opening seals them.
    let t0 = performance.now();
    const store = SqliteTaskStore.open(dbPath);
    const sealMs = performance.now() - t0;
    const blockCount = countHistoryBlocks(dbPath);
    const src: ReadSources = { store, config, clock: () => nowDate, location: scratch.dir };
    let columnsMs30d: number[] = [];
    let historyMs30d: number[] = [];
    for (const w of WINDOWS) {
      const window: TimeWindow = { since: new Date(now - w.ms), until: nowDate };
      const n = quick ? 5 : 15;
      let inWindow = 0;
      const samples = await timeIt(async () => {
        inWindow = (await readMetrics(src, window)).completed;
      }, n, 2);
      rows.push(row(`readMetrics (SQLite) ${w.label}`, samples, METRICS_TARGET_MS, inMemory.events, { done: String(inWindow) }));
      if (w.ms >= 30 * DAY_MS) {
        columnsMs30d = await timeIt(() => store.historyColumns(window), n, 1);
        // The row-by-row read readMetrics used before, for comparison: seconds a run, so fewer runs.
        historyMs30d = await timeIt(() => store.history(window), quick ? 2 : 3, 0);
      }
    }
    await store.close();
    rows.push(row('  of which store.historyColumns 30d', columnsMs30d, METRICS_TARGET_MS, inMemory.events));
    rows.push(row('  store.history 30d (objects, before)', historyMs30d, METRICS_TARGET_MS, inMemory.events));
    printTable(rows, {
      title: `Metrics over ${inMemory.events.toLocaleString('en-US')} history events`,
      ratioLabel: `p50 ÷ the seed's ${METRICS_TARGET_MS} ms target (×1 or more misses it); verdict compares p99 and p50 with it`,
      notes: [
        inMemory.description,
        'computeMetrics gets the whole array of event objects (every window filters it); "from columns" is computeMetricsFromColumns over ' +
          'the same events as in-memory columns (columnsFromEvents, built once): the computation readMetrics runs after its store read. ' +
          'readMetrics reads [since, until) from the store as columns (store.historyColumns: the history blocks the window overlaps, plus the unsealed tail), then computes.',
        `SQLite seeding: the file is created and migrated by SqliteTaskStore.open, then the task and history rows are INSERTed ` +
          `directly with better-sqlite3 in one transaction (synchronous = OFF for the seed only): ${formatMs(inMemory.seedMs)}. ` +
          `store.apply costs ${formatMs(perApply)} per transition here (fsync per commit), ~${((perApply * totalEvents) / 60_000).toFixed(0)} min for ${inMemory.events.toLocaleString('en-US')}. ` +
          `Reopening the store sealed the raw rows into ${blockCount} history blocks in ${formatMs(sealMs)} (one-time, one transaction per block; ` +
          'a store that writes through apply seals a block every 4,096 events as it goes).',
        'readMetrics runs with no resources hook (resources: unavailable), so it times the store read and the computation only; 2 warm-up runs per window. ' +
          'The event objects of the in-memory rows are released before the SQLite rows run.',
      ],
    });

    // ---- 2. and 3. HTTP: dashboard, queue, status and the Prometheus scrape at 10k tasks, then the same tasks under a
    // year of finished ones: the reads must cost with the open tasks, not with every task ever.
    const storeNow = Date.now();
    const mixed = syntheticStore(storeTasks, storeNow, config.orchestrator.max_concurrent_tasks);
    const backlog = finishedBacklog(BACKLOG_TASKS, storeTasks, storeNow);
    const variants = [
      { label: `${storeTasks / 1000}k`, tasks: mixed },
      { label: `${storeTasks / 1000}k+${BACKLOG_TASKS / 1000}k done`, tasks: [...mixed, ...backlog] },
    ];
    const apiRows: Row[] = [];
    const promRows: Row[] = [];
    const storeNotes: string[] = [];
    let pageBytes = 0;
    for (const [index, variant] of variants.entries()) {
      const vault = scratch.path(`vault-${index}`);
      const stateDir = scratch.path(`vault-${index}`, '.fte');
      mkdirSync(stateDir, { recursive: true });
      const storeEvents = variant.tasks.flatMap((t) => t.events).sort((a, b) => a.at - b.at);
      const seedStart = performance.now();
      await seedDatabase(join(stateDir, 'fte.db'), variant.tasks, storeEvents, storeNow);
      const seeded = performance.now() - seedStart;
      const states = new Map<TaskState, number>(TASK_STATES.map((s) => [s, 0]));
      for (const t of variant.tasks) {
        const s = t.events.at(-1)?.to ?? 'needs_action';
        states.set(s, (states.get(s) ?? 0) + 1);
      }
      const events24h = storeEvents.filter((e) => e.at >= storeNow - DAY_MS).length;
      storeNotes.push(
        `${variant.label}: ${variant.tasks.length.toLocaleString('en-US')} tasks and their ${storeEvents.length.toLocaleString('en-US')} history events ` +
          `(${events24h.toLocaleString('en-US')} in the last 24 h), seeded in ${formatMs(seeded)}; states: ` +
          `${[...states].filter(([, c]) => c > 0).map(([s, c]) => `${s} ${c}`).join(', ')}.`,
      );

      const apiStore = SqliteTaskStore.open(join(stateDir, 'fte.db'));
      const sources = (): ReadSources => localReadSources({ vaultDir: vault, config, store: apiStore });
      const server = await serve(sources(), stateDir);
      try {
        for (const path of ['/dashboard', '/queue', '/status']) {
          apiRows.push(row(`GET ${path} @${variant.label}`, await getMany(server, path, requests, 5), REFRESH_TARGET_MS, requests));
        }
        const reads = storeReads(sources());
        const window = (): TimeWindow => ({ since: new Date(Date.now() - DAY_MS), until: new Date() });
        const inProcess = quick ? 20 : 50;
        apiRows.push(row(`  in-process readDashboard @${variant.label}`, await timeIt(() => reads.dashboard(window()), inProcess, 3), REFRESH_TARGET_MS, inProcess));
        apiRows.push(row(`  of which store.list(open) @${variant.label}`, await timeIt(() => apiStore.list({ states: OPEN_TASK_STATES }), inProcess, 3), REFRESH_TARGET_MS, inProcess));
        if (index === 0) {
          // What every read used to start with; at 110k it takes seconds, so only the 10k store shows it.
          apiRows.push(row(`  store.list() of all tasks @${variant.label}`, await timeIt(() => apiStore.list(), inProcess, 3), REFRESH_TARGET_MS, inProcess));
        }
      } finally {
        await server.close();
      }

      const firstRuns = quick ? 3 : 5;
      const first: number[] = [];
      for (let i = 0; i < firstRuns; i++) {
        const fresh = await serve(sources(), stateDir);
        try {
          first.push(await get(fresh, '/metrics/prometheus'));
        } finally {
          await fresh.close();
        }
      }
      promRows.push(row(`first scrape (fresh backend) @${variant.label}`, first, REFRESH_TARGET_MS, firstRuns, { events: storeEvents.length.toLocaleString('en-US') }));
      const steady = await serve(sources(), stateDir);
      try {
        const res = await fetch(`${steady.url}/metrics/prometheus`, { headers: { authorization: `Bearer ${steady.token}` } });
        pageBytes = (await res.text()).length;
        promRows.push(row(`steady-state scrape @${variant.label}`, await getMany(steady, '/metrics/prometheus', requests, 5), REFRESH_TARGET_MS, requests, { events: storeEvents.length.toLocaleString('en-US') }));
      } finally {
        await steady.close();
      }
      await apiStore.close();
    }
    printTable(apiRows, {
      title: `API latency at ${variants.map((v) => v.label).join(' and ')} tasks (real HTTP, loopback)`,
      ratioLabel: `p50 ÷ the seed's ${REFRESH_TARGET_MS} ms dashboard-refresh target`,
      notes: [
        ...storeNotes,
        `The second store is the first plus ${BACKLOG_TASKS.toLocaleString('en-US')} tasks finished over the year before it (a year of use): same open tasks, same last 24 h.`,
        `Server: startApiServer (lib/local/http-server.ts, bearer token) over the local read sources (localReadSources: stop file, ` +
          `Needs_Action/ scan, resource sampler); one client, sequential requests with keep-alive, time = request to body read; 5 warm-up requests each.`,
        'Default windows (24 h metrics on /dashboard). The in-process rows call the same read without HTTP or response validation, the open-task listing ' +
          'the reads start with, and (10k only) the listing of every task they started with before, for comparison.',
      ],
    });
    printTable(promRows, {
      title: `Prometheus scrape (GET /metrics/prometheus) at ${variants.map((v) => v.label).join(' and ')} tasks`,
      ratioLabel: `p50 ÷ ${REFRESH_TARGET_MS} ms (the seed sets no scrape target; the refresh target is used as the yardstick)`,
      notes: [
        `Same stores as above, a server per store; page ${pageBytes.toLocaleString('en-US')} characters. A fresh backend's counter cache is empty, so its ` +
          'first scrape folds in the whole history (events column); later scrapes only the last 5 minutes.',
      ],
    });
  } finally {
    scratch.cleanup();
  }
}
