import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HistoryEvent } from '../../lib/core/history.ts';
import type { ErrorClass } from '../../lib/core/retry.ts';
import type { TaskEvent, TaskState } from '../../lib/core/state-machine.ts';
import type { NewTask, RunRecord, TaskStore } from '../../lib/core/store.ts';
import { mulberry32 as prng } from '../prng.ts';

/**
 * Test fixtures shared by the API and CLI tests: temp vaults, task records, and a seeded history generator that keeps
 * its own ledger of every event it applied, so tests can recompute each figure naively and compare it with what the
 * API and the CLI print.
 */

const created: string[] = [];

/** A fresh temporary folder, removed by `removeTempDirs` (each test file calls it after all its tests). */
export function tempDir(prefix = 'fte-api-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function newTask(id: string, created: Date, overrides: Partial<NewTask> = {}): NewTask {
  return {
    id,
    title: `Task ${id}`,
    type: 'code',
    sender: null,
    urgency: 3,
    deadline: null,
    created,
    approvalRequired: false,
    approvalReasons: [],
    ...overrides,
  };
}

export function run(
  taskId: string,
  attempt: number,
  endedAt: Date,
  durationMs: number,
  costUsd: number,
  options: { kind?: 'plan' | 'execute'; ok?: boolean; errorClass?: ErrorClass | null } = {},
): RunRecord {
  return {
    taskId,
    attempt,
    kind: options.kind ?? 'execute',
    startedAt: new Date(endedAt.getTime() - durationMs),
    endedAt,
    ok: options.ok ?? true,
    errorClass: options.errorClass ?? null,
    exitCode: options.ok === false ? 1 : 0,
    durationMs,
    costUsd,
    numTurns: 3,
    sessionId: `s-${taskId}-${attempt}`,
    logPath: null,
  };
}

/** A task note file, as a person or a watcher drops it into a folder. */
export function writeNote(vault: string, folder: string, id: string, frontmatter: Record<string, string | number>, body = 'Details.'): void {
  const lines = Object.entries(frontmatter).map(([k, v]) => `${k}: ${typeof v === 'string' ? JSON.stringify(v) : v}`);
  writeFileSync(join(vault, folder, `${id}.md`), `---\n${lines.join('\n')}\n---\n${body}\n`);
}

export { prng };

export interface SeedOptions {
  now: Date;
  tasks: number;
  seed: number;
  /** Tasks are admitted within [now − spanMs, now − 10 min]. */
  spanMs: number;
  types?: readonly string[];
}

export interface Seeded {
  /** Every history event the seeding wrote, as the store should hold it. */
  ledger: HistoryEvent[];
  /** Final state of each task. */
  states: Map<string, TaskState>;
}

const TYPES = ['email', 'code', 'research', 'payment'];

/**
 * A realistic history: most tasks succeed (some after a retried failure), some are dead-lettered, some wait for
 * approval, some are cancelled, some still wait or run. Every event goes through `store.apply`, so the store's own
 * transition rules and cost accounting produce the history the reports are computed from.
 */
