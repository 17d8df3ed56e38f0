import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTerminal } from '../../lib/core/state-machine.ts';
import { folderOf, VAULT_FOLDERS } from '../../lib/core/vault-layout.ts';
import type { IterationRecord } from '../../lib/local/iteration-journal.ts';
import {
  callsByPid,
  fte,
  fteEnv,
  leftoverProcesses,
  OrchestratorProcess,
  type EventLine,
  processesMentioning,
  readStandInLog,
  readStore,
  seeded,
  sleep,
  table,
  type StandInCall,
} from './support.ts';

/**
 * Crash trials (issue 7, Faults): `fte orchestrator run` as its own process on a vault of tasks with random outcomes,
 * killed with SIGKILL at random moments and restarted, again and again, while people approve some payments (by CLI and
 * by moving notes) and new notes keep arriving; then it is left to finish (`--once`, approving whatever still waits).
 * Afterwards the store, the vault and the stand-in agent's own log are compared, and every way a crash could lose,
 * duplicate or misplace work is counted.
 */

export type Outcome = 'succeed' | 'fail' | 'fail-once' | 'approval' | 'slow';

export interface CrashTrialOptions {
  tasks: number;
  kills: number;
  concurrency?: number;
  seed?: number;
  /** Fraction of the notes written before the first start; the rest arrive while the orchestrator runs. */
  upFront?: number;
  /** Range of the time each orchestrator runs before its kill -9, in ms after its spawn. */
  killAfterMs?: [number, number];
  log?: (line: string) => void;
  /** Keep the scratch directory (for a post-mortem); it is printed. */
  keep?: boolean;
}

interface PlannedTask {
  id: string;
  outcome: Outcome;
  note: string;
  /** Approve while the orchestrator runs (by CLI or by moving the note), rather than at the end. */
  approveEarly: boolean;
  written: boolean;
}

interface Generation {
  pid: number;
  spawnAt: number;
  /** When SIGKILL was sent; null for the final `--once` runs, which end by themselves. */
  killAt: number | null;
  exit: { code: number | null; signal: string | null };
  stderr: string;
  dispatches: number;
}

/** A task executed successfully by the agent more than once. */
export interface Reexecution {
  taskId: string;
  /** How the earlier success was lost: the agent outlived its orchestrator, or the orchestrator died after it ended. */
  cause: 'agent outlived its orchestrator' | 'orchestrator killed before recording the result' | 'no kill in between';
  /** The earlier success was in fte's iteration journal (ok, completion promise seen) before the kill. */
  journaled: boolean;
  /** ms from the earlier success's end to the kill (negative: the agent ended after the kill). */
  endToKillMs: number | null;
}

export interface CrashTrialReport {
  seed: number;
  tasks: number;
  kills: number;
  concurrency: number;
  durationMs: number;
  outcomes: Record<Outcome, number>;
  finalStates: Record<string, number>;
  /** Notes written that have no terminal record, or no note in any folder. */
  lost: string[];
  /** Tasks with more than one `succeed` in the store's history. */
  doubleSucceedEvents: string[];
  /** Every task whose execution the agent completed successfully more than once. */
  reexecutions: Reexecution[];
  /** Re-executions no kill explains (or that fte had journaled as complete): duplicated completions. */
  duplicatedCompletions: string[];
  stuck: string[];
  approvalsBypassed: string[];
  paymentsExecutedTwice: string[];
  notInExactlyOneFolder: string[];
  folderStateDisagreements: string[];
  unexpectedQuarantines: string[];
  overlappingRuns: string[];
  leftoverProcesses: number[];
  leftoverPidFiles: string[];
  unexpectedExits: string[];
  interruptionsRecovered: number;
  /** Runs a killed orchestrator left that the next one finished from the agent's spooled output (not repeated). */
  runsAdopted: number;
  /** Runs requeued because nothing said how they ended, with fte's reason (`recover` events and requeues at start). */
  requeuedUnknown: string[];
  agentRuns: number;
  approvals: { cliEarly: number; movedEarly: number; cliAtEnd: number; cliFailed: number };
  finalRuns: number;
  table: string;
  scratch: string;
}

