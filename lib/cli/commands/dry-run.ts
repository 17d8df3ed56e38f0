import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { approvalDecision } from '../../core/approval.ts';
import { budgetState, BUDGET_WINDOW_MS } from '../../core/budget.ts';
import type { Config } from '../../core/config.ts';
import { DEFAULT_PARSE_LIMITS, parseTaskNote } from '../../core/parse-task.ts';
import { compareRanked, scoreTask } from '../../core/scoring.ts';
import { RUNNING_STATES } from '../../core/state-machine.ts';
import type { TaskRecord } from '../../core/store.ts';
import { listNoteIds, readNote } from '../../local/notes.ts';
import { SqliteTaskStore } from '../../local/sqlite-store.ts';
import { paint } from '../output.ts';

export interface DryRunRow {
  position: number;
  id: string;
  title: string;
  score: number;
  /** What the next run of this task would be: a planning run (approval needed) or the execution. */
  action: 'plan' | 'execute';
  /** Whether it would start on the next turn, given the cap and what already runs. */
  startsNow: boolean;
  why: string;
  source: 'queued' | 'new note';
}

export interface DryRunReport {
  stopped: string | null;
  running: number;
  capacity: number;
  tasks: DryRunRow[];
  invalid: Array<{ id: string; error: string }>;
}

/** What `fte orchestrator run` would do next, computed without writing a byte (the store is opened read-only). */
export async function dryRunReport(vault: string, config: Config): Promise<DryRunReport> {
  const now = new Date();
  const dbPath = join(vault, '.fte', 'fte.db');
  const store = existsSync(dbPath) ? SqliteTaskStore.open(dbPath, { readonly: true }) : null;
  try {
    const records: TaskRecord[] = store ? await store.list() : [];
    const byId = new Map(records.map((r) => [r.id, r]));
    const running = records.filter((r) => RUNNING_STATES.has(r.state)).length;
    const control = store ? await store.control() : null;
    const stopFile = existsSync(join(vault, config.orchestrator.stop_hook_file));
    const events = store ? await store.history({ since: new Date(now.getTime() - BUDGET_WINDOW_MS), until: new Date(now.getTime() + 1) }) : [];
    const budget = budgetState(events, config, now);
    const stopped = stopFile
      ? `the stop file ${config.orchestrator.stop_hook_file} exists`
      : control?.stopRequested
        ? `stopped${control.stopReason ? `: ${control.stopReason}` : ''}`
        : budget.exhausted;

    type Candidate = { id: string; title: string; approved: boolean; approvalRequired: boolean; reasons: readonly string[]; score: number; created: Date; source: DryRunRow['source'] };
    const candidates: Candidate[] = [];
    for (const r of records) {
      if (r.state !== 'needs_action' && r.state !== 'approved') continue;
      candidates.push({ id: r.id, title: r.title, approved: r.state === 'approved', approvalRequired: r.approvalRequired, reasons: r.approvalReasons, score: scoreTask(r, now, config).score, created: r.created, source: 'queued' });
    }
    const invalid: DryRunReport['invalid'] = [];
    const folder = join(vault, 'Needs_Action');
    for (const id of listNoteIds(folder)) {
      if (byId.has(id)) continue;
      const note = readNote(folder, id, DEFAULT_PARSE_LIMITS.maxBytes);
      if (note === null) continue;
      const parsed = parseTaskNote({ id, content: note.content, fallbackCreated: note.mtime });
      if (!parsed.ok) {
        invalid.push({ id, error: parsed.error.message });
        continue;
      }
      const decision = approvalDecision(parsed.task, config);
      const created = parsed.task.created.getTime() > now.getTime() ? now : parsed.task.created;
      candidates.push({ id, title: parsed.task.title, approved: false, approvalRequired: decision.required, reasons: decision.reasons, score: scoreTask({ ...parsed.task, created }, now, config).score, created, source: 'new note' });
    }
    candidates.sort((a, b) => {
      if (a.approved !== b.approved) return a.approved ? -1 : 1;
      return compareRanked(a, b);
    });
    const free = stopped ? 0 : Math.max(0, config.orchestrator.max_concurrent_tasks - running);
    const tasks = candidates.map((c, i): DryRunRow => {
      const action = c.approvalRequired && !c.approved ? 'plan' : 'execute';
      const why = c.approved
        ? 'approved by a person; approved work goes first'
        : c.approvalRequired
          ? `needs approval (${c.reasons.join('; ')}): a planning run first, nothing is changed until a person approves`
          : 'no approval needed';
      return { position: i + 1, id: c.id, title: c.title, score: c.score, action, startsNow: i < free, why, source: c.source };
    });
    return { stopped, running, capacity: config.orchestrator.max_concurrent_tasks, tasks, invalid };
  } finally {
    await store?.close();
  }
}

export function formatDryRun(report: DryRunReport, color: boolean): string {
  const lines: string[] = [];
  lines.push(`dry run: nothing was changed. ${report.running} running of ${report.capacity} slots.`);
  if (report.stopped) lines.push(paint('yellow', `dispatch is stopped: ${report.stopped}`, color));
  if (report.tasks.length === 0) lines.push('nothing to run.');
  for (const t of report.tasks) {
    const when = t.startsNow ? paint('green', 'now ', color) : paint('dim', 'later', color);
    lines.push(`${String(t.position).padStart(3)}  ${when}  ${t.action.padEnd(7)}  ${t.score.toFixed(2)}  ${t.id}  — ${t.why}`);
  }
  for (const bad of report.invalid) lines.push(paint('red', `  would quarantine ${bad.id}: ${bad.error}`, color));
  return `${lines.join('\n')}\n`;
}