export async function seedHistory(store: TaskStore, options: SeedOptions): Promise<Seeded> {
  const random = prng(options.seed);
  const types = options.types ?? TYPES;
  const ledger: HistoryEvent[] = [];
  const states = new Map<string, TaskState>();
  const nowMs = options.now.getTime();
  const latest = nowMs - 10 * 60_000;
  const earliest = nowMs - options.spanMs;
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));

  for (let i = 0; i < options.tasks; i++) {
    const id = `task-${String(i).padStart(5, '0')}`;
    const type = types[int(0, types.length - 1)] as string;
    const path = random();
    const needsApproval = path >= 0.8 && path < 0.88;
    let t = earliest + Math.floor(random() * (latest - earliest));
    await store.create(
      newTask(id, new Date(t), {
        type,
        urgency: int(1, 5) as 1 | 2 | 3 | 4 | 5,
        approvalRequired: needsApproval,
        approvalReasons: needsApproval ? ['tasks of type "payment" always need approval'] : [],
      }),
      new Date(t),
    );
    let attempt = 0;
    let state: TaskState = 'needs_action';
    const step = async (event: TaskEvent, advanceMs: number, runCost?: { durationMs: number; costUsd: number; ok: boolean; errorClass?: ErrorClass; kind?: 'plan' | 'execute' }) => {
      t = Math.min(t + advanceMs, nowMs - 1000);
      const at = new Date(t);
      const runRecord = runCost === undefined ? undefined : run(id, attempt, at, runCost.durationMs, runCost.costUsd, { ok: runCost.ok, errorClass: runCost.errorClass ?? null, kind: runCost.kind ?? 'execute' });
      const record = await store.apply(id, event, at, runRecord === undefined ? {} : { run: runRecord });
      // The ledger is built from what was asked, not read back from the store, so the two can be compared.
      const errorClass = event.type === 'fail' || event.type === 'dead_letter' ? event.error.class : (runRecord?.errorClass ?? undefined);
      ledger.push({
        taskId: id,
        taskType: type,
        from: state,
        to: record.state,
        event: event.type,
        at: t,
        attempt: record.attempts,
        ...(runRecord !== undefined ? { durationMs: runRecord.durationMs, costUsd: runRecord.costUsd } : {}),
        ...(errorClass !== undefined ? { errorClass } : {}),
      });
      state = record.state;
      states.set(id, record.state);
    };
    states.set(id, 'needs_action');
    const duration = (): number => int(2_000, 600_000);
    const cost = (): number => Math.round(random() * 50_000) / 1_000_000;

    if (needsApproval) {
      attempt++;
      await step({ type: 'plan' }, int(1_000, 60_000));
      await step({ type: 'plan_ready' }, 1, { durationMs: duration(), costUsd: cost(), ok: true, kind: 'plan' });
      continue; // waits for a human
    }
    if (path < 0.05) continue; // still queued
    if (path >= 0.88 && path < 0.93) {
      await step({ type: 'cancel', by: 'cli:test', reason: 'no longer needed' }, int(1_000, 600_000));
      continue;
    }
    attempt++;
    await step({ type: 'execute' }, int(1_000, 300_000));
    if (path >= 0.93) continue; // still running
    if (path < 0.2) {
      // A retryable failure first.
      const d = duration();
      await step({ type: 'fail', error: { class: 'agent_error', message: 'is_error: true' }, retryAt: new Date(t + d + 60_000) }, d, { durationMs: d, costUsd: cost(), ok: false, errorClass: 'agent_error' });
      await step({ type: 'retry' }, 60_000);
      attempt++;
      await step({ type: 'execute' }, int(1_000, 60_000));
    }
    const d = duration();
    if (path >= 0.7 && path < 0.8) {
      await step({ type: 'dead_letter', error: { class: 'invalid_task', message: 'cannot be done' } }, d, { durationMs: d, costUsd: cost(), ok: false, errorClass: 'invalid_task' });
    } else {
      await step({ type: 'succeed' }, d, { durationMs: d, costUsd: cost(), ok: true });
    }
  }
  return { ledger, states };
}

/** Nearest-rank percentile, written independently of lib/core/metrics.ts. */
export function nearestRank(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length - 1e-9));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

export interface NaiveMetrics {
  completed: number;
  failed: number;
  retried: number;
  costUsd: number;
  errorRate: number;
  latency: { avg: number; p50: number; p95: number; max: number };
  byType: Record<string, { completed: number; failed: number; costUsd: number; p50: number; p95: number }>;
}

/** The metrics of a window, recomputed from the ledger the simple way. */
export function naiveMetrics(ledger: readonly HistoryEvent[], since: number, until: number): NaiveMetrics {
  const inWindow = ledger.filter((e) => e.at >= since && e.at < until);
  const done = inWindow.filter((e) => e.to === 'done');
  const failed = inWindow.filter((e) => e.to === 'failed');
  const durations = done.map((e) => e.durationMs as number);
  const byType: NaiveMetrics['byType'] = {};
  for (const type of [...new Set(inWindow.map((e) => e.taskType))]) {
    const ofType = inWindow.filter((e) => e.taskType === type);
    const typeDurations = ofType.filter((e) => e.to === 'done').map((e) => e.durationMs as number);
    byType[type] = {
      completed: ofType.filter((e) => e.to === 'done').length,
      failed: ofType.filter((e) => e.to === 'failed').length,
      costUsd: ofType.reduce((s, e) => s + (e.costUsd ?? 0), 0),
      p50: nearestRank(typeDurations, 50),
      p95: nearestRank(typeDurations, 95),
    };
  }
  const finished = done.length + failed.length;
  return {
    completed: done.length,
    failed: failed.length,
    retried: inWindow.filter((e) => e.to === 'retry_wait').length,
    costUsd: inWindow.reduce((s, e) => s + (e.costUsd ?? 0), 0),
    errorRate: finished === 0 ? 0 : failed.length / finished,
    latency: {
      avg: durations.length === 0 ? 0 : Math.round(durations.reduce((s, d) => s + d, 0) / durations.length),
      p50: nearestRank(durations, 50),
      p95: nearestRank(durations, 95),
      max: durations.length === 0 ? 0 : Math.max(...durations),
    },
    byType,
  };
}