const SETTINGS = (concurrency: number): string => `
orchestrator:
  max_concurrent_tasks: ${concurrency}
  poll_interval: 1
  heartbeat_interval: 1
  claude_timeout: 30
  kill_grace_period: 1
  shutdown_timeout: 2
retry:
  max_attempts: 4
  initial_backoff: 0.2
  max_backoff: 1
  per_type:
    payment:
      max_attempts: 1   # as config/orchestrator.yaml ships it: never repeat a payment on its own
`;

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

function plan(count: number, random: () => number): PlannedTask[] {
  const out: PlannedTask[] = [];
  const weights: Array<[Outcome, number]> = [
    ['succeed', 0.35],
    ['fail', 0.12],
    ['fail-once', 0.15],
    ['approval', 0.23],
    ['slow', 0.15],
  ];
  for (let i = 0; i < count; i++) {
    let r = random();
    let outcome: Outcome = 'succeed';
    for (const [o, w] of weights) {
      if (r < w) {
        outcome = o;
        break;
      }
      r -= w;
    }
    const id = `t${String(i).padStart(4, '0')}-${outcome}`;
    const urgency = pick(random, ['low', 'normal', 'high', 'critical']);
    const delay = Math.floor(random() * 300);
    let fm = `title: "Trial task ${i} (${outcome})"\nurgency: ${urgency}\n`;
    let body: string;
    switch (outcome) {
      case 'succeed':
        body = `Summarise the numbers.\nstand-in: succeed\nstand-in: delay ${delay}`;
        break;
      case 'fail':
        body = `This one always fails.\nstand-in: fail\nstand-in: delay ${delay}`;
        break;
      case 'fail-once':
        body = `This one fails once, then works.\nstand-in: fail-once\nstand-in: delay ${delay}`;
        break;
      case 'approval':
        fm += 'type: payment\n';
        body = `Pay invoice ${1000 + i} to the supplier.\nstand-in: succeed\nstand-in: delay ${delay}`;
        break;
      case 'slow':
        body = `A long one.\nstand-in: slow ${1000 + Math.floor(random() * 3000)}`;
        break;
    }
    out.push({ id, outcome, note: `---\n${fm}---\n${body}\n`, approveEarly: outcome === 'approval' && random() < 0.5, written: false });
  }
  return out;
}

export async function runCrashTrials(options: CrashTrialOptions): Promise<CrashTrialReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const concurrency = options.concurrency ?? 5;
  const random = seeded(seed);
  const log = options.log ?? (() => {});
  const [killMin, killMax] = options.killAfterMs ?? [200, 3000];
  const started = Date.now();

  const scratch = mkdtempSync(join(tmpdir(), 'fte-crash-'));
  const vault = join(scratch, 'vault');
  mkdirSync(join(vault, '.fte'), { recursive: true });
  mkdirSync(join(vault, 'Needs_Action'), { recursive: true });
  writeFileSync(join(vault, '.fte', 'orchestrator.yaml'), SETTINGS(concurrency));
  const standInDir = join(scratch, 'stand-in');
  mkdirSync(standInDir, { recursive: true });
  const env = fteEnv(standInDir);
  const standInLog = env['FTE_STAND_IN_LOG'] as string;

  const tasks = plan(options.tasks, random);
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const write = (t: PlannedTask): void => {
    writeFileSync(join(vault, 'Needs_Action', `${t.id}.md`), t.note);
    t.written = true;
  };
  const upFront = Math.ceil(tasks.length * (options.upFront ?? 0.6));
  for (const t of tasks.slice(0, upFront)) write(t);
  const late = tasks.slice(upFront);

  const approvals = { cliEarly: 0, movedEarly: 0, cliAtEnd: 0, cliFailed: 0 };
  const attempted = new Set<string>();
  const pendingIds = (): string[] =>
    existsSync(join(vault, 'Pending_Approval'))
      ? readdirSync(join(vault, 'Pending_Approval')).filter((n) => n.endsWith('.md')).map((n) => n.slice(0, -3))
      : [];

  // A person approving some payments while the orchestrator runs (and while it is down): half by CLI, half by moving
  // the note to Approved/.
  let approving = true;
  const approver = (async () => {
    while (approving) {
      await sleep(300 + random() * 500);
      for (const id of pendingIds()) {
        if (!approving) break;
        const t = byId.get(id);
        if (t === undefined || !t.approveEarly || attempted.has(id)) continue;
        attempted.add(id);
        if (random() < 0.5) {
          try {
            renameSync(join(vault, 'Pending_Approval', `${id}.md`), join(vault, 'Approved', `${id}.md`));
            approvals.movedEarly++;
          } catch {
            // fte moved it first
          }
        } else {
          const r = await fte(vault, env, ['approve', id, '--json']);
          if (r.code === 0) approvals.cliEarly++;
          else approvals.cliFailed++;
        }
      }
    }
  })();

  const generations: Generation[] = [];
  const eventLines: EventLine[] = [];
  const unexpectedExits: string[] = [];
  try {
    for (let k = 0; k < options.kills; k++) {
      const o = new OrchestratorProcess(vault, env);
      const lifetime = killMin + random() * (killMax - killMin);
      // Some of the late notes arrive at a random moment of this run.
      const batch = late.splice(0, Math.ceil(late.length / (options.kills - k)));
      const dropAt = random() * lifetime;
      await sleep(dropAt);
      for (const t of batch) write(t);
      await sleep(lifetime - dropAt);
      const exitedEarly = o.child.exitCode !== null || o.child.signalCode !== null;
      const killAt = await o.kill9();
      const exit = await o.exited;
      if (exitedEarly) unexpectedExits.push(`generation ${k} (pid ${o.pid}) exited by itself: ${exit.code} ${exit.signal} ${o.stderr.slice(-500)}`);
      generations.push({ pid: o.pid, spawnAt: o.spawnedAt, killAt, exit, stderr: o.stderr, dispatches: o.lines.filter((l) => l.event === 'dispatch').length });
      eventLines.push(...o.lines);
      log(`kill ${k + 1}/${options.kills} at ${killAt}: pid ${o.pid} after ${Math.round(killAt - o.spawnedAt)} ms, ${o.lines.filter((l) => l.event === 'dispatch').length} dispatches, ${o.lines.filter((l) => l.event === 'done').length} done`);
      await sleep(random() * 400);
    }
    for (const t of late.splice(0)) write(t);
  } finally {
    approving = false;
    await approver;
  }

  // Let it finish: run until nothing is left that fte can do alone, approve whatever waits, repeat.
  let finalRuns = 0;
  for (let round = 0; round < 20; round++) {
    const spawnAt = Date.now();
    const r = await fte(vault, env, ['orchestrator', 'run', '--once', '--no-api', '--json'], { timeoutMs: 240_000 });
    finalRuns++;
    for (const line of r.stdout.split('\n')) {
      if (!line.trim()) continue;
      try {
        eventLines.push(JSON.parse(line) as EventLine);
      } catch {
        // not an event line
      }
    }
    generations.push({ pid: -1, spawnAt, killAt: null, exit: { code: r.code, signal: r.signal }, stderr: r.stderr, dispatches: 0 });
    if (r.code !== 0) unexpectedExits.push(`final run ${round} exited ${r.code} ${r.signal}: ${r.stderr.slice(-500)}`);
    const waiting = (await readStore(vault)).tasks.filter((t) => t.state === 'pending_approval').map((t) => t.id);
    log(`final run ${round + 1}: exit ${r.code}; ${waiting.length} waiting for approval`);
    if (waiting.length === 0) break;
    for (const id of waiting) {
      const a = await fte(vault, env, ['approve', id, '--json']);
      if (a.code === 0) approvals.cliAtEnd++;
      else approvals.cliFailed++;
    }
  }

  // ---- Analysis
  const dump = await readStore(vault);
  const records = new Map(dump.tasks.map((t) => [t.id, t]));
  const where = new Map<string, string[]>();
  for (const folder of VAULT_FOLDERS) {
    const dir = join(vault, folder);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.md') || name.startsWith('.') || name.endsWith('.error.md')) continue;
      const id = name.slice(0, -3);
      where.set(id, [...(where.get(id) ?? []), folder]);
    }
  }
  const calls = [...callsByPid(readStandInLog(standInLog)).values()];
  const kills = generations.map((g) => g.killAt).filter((k): k is number => k !== null);

  const lost: string[] = [];
  const stuck: string[] = [];
  const notInExactlyOneFolder: string[] = [];
  const folderStateDisagreements: string[] = [];
  for (const t of tasks) {
    const record = records.get(t.id);
    const folders = where.get(t.id) ?? [];
    if (record === undefined || !isTerminal(record.state) || folders.length === 0) lost.push(t.id);
    if (record !== undefined && !isTerminal(record.state)) stuck.push(`${t.id} (${record.state})`);
  }
  for (const [id, folders] of where) {
    if (folders.length !== 1) notInExactlyOneFolder.push(`${id}: ${folders.join(', ')}`);
    const record = records.get(id);
    if (record !== undefined && folders.length === 1 && folders[0] !== folderOf(record.state)) {
      folderStateDisagreements.push(`${id}: ${record.state} but in ${folders[0]}/`);
    }
  }
  for (const record of dump.tasks) if (!where.has(record.id)) notInExactlyOneFolder.push(`${record.id}: in no folder`);

  const failedDir = join(vault, 'Failed');
  const unexpectedQuarantines = existsSync(failedDir) ? readdirSync(failedDir).filter((n) => n.endsWith('.error.md')) : [];

  const succeeds = new Map<string, number>();
  for (const e of dump.history) if (e.event === 'succeed') succeeds.set(e.taskId, (succeeds.get(e.taskId) ?? 0) + 1);
  const doubleSucceedEvents = [...succeeds].filter(([, n]) => n > 1).map(([id, n]) => `${id} (${n})`);

  // Executions the agent completed successfully, per task, in start order.
  const reexecutions: Reexecution[] = [];
  const duplicatedCompletions: string[] = [];
  const overlappingRuns: string[] = [];
  const callsByTask = new Map<string, StandInCall[]>();
  for (const c of calls) {
    if (c.taskId === null) continue;
    callsByTask.set(c.taskId, [...(callsByTask.get(c.taskId) ?? []), c]);
  }
  for (const [id, list] of callsByTask) {
    list.sort((a, b) => a.startMs - b.startMs);
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1] as StandInCall;
      const cur = list[i] as StandInCall;
      if (typeof prev.endMs === 'number' && cur.startMs < prev.endMs) overlappingRuns.push(`${id}: pid ${cur.pid} started ${prev.endMs - cur.startMs} ms before pid ${prev.pid} ended`);
    }
    const ok = list.filter((c) => !c.planning && c.exitCode === 0);
    const journal = readJournal(vault, id);
    // An agent's own start time is some tens of ms after fte spawned it (Node starting up): the kill that orphaned it
    // may fall in between. fte spawned it just after the last `execute` event before it logged its start.
    const executeEvents = dump.history.filter((e) => e.taskId === id && e.event === 'execute').map((e) => e.at);
    for (let i = 1; i < ok.length; i++) {
      const a = ok[i - 1] as StandInCall;
      const b = ok[i] as StandInCall;
      const spawnedAt = Math.max(...executeEvents.filter((at) => at <= a.startMs), a.startMs - 5000);
      const kill = kills.find((k) => k > spawnedAt && k < b.startMs) ?? null;
      const journaled = journal.some((r) => r.sessionId === a.sessionId && r.ok && r.promiseSeen && (kill === null || Date.parse(r.endedAt) <= kill));
      const endMs = typeof a.endMs === 'number' ? a.endMs : null;
      const cause: Reexecution['cause'] =
        kill === null ? 'no kill in between' : endMs === null || endMs > kill ? 'agent outlived its orchestrator' : 'orchestrator killed before recording the result';
      reexecutions.push({ taskId: id, cause, journaled, endToKillMs: kill === null || endMs === null ? null : kill - endMs });
      if (kill === null || journaled) duplicatedCompletions.push(`${id}: ${cause}${journaled ? ' (fte had journaled the completion)' : ''}`);
    }
  }

  // Approval: every execution of a task that needs approval began after an approval that was still standing.
  const approvalsBypassed: string[] = [];
  for (const record of dump.tasks) {
    if (!record.approvalRequired) continue;
    const events = dump.history.filter((e) => e.taskId === record.id);
    let approvedNow = false;
    for (const e of events) {
      if (e.event === 'approve') approvedNow = true;
      if (e.event === 'requeue' || e.event === 'reject' || e.event === 'expire') approvedNow = false;
      if (e.event === 'execute' && !approvedNow) approvalsBypassed.push(`${record.id}: execute event without a standing approval`);
    }
    for (const c of callsByTask.get(record.id) ?? []) {
      if (c.planning) continue;
      const before = events.filter((e) => e.at <= c.startMs);
      const lastApprove = before.map((e) => e.event).lastIndexOf('approve');
      const revoked = before.slice(lastApprove + 1).some((e) => e.event === 'requeue' || e.event === 'reject' || e.event === 'expire');
      if (lastApprove < 0 || revoked) approvalsBypassed.push(`${record.id}: the agent executed it (pid ${c.pid}) before any standing approval`);
    }
    if (byId.get(record.id)?.outcome !== 'approval') approvalsBypassed.push(`${record.id}: needs approval but was not planned as a payment`);
  }
  for (const t of tasks) {
    if (t.outcome === 'approval' && records.get(t.id)?.approvalRequired === false) approvalsBypassed.push(`${t.id}: a payment admitted without an approval requirement`);
  }

  // A payment is never repeated on its own (retry.per_type.payment.max_attempts: 1): after a crash during its
  // execution it is dead-lettered for a person to look at, not executed again.
  const paymentsExecutedTwice: string[] = [];
  for (const t of tasks) {
    if (t.outcome !== 'approval') continue;
    const executes = dump.history.filter((e) => e.taskId === t.id && e.event === 'execute').length;
    const agentExecutions = (callsByTask.get(t.id) ?? []).filter((c) => !c.planning).length;
    if (executes > 1 || agentExecutions > 1) paymentsExecutedTwice.push(`${t.id}: ${executes} execute events, ${agentExecutions} agent executions`);
  }

  // Nothing of the scenario still runs: every agent the log names, their groups, and anything carrying its paths.
  const pids = new Set<number>();
  for (const c of calls) {
    pids.add(c.pid);
    if (c.grandchildPid) pids.add(c.grandchildPid);
  }
  const leftover = new Set(leftoverProcesses(pids));
  for (const p of processesMentioning(scratch)) leftover.add(p.pid);
  const runDir = join(vault, '.fte', 'run');
  const leftoverPidFiles = existsSync(runDir) ? readdirSync(runDir) : [];

  const finalStates: Record<string, number> = {};
  for (const r of dump.tasks) finalStates[r.state] = (finalStates[r.state] ?? 0) + 1;
  const outcomes = { succeed: 0, fail: 0, 'fail-once': 0, approval: 0, slow: 0 } as Record<Outcome, number>;
  for (const t of tasks) outcomes[t.outcome]++;
  const interruptionsRecovered = dump.history.filter((e) => e.event === 'interrupt').length;
  const runsAdopted = eventLines.filter((l) => l.event === 'adopt').length;
  // Runs fte could not finish after a kill: no spool of the attempt (the kill came between the task's start and its
  // agent's), or an agent that left nothing to judge it by.
  const requeuedUnknown = eventLines.filter((l) => l.event === 'recover' && l.message.includes('outcome unknown')).map((l) => l.message);

  const byCause = (cause: Reexecution['cause']): number => reexecutions.filter((r) => r.cause === cause).length;
  const windows = reexecutions.filter((r) => r.cause === 'orchestrator killed before recording the result' && r.endToKillMs !== null).map((r) => r.endToKillMs as number);
  const durationMs = Date.now() - started;
  const rows: Array<Array<string | number>> = [
    ['lost tasks (no terminal record, or no note)', lost.length, '0'],
    ['duplicated completions: two `succeed` in the store', doubleSucceedEvents.length, '0'],
    ['duplicated completions: agent succeeded twice, no kill between, or fte had journaled it', duplicatedCompletions.length, '0'],
    ['tasks stuck in a non-terminal state with no owner', stuck.length, '0'],
    ['approvals bypassed', approvalsBypassed.length, '0'],
    ['payments executed more than once', paymentsExecutedTwice.length, '0'],
    ['notes in two folders or none', notInExactlyOneFolder.length, '0'],
    ['folder/state disagreements', folderStateDisagreements.length, '0'],
    ['unexpected quarantines', unexpectedQuarantines.length, '0'],
    ['runs of one task overlapping', overlappingRuns.length, '0'],
    ['agent processes left running', leftover.size, '0'],
    ['agent pid files left in .fte/run', leftoverPidFiles.length, '0'],
    ['orchestrator exits other than kill -9 / --once', unexpectedExits.length, '0'],
    ['re-executed after a kill (at-least-once), all causes', reexecutions.length - duplicatedCompletions.length, 'reported'],
    ['  agent outlived its killed orchestrator', byCause('agent outlived its orchestrator'), 'reported'],
    [
      `  orchestrator killed after the agent ended${windows.length ? ` (${Math.min(...windows)}–${Math.max(...windows)} ms later)` : ''}`,
      byCause('orchestrator killed before recording the result'),
      'reported',
    ],
    ['runs a killed orchestrator left, finished by the next from the agent\'s spool', runsAdopted, 'reported'],
    ['runs requeued after a kill: outcome unknown (nothing recorded)', requeuedUnknown.length, 'reported'],
  ];
  const info = [
    `crash trials: ${tasks.length} tasks (${Object.entries(outcomes).map(([k, v]) => `${v} ${k}`).join(', ')}), ${options.kills} × kill -9, ` +
      `concurrency ${concurrency}, seed ${seed}, ${(durationMs / 1000).toFixed(1)} s`,
    `final states: ${Object.entries(finalStates).map(([k, v]) => `${k} ${v}`).join(', ')}; ${interruptionsRecovered} interrupted runs recovered; ` +
      `${runsAdopted} runs finished by adoption after a kill, ${requeuedUnknown.length} requeued as unknown; ` +
      `${calls.length} agent runs logged; approvals: ${approvals.cliEarly} by CLI and ${approvals.movedEarly} by moving the note while running, ` +
      `${approvals.cliAtEnd} by CLI at the end (${approvals.cliFailed} CLI approvals refused); ${finalRuns} final --once run(s)`,
    table(['check', 'count', 'must be'], rows),
  ].join('\n');

  if (!options.keep) rmSync(scratch, { recursive: true, force: true });
  return {
    seed,
    tasks: tasks.length,
    kills: options.kills,
    concurrency,
    durationMs,
    outcomes,
    finalStates,
    lost,
    doubleSucceedEvents,
    reexecutions,
    duplicatedCompletions,
    stuck,
    approvalsBypassed,
    paymentsExecutedTwice,
    notInExactlyOneFolder,
    folderStateDisagreements,
    unexpectedQuarantines,
    overlappingRuns,
    leftoverProcesses: [...leftover],
    leftoverPidFiles,
    unexpectedExits,
    interruptionsRecovered,
    runsAdopted,
    requeuedUnknown,
    agentRuns: calls.length,
    approvals,
    finalRuns,
    table: info,
    scratch,
  };
}

function readJournal(vault: string, id: string): IterationRecord[] {
  const path = join(vault, '.fte', 'iterations', `${id}.jsonl`);
  if (!existsSync(path)) return [];
  const out: IterationRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as IterationRecord);
    } catch {
      // torn line
    }
  }
  return out;
}

/** The checks that must be zero, as one object (what the test asserts). */
export function mustBeZero(report: CrashTrialReport): Record<string, unknown[]> {
  return {
    lost: report.lost,
    doubleSucceedEvents: report.doubleSucceedEvents,
    duplicatedCompletions: report.duplicatedCompletions,
    stuck: report.stuck,
    approvalsBypassed: report.approvalsBypassed,
    paymentsExecutedTwice: report.paymentsExecutedTwice,
    notInExactlyOneFolder: report.notInExactlyOneFolder,
    folderStateDisagreements: report.folderStateDisagreements,
    unexpectedQuarantines: report.unexpectedQuarantines,
    overlappingRuns: report.overlappingRuns,
    leftoverProcesses: report.leftoverProcesses,
    leftoverPidFiles: report.leftoverPidFiles,
    unexpectedExits: report.unexpectedExits,
  };
}

