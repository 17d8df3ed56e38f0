import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { approvalExpiresAt } from '../core/approval.ts';
import type { RunKind } from '../core/claude-invocation.ts';
import { readSection, upsertSection } from '../core/note-sections.ts';
import { decideRetry, type ErrorClass } from '../core/retry.ts';
import { compareRanked, scoreTask } from '../core/scoring.ts';
import { RUNNING_STATES, isTerminal, type TaskState } from '../core/state-machine.ts';
import type { RunRecord, TaskRecord } from '../core/store.ts';
import { StaleWriteError } from '../core/store.ts';
import { InvalidTransitionError } from '../core/state-machine.ts';
import { folderOf, type VaultFolder } from '../core/vault-layout.ts';
import { isValidTaskId } from '../core/task.ts';
import { budgetState, BUDGET_WINDOW_MS, type BudgetState } from '../core/budget.ts';
import { runFromIterations } from '../core/persistence.ts';
import { runClaude, type AgentRun } from './claude-runner.ts';
import { runExecutionLoop, type LoopOutcome } from './execution-loop.ts';
import { IterationJournal } from './iteration-journal.ts';
import { groupIsAlive, signalGroup, waitForGroupExit } from './process-group.ts';
import { listNoteIds } from './notes.ts';
import { NOTE_SETTLE_MS, type TaskService } from './task-service.ts';
import { VaultConflictError } from './vault.ts';

/** One line of what the engine did, for the console and for `--json` event streams. */
export interface EngineEvent {
  at: string;
  event: string;
  taskId?: string;
  message: string;
  [key: string]: unknown;
}

export interface EngineOptions {
  /** Work until every task is terminal or waits on a human, then resolve `run()`. */
  once?: boolean;
  log?: (event: EngineEvent) => void;
  random?: () => number;
  clock?: () => Date;
}

interface ActiveRun {
  taskId: string;
  kind: RunKind;
  attempt: number;
  startedAt: Date;
  abort: AbortController;
  /** Why the engine aborted it, if it did: such an end is an interruption, not a failure of the agent. */
  abortReason: string | null;
  pid: number | null;
}

/** How a run (a planning run, or a whole execution loop) ended, in one shape. */
interface RunEnd {
  ok: boolean;
  errorClass: ErrorClass | null;
  message: string;
  text: string;
  costUsd: number;
  numTurns: number | null;
  durationMs: number;
  sessionId: string | null;
  exitCode: number | null;
  startedAt: Date;
  endedAt: Date;
  /** The execution loop stopped between iterations on request (stop flag, budget); its checkpoint stands. */
  pausedFor: string | null;
  /** For an execution loop, the number of its last iteration (each iteration has its own log file). */
  lastIteration?: number | null;
}

interface Completion {
  run: ActiveRun;
  result: RunEnd | null;
  crash: unknown;
}

function fromAgentRun(run: AgentRun): RunEnd {
  return {
    ok: run.ok,
    errorClass: run.errorClass,
    message: run.message,
    text: run.result?.result ?? '',
    costUsd: run.result?.costUsd ?? 0,
    numTurns: run.result?.numTurns ?? null,
    durationMs: run.durationMs,
    sessionId: run.result?.sessionId ?? null,
    exitCode: run.exitCode,
    startedAt: run.startedAt,
    endedAt: run.endedAt,
    pausedFor: null,
  };
}

function fromLoop(loop: LoopOutcome): RunEnd {
  // The log of the last iteration: the one that decided how the loop ended.
  return { ...loop, lastIteration: loop.iterations.at(-1)?.iteration ?? null };
}

export class EngineAlreadyRunningError extends Error {
  readonly code = 'ORCHESTRATOR_RUNNING' as const;
}

const STOP_NOW_MARKER = 'stop-now';
const RESULT_NOTE_LIMIT = 4000;

/**
 * The local orchestration loop. One loop turn (`tick`) runs at a time: it processes finished runs, admits new notes,
 * reconciles what people did in the vault, fires timers (approval expiry, retry backoff), honours the stop flag, and
 * dispatches the best runnable tasks up to the concurrency cap. Everything that can happen concurrently — agent runs,
 * file events, signals — only wakes the loop, so no two turns ever race on a task.
 */
export class Engine {
  readonly owner = `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
  private readonly active = new Map<string, ActiveRun>();
  private readonly completions: Completion[] = [];
  private readonly watchers: FSWatcher[] = [];
  private wake: (() => void) | null = null;
  private wakeRequested = false;
  private stopping: 'no' | 'graceful' | 'now' = 'no';
  private lastHeartbeat = 0;
  private readonly log: (event: EngineEvent) => void;
  private readonly random: () => number;
  private readonly clock: () => Date;
  private lockHeld = false;
  /** A failure outside any one run (fte could not write its own state): the loop stops at its next turn. */
  private fatal: Error | null = null;
  /** When the earliest note written moments ago may be read (epoch ms, real time); null when none waits. */
  private settleUntil: number | null = null;
  readonly journal: IterationJournal;
  private lastBudgetBlock: string | null = null;

  constructor(
    private readonly service: TaskService,
    private readonly options: EngineOptions = {},
  ) {
    this.log = options.log ?? (() => {});
    this.random = options.random ?? Math.random;
    this.clock = options.clock ?? (() => new Date());
    this.journal = new IterationJournal(join(service.vault.stateDir, 'iterations'));
  }

  private get config() {
    return this.service.config;
  }

  private get vault() {
    return this.service.vault;
  }

  private get store() {
    return this.service.store;
  }

  get lockPath(): string {
    return join(this.vault.stateDir, 'orchestrator.pid');
  }

  private get runDir(): string {
    return join(this.vault.stateDir, 'run');
  }

  private emit(event: string, message: string, fields: Record<string, unknown> = {}): void {
    this.log({ at: this.clock().toISOString(), event, message, ...fields });
  }

  /** Ask the loop to turn as soon as possible. */
  poke(): void {
    this.wakeRequested = true;
    this.wake?.();
  }

  /** SIGTERM/SIGINT: no new dispatch; running agents get `shutdown_timeout` to finish. A second call stops them now. */
  requestShutdown(): void {
    this.stopping = this.stopping === 'no' ? 'graceful' : 'now';
    this.emit('shutdown', this.stopping === 'now' ? 'stopping running agents now' : 'shutting down: no new work');
    this.poke();
  }

  /** Run the loop until shutdown (or, with `once`, until nothing is left that fte can do without a human). */
  async run(): Promise<void> {
    this.acquireLock();
    try {
      await this.recoverOrphans();
      this.startWatching();
      const shutdownStarted = { at: 0 };
      for (;;) {
        await this.tick();
        if (this.stopping !== 'no') {
          if (shutdownStarted.at === 0) shutdownStarted.at = Date.now();
          const graceOver = Date.now() - shutdownStarted.at >= this.config.orchestrator.shutdown_timeout * 1000;
          if (this.active.size > 0 && (this.stopping === 'now' || graceOver)) this.abortAll('orchestrator shut down');
          if (this.active.size === 0 && this.completions.length === 0) break;
        } else if (this.options.once === true && (await this.idle())) {
          this.emit('idle', await this.idleSummary());
          break;
        }
        await this.sleep(await this.nextWakeMs());
      }
    } catch (err) {
      // The loop cannot go on (the store failed, the disk is full). Stop the agents it started before giving up: their
      // results could not be recorded, and until they are gone the lock must stay held so no second orchestrator
      // starts the same tasks beside them. The store still shows them running; the next start recovers them.
      await this.stopAgentsAfterFailure(err).catch(() => {});
      throw err;
    } finally {
      for (const w of this.watchers) w.close();
      await this.store.heartbeat(this.owner, this.clock()).catch(() => {});
      this.releaseLock();
    }
  }

  /** One turn of the loop. Public so tests can drive the engine step by step. */
  async tick(): Promise<void> {
    if (this.fatal !== null) throw this.fatal;
    await this.heartbeat();
    await this.drainCompletions();
    // One listing of the open tasks serves both steps: a turn's store work must not grow twice with the backlog.
    // Tasks intake admits now are in their right folder already, so reconcile has nothing to do for them.
    const open = await this.store.list({ states: OPEN_STATES });
    await this.intake(new Set(open.map((r) => r.id)));
    await this.reconcile(open);
    await this.fireTimers();
    await this.enforceRunningStates();
    if (this.stopping === 'no') await this.dispatch();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Single instance and crash recovery

  private acquireLock(): void {
    mkdirSync(this.vault.stateDir, { recursive: true, mode: 0o700 });
    for (let tries = 0; tries < 2; tries++) {
      try {
        writeFileSync(this.lockPath, `${process.pid}\n${this.owner}\n`, { flag: 'wx', mode: 0o600 });
        this.lockHeld = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(readFileSync(this.lockPath, 'utf8').split('\n')[0]);
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
          throw new EngineAlreadyRunningError(`an orchestrator (pid ${pid}) is already running on ${this.vault.root}`);
        }
        // The holder is gone (kill -9, power loss): its lock is stale.
        rmSync(this.lockPath, { force: true });
      }
    }
    throw new EngineAlreadyRunningError(`could not take the lock ${this.lockPath}`);
  }

  private releaseLock(): void {
    if (!this.lockHeld) return;
    try {
      const content = readFileSync(this.lockPath, 'utf8');
      if (content.includes(this.owner)) unlinkSync(this.lockPath);
    } catch {
      // Already gone.
    }
    this.lockHeld = false;
  }

  private pidFile(taskId: string): string {
    return join(this.runDir, `${taskId}.pid`);
  }

  /**
   * Tasks a previous orchestrator left in a running state: it died (kill -9, power loss) while their agents ran. The
   * agents may still be running in their own process groups, so they are stopped first — two agents working on one
   * task would duplicate its effects — and then the task goes back to the queue with the attempt counted, or to
   * Failed/ when that was its last attempt.
   */
  private async recoverOrphans(): Promise<void> {
    const orphans = await this.store.list({ states: [...RUNNING_STATES] });
    for (const record of orphans) {
      if (this.active.has(record.id)) continue;
      await this.killLeftoverAgent(record.id);
      await this.failRun(record, 'interrupted', 'the orchestrator stopped while this task ran (crash or kill)', this.journaledRun(record), true);
    }
    await this.repairFinished();
  }

  /**
   * What a crash between a store write and the note's move leaves behind for a task that has since finished: the note
   * still in a folder of work in flight (In_Progress/, Pending_Approval/, Approved/) while the store says done, failed,
   * rejected, expired or cancelled. Reconciliation on each turn covers open tasks only, so finished ones are put right
   * here, once per start. So are the pid files of runs whose end was recorded but whose file was not yet removed: left
   * in place, one would name a process long gone, whose number may since belong to someone else, the next time that
   * task runs and a crash cuts it short before its agent starts.
   */
  private async repairFinished(): Promise<void> {
    for (const [id, folders] of this.vault.snapshot()) {
      const from = folders[0];
      if (folders.length !== 1 || (from !== 'In_Progress' && from !== 'Pending_Approval' && from !== 'Approved')) continue;
      const record = await this.store.get(id);
      if (record === null || !isTerminal(record.state)) continue;
      try {
        if (this.vault.move(id, from, folderOf(record.state))) {
          this.emit('repaired', `moved ${id} from ${from}/ to ${folderOf(record.state)}/ (its state is ${record.state})`, { taskId: id });
        }
      } catch (err) {
        if (!(err instanceof VaultConflictError)) throw err;
      }
    }
    let names: string[] = [];
    try {
      names = readdirSync(this.runDir);
    } catch {
      // no run folder yet
    }
    for (const name of names) {
      const id = name.endsWith('.pid') ? name.slice(0, -'.pid'.length) : null;
      if (id === null || this.active.has(id)) continue;
      const record = isValidTaskId(id) ? await this.store.get(id) : null;
      if (record !== null && RUNNING_STATES.has(record.state)) continue;
      try {
        rmSync(join(this.runDir, name), { force: true });
      } catch {
        // Not a file fte wrote (a folder of that name): it names no process, so it is left alone.
      }
    }
  }

  /** The run a crashed orchestrator never recorded, rebuilt from the iterations it journaled (so their cost counts). */
  private journaledRun(record: TaskRecord): RunRecord | null {
    return runFromIterations({
      taskId: record.id,
      attempt: record.attempts,
      kind: record.state === 'planning' ? 'plan' : 'execute',
      iterations: this.journal.list(record.id),
      ok: false,
      errorClass: 'interrupted',
    });
  }

  private async killLeftoverAgent(taskId: string): Promise<void> {
    let pgid: number;
    try {
      pgid = Number(readFileSync(this.pidFile(taskId), 'utf8').trim());
    } catch {
      return;
    }
    if (Number.isInteger(pgid) && pgid > 1 && groupIsAlive(pgid)) {
      this.emit('recover', `stopping the agent (process group ${pgid}) left running by a crashed orchestrator`, { taskId });
      signalGroup(pgid, 'SIGTERM');
      if (!(await waitForGroupExit(pgid, this.config.orchestrator.kill_grace_period * 1000))) {
        signalGroup(pgid, 'SIGKILL');
        await waitForGroupExit(pgid, 2000);
      }
    }
    rmSync(this.pidFile(taskId), { force: true });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The loop's steps

  private async heartbeat(): Promise<void> {
    const now = this.clock();
    if (now.getTime() - this.lastHeartbeat < 1000) return;
    this.lastHeartbeat = now.getTime();
    await this.store.heartbeat(this.owner, now);
  }

  private async intake(open: ReadonlySet<string>): Promise<void> {
    const folder = this.vault.folderPath('Needs_Action');
    // One listing of the open tasks per turn instead of one read per queued note: a turn's cost must not grow with a
    // store round trip per waiting task (bench/discovery.ts measured 13 µs a note that way).
    this.settleUntil = null;
    for (const id of listNoteIds(folder)) {
      if (open.has(id)) continue; // queued, or reconcile puts it back where it belongs
      const result = await this.service.admit(id, 'Needs_Action', { settleMs: NOTE_SETTLE_MS });
      switch (result.kind) {
        case 'admitted':
          this.emit('admitted', `queued ${result.id}${result.renamedFrom ? ` (renamed from ${result.renamedFrom})` : ''}: ${result.record.title}`, {
            taskId: result.id,
            approvalRequired: result.record.approvalRequired,
          });
          break;
        case 'quarantined':
          this.emit('quarantined', `moved ${result.id} to Failed/${result.quarantinedAs}.md: ${result.error.message}`, {
            taskId: result.id,
            reason: 'reason' in result.error ? result.error.reason : 'invalid_name',
          });
          break;
        case 'settling':
          this.settleUntil = Math.min(this.settleUntil ?? Number.POSITIVE_INFINITY, result.readyAt);
          break;
        case 'known':
        case 'gone':
          break;
      }
    }
  }

  /**
   * Bring store and vault into agreement. A person's moves are decisions: Pending_Approval → Approved approves,
   * anything → Rejected rejects. Every other difference is a half-finished move of fte's own (a crash between the
   * store write and the rename) or a move fte does not accept (a note dragged into Approved/ that was never asked
   * about), and the note goes back to the folder of its recorded state — so no file move can skip the approval gate.
   */
  private async reconcile(open: readonly TaskRecord[]): Promise<void> {
    const where = this.vault.snapshot();
    for (const record of open) {
      const folders = where.get(record.id) ?? [];
      const expected = folderOf(record.state);
      if (folders.length === 1 && folders[0] === expected) continue;
      if (folders.length === 0) continue; // deleted: dispatch cancels it if it ever comes up
      try {
        if (record.state === 'pending_approval' && folders.length === 1 && folders[0] === 'Approved') {
          await this.service.approve(record.id, 'vault');
          this.emit('approved', `${record.id} approved (moved to Approved/)`, { taskId: record.id });
          continue;
        }
        if (folders.length === 1 && folders[0] === 'Rejected') {
          const reason = record.state === 'pending_approval' ? 'moved to Rejected/' : 'moved to Rejected/ before it finished';
          await this.service.reject(record.id, 'vault', reason);
          this.emit('rejected', `${record.id} rejected (${reason})`, { taskId: record.id });
          continue;
        }
        if (folders.includes(expected)) {
          // A copy in a second folder is not a decision; the note stays where its state says.
          continue;
        }
        const from = folders[0] as VaultFolder;
        if (this.vault.move(record.id, from, expected)) {
          this.emit('repaired', `moved ${record.id} from ${from}/ back to ${expected}/ (its state is ${record.state})`, {
            taskId: record.id,
          });
        }
      } catch (err) {
        // The next turn sees the new state; a conflicting move means someone (the CLI, a person) moved the note since
        // this turn looked, and the next turn looks again.
        if (err instanceof InvalidTransitionError || err instanceof StaleWriteError || err instanceof VaultConflictError) continue;
        throw err;
      }
    }
  }

  private async fireTimers(): Promise<void> {
    const now = this.clock();
    for (const record of await this.store.list({ states: ['pending_approval'] })) {
      if (now.getTime() < approvalExpiresAt(record.stateSince, this.config).getTime()) continue;
      try {
        const expired = await this.service.applyAndPlace(record.id, { type: 'expire' }, { expectedVersion: record.version });
        this.service.editNote(expired, (c) =>
          upsertSection(c, 'outcome', 'Outcome (fte)', `Approval expired at ${now.toISOString()}: nobody answered within ${this.config.approval.timeout} s. Run \`fte task retry ${record.id}\` to ask again.`),
        );
        this.emit('expired', `${record.id}: approval request expired`, { taskId: record.id });
      } catch (err) {
        if (!(err instanceof InvalidTransitionError || err instanceof StaleWriteError)) throw err;
      }
    }
    for (const record of await this.store.list({ states: ['retry_wait'] })) {
      if (record.retryAt !== null && now.getTime() < record.retryAt.getTime()) continue;
      try {
        await this.service.applyAndPlace(record.id, { type: 'retry' }, { expectedVersion: record.version });
        this.emit('retry', `${record.id}: backoff over, queued again`, { taskId: record.id });
      } catch (err) {
        if (!(err instanceof InvalidTransitionError || err instanceof StaleWriteError)) throw err;
      }
    }
  }

  /** Stop agents whose task left its running state underneath them (cancelled, rejected), and honour `stop --now`. */
  private async enforceRunningStates(): Promise<void> {
    const stopNow = existsSync(join(this.vault.stateDir, STOP_NOW_MARKER));
    if (stopNow) {
      const control = await this.store.control();
      if (control.stopRequested) this.abortAll('stop --now');
      rmSync(join(this.vault.stateDir, STOP_NOW_MARKER), { force: true });
    }
    for (const run of this.active.values()) {
      if (run.abortReason !== null) continue;
      const record = await this.store.get(run.taskId);
      if (record === null || !RUNNING_STATES.has(record.state)) {
        run.abortReason = `task is ${record?.state ?? 'gone'}`;
        run.abort.abort();
        this.emit('abort', `stopping the agent of ${run.taskId}: the task is now ${record?.state ?? 'gone'}`, { taskId: run.taskId });
      }
    }
  }

  /** After a fatal error: abort every running agent and wait (bounded) until their process groups are gone. */
  private async stopAgentsAfterFailure(err: unknown): Promise<void> {
    if (this.active.size === 0) return;
    this.abortAll(`the orchestrator is stopping on an error: ${err instanceof Error ? err.message : String(err)}`);
    // Every run ends in a completion (the runner kills the group: TERM, then KILL after the grace period).
    const deadline = Date.now() + (this.config.orchestrator.kill_grace_period + 5) * 1000;
    while (this.completions.length < this.active.size && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const c of this.completions) {
      try {
        rmSync(this.pidFile(c.run.taskId), { force: true });
      } catch {
        // Left for the next start, which removes what no running task owns.
      }
    }
  }

  private abortAll(reason: string): void {
    for (const run of this.active.values()) {
      if (run.abortReason !== null) continue;
      run.abortReason = reason;
      run.abort.abort();
      this.emit('abort', `stopping the agent of ${run.taskId} (${reason})`, { taskId: run.taskId });
    }
  }

  /** Why nothing may be dispatched now, or null. */
  async stopReason(): Promise<string | null> {
    if (this.vault.stopFilePresent(this.config.orchestrator.stop_hook_file)) {
      return `stop file ${this.config.orchestrator.stop_hook_file} exists in the vault`;
    }
    const control = await this.store.control();
    if (control.stopRequested) return `stopped${control.stopReason ? `: ${control.stopReason}` : ''} (fte orchestrator resume)`;
    return null;
  }

  /** Spend in the rolling 24 h window against the budgets, including what running loops have spent so far. */
  async budget(now: Date): Promise<BudgetState> {
    const { daily_usd: daily, per_type_daily_usd: perType } = this.config.budget;
    // Without a daily budget there is nothing to enforce, and no reason to read a day of history every turn.
    if (daily === undefined && Object.keys(perType).length === 0) return budgetState([], this.config, now);
    const inFlight: Record<string, number> = {};
    for (const run of this.active.values()) {
      if (run.kind !== 'execute') continue;
      const record = await this.store.get(run.taskId);
      if (record === null) continue;
      inFlight[record.type] = (inFlight[record.type] ?? 0) + this.journal.attemptCost(run.taskId, run.attempt);
    }
    const events = await this.store.history({ since: new Date(now.getTime() - BUDGET_WINDOW_MS), until: new Date(now.getTime() + 1) });
    const state = budgetState(events, this.config, now, inFlight);
    if (state.exhausted !== this.lastBudgetBlock) {
      if (state.exhausted !== null) this.emit('budget_exhausted', `${state.exhausted}; no new task starts until spend leaves the window or the budget is raised`, { spentUsd: state.spentUsd });
      else if (this.lastBudgetBlock !== null) this.emit('budget_available', 'spend is under the daily budget again; dispatch resumes');
      this.lastBudgetBlock = state.exhausted;
    }
    return state;
  }

  /** The runnable tasks in dispatch order: approved work first (a person is waiting on it), then by score. */
  async runnable(now: Date): Promise<TaskRecord[]> {
    const candidates = await this.store.list({ states: ['approved', 'needs_action'] });
    const scored = candidates.map((record) => ({ record, score: scoreTask(record, now, this.config).score }));
    scored.sort((a, b) => {
      const aa = a.record.state === 'approved' ? 0 : 1;
      const bb = b.record.state === 'approved' ? 0 : 1;
      if (aa !== bb) return aa - bb;
      return compareRanked(
        { id: a.record.id, score: a.score, created: a.record.created },
        { id: b.record.id, score: b.score, created: b.record.created },
      );
    });
    return scored.map((s) => s.record);
  }

  private async dispatch(): Promise<void> {
    const cap = this.config.orchestrator.max_concurrent_tasks;
    if (this.active.size >= cap) return;
    const stop = await this.stopReason();
    if (stop !== null) return;
    const now = this.clock();
    const budget = await this.budget(now);
    if (budget.exhausted !== null) return;
    for (const record of await this.runnable(now)) {
      if (this.active.size >= cap) break;
      if (this.active.has(record.id)) continue;
      if (budget.exhaustedTypes[record.type] !== undefined) continue;
      await this.start(record);
    }
  }

  private async start(record: TaskRecord): Promise<void> {
    const kind: RunKind = record.state === 'needs_action' && record.approvalRequired ? 'plan' : 'execute';
    const folder = folderOf(record.state);
    if (!this.vault.locate(record.id).includes(folder)) {
      // The person deleted the note while it waited: withdrawing the request is what that means.
      await this.service.cancel(record.id, 'vault', 'the note was deleted').catch(() => {});
      this.emit('cancelled', `${record.id}: note deleted, task cancelled`, { taskId: record.id });
      return;
    }
    const doc = this.service.admittedDoc(record.id);
    if (doc === null) {
      await this.failRun(record, 'invalid_task', 'the snapshot taken at admission is missing or unreadable', null, false);
      return;
    }
    let started: TaskRecord;
    try {
      started = await this.service.applyAndPlace(record.id, { type: kind === 'plan' ? 'plan' : 'execute' }, {
        expectedVersion: record.version,
        lease: { owner: this.owner, pid: process.pid, expiresAt: new Date(this.clock().getTime() + this.config.orchestrator.lease_timeout * 1000) },
      });
    } catch (err) {
      if (err instanceof InvalidTransitionError || err instanceof StaleWriteError) return;
      throw err;
    }
    let plan: string | null = null;
    if (kind === 'execute' && started.approvalRequired) {
      const note = safeRead(() => this.vault.read('In_Progress', record.id));
      plan = note === null ? null : readSection(note, 'plan');
    }
    const run: ActiveRun = {
      taskId: record.id,
      kind,
      attempt: started.attempts,
      startedAt: this.clock(),
      abort: new AbortController(),
      abortReason: null,
      pid: null,
    };
    this.active.set(record.id, run);
    this.emit('dispatch', `${kind === 'plan' ? 'planning' : 'executing'} ${record.id} (attempt ${started.attempts})`, {
      taskId: record.id,
      kind,
      attempt: started.attempts,
    });
    mkdirSync(this.runDir, { recursive: true });
    const logPath = join(this.vault.stateDir, 'logs', record.id, `${started.attempts}-${kind}.log`);
    const logDir = join(this.vault.stateDir, 'logs', record.id);
    const onSpawn = (pid: number): void => {
      run.pid = pid;
      try {
        writeFileSync(this.pidFile(record.id), `${pid}\n`);
      } catch (err) {
        // Without its pid file a crash would leave this agent running where no restart can find it: stop it, and
        // stop the loop (a full disk or a broken .fte/ is not something the next task would fare better with).
        run.abortReason = `cannot record the agent's pid: ${(err as Error).message}`;
        run.abort.abort();
        this.fatal ??= err as Error;
        this.poke();
      }
    };
    const notePath = this.vault.notePath('In_Progress', record.id);
    const running: Promise<RunEnd> =
      kind === 'plan'
        ? runClaude(this.config, {
            kind,
            task: doc,
            notePath,
            plan: null,
            cwd: this.vault.root,
            logPath: join(logDir, `${started.attempts}-plan.log`),
            signal: run.abort.signal,
            onSpawn,
          }).then(fromAgentRun)
        : runExecutionLoop({
            config: this.config,
            journal: this.journal,
            task: doc,
            attempt: started.attempts,
            notePath,
            plan,
            cwd: this.vault.root,
            logDir,
            resumeFrom: this.journal.checkpoint(record.id),
            priorCostUsd: started.costUsd,
            shouldPause: async () => (await this.stopReason()) ?? (await this.budget(this.clock())).exhausted,
            signal: run.abort.signal,
            onSpawn,
          }).then(fromLoop);
    running.then(
      (result) => this.complete({ run, result, crash: null }),
      (crash: unknown) => this.complete({ run, result: null, crash }),
    );
  }

  private complete(completion: Completion): void {
    this.completions.push(completion);
    this.poke();
  }

  private async drainCompletions(): Promise<void> {
    while (this.completions.length > 0) {
      const completion = this.completions.shift() as Completion;
      try {
        await this.finish(completion);
      } finally {
        this.active.delete(completion.run.taskId);
        rmSync(this.pidFile(completion.run.taskId), { force: true });
      }
    }
  }

  private async finish({ run, result, crash }: Completion): Promise<void> {
    const record = await this.store.get(run.taskId);
    if (record === null || !RUNNING_STATES.has(record.state)) return; // cancelled or rejected while it ran
    const runRecord: RunRecord | null =
      result === null
        ? null
        : {
            taskId: run.taskId,
            attempt: run.attempt,
            kind: run.kind,
            startedAt: result.startedAt,
            endedAt: result.endedAt,
            ok: result.ok,
            errorClass: result.errorClass,
            exitCode: result.exitCode,
            durationMs: result.durationMs,
            costUsd: result.costUsd,
            numTurns: result.numTurns,
            sessionId: result.sessionId,
            logPath: join(this.vault.stateDir, 'logs', run.taskId, run.kind === 'plan' ? `${run.attempt}-plan.log` : `${run.attempt}-execute-${result.lastIteration ?? 1}.log`),
          };
    if (run.abortReason !== null) {
      await this.interrupt(record, run.abortReason, runRecord);
      return;
    }
    if (result?.pausedFor) {
      await this.interrupt(record, `paused between iterations: ${result.pausedFor}`, runRecord);
      return;
    }
    // A loop that ended (done, failed) is over; only a paused or interrupted one is resumed from its checkpoint.
    this.journal.clearCheckpoint(record.id);
    if (result === null) {
      await this.failRun(record, 'crash', `the runner failed: ${String(crash)}`, runRecord, false);
      return;
    }
    if (!result.ok) {
      await this.failRun(record, result.errorClass ?? 'agent_error', result.message, runRecord, false);
      return;
    }
    const text = result.text;
    if (run.kind === 'plan') {
      // Write the plan while the note is still in In_Progress, then move it: a person never sees a request without a plan.
      this.service.editNote(record, (c) =>
        upsertSection(
          upsertSection(c, 'plan', 'Plan (fte, for your approval)', text.length > 0 ? text : '(the agent returned an empty plan)'),
          'approval',
          'Approval needed',
          [
            `Why: ${record.approvalReasons.join('; ') || 'policy'}.`,
            '',
            `Approve: move this note to \`Approved/\` or run \`fte approve ${record.id}\`.`,
            `Reject: move it to \`Rejected/\` or run \`fte reject ${record.id} --reason "..."\`.`,
            `Expires: ${approvalExpiresAt(this.clock(), this.config).toISOString()} (then the task is not done).`,
          ].join('\n'),
        ),
      );
      const next = await this.service.store.apply(record.id, { type: 'plan_ready' }, this.clock(), {
        expectedVersion: record.version,
        ...(runRecord ? { run: runRecord } : {}),
      });
      this.service.placeNote(next);
      this.emit('awaiting_approval', `${record.id}: plan ready, waiting for approval`, { taskId: record.id });
      return;
    }
    const summary = text.length > RESULT_NOTE_LIMIT ? `${text.slice(0, RESULT_NOTE_LIMIT)}…` : text;
    this.service.editNote(record, (c) =>
      upsertSection(
        c,
        'outcome',
        'Outcome (fte)',
        `Done at ${this.clock().toISOString()} on attempt ${record.attempts} (cost $${(runRecord?.costUsd ?? 0).toFixed(4)}, ${runRecord?.numTurns ?? '?'} turns).\n\n${summary}`,
      ),
    );
    const done = await this.service.store.apply(record.id, { type: 'succeed' }, this.clock(), {
      expectedVersion: record.version,
      ...(runRecord ? { run: runRecord } : {}),
    });
    this.service.placeNote(done);
    this.emit('done', `${record.id}: done`, { taskId: record.id, costUsd: runRecord?.costUsd ?? 0 });
  }

  private async interrupt(record: TaskRecord, reason: string, runRecord: RunRecord | null): Promise<void> {
    const next = await this.store.apply(record.id, { type: 'interrupt', reason }, this.clock(), {
      expectedVersion: record.version,
      ...(runRecord ? { run: runRecord } : {}),
    });
    this.service.placeNote(next);
    this.emit('interrupted', `${record.id}: ${reason}; back in the queue`, { taskId: record.id });
  }

  /** A failed run: retry after the core's backoff, or dead-letter to Failed/. */
  private async failRun(
    record: TaskRecord,
    errorClass: ErrorClass,
    message: string,
    runRecord: RunRecord | null,
    recovered: boolean,
  ): Promise<void> {
    const decision = decideRetry(this.config, {
      attempt: Math.max(1, record.attempts),
      taskType: record.type,
      errorClass,
      random: this.random,
    });
    const error = { class: errorClass, message };
    const options = { expectedVersion: record.version, ...(runRecord ? { run: runRecord } : {}) };
    const now = this.clock();
    if (RUNNING_STATES.has(record.state) && decision.retry && recovered) {
      // A crash is not the task's fault: back in the queue at once, the attempt counted.
      await this.interrupt(record, message, runRecord);
      return;
    }
    if (RUNNING_STATES.has(record.state) && decision.retry) {
      const retryAt = new Date(now.getTime() + decision.delayMs);
      const next = await this.store.apply(record.id, { type: 'fail', error, retryAt }, now, options);
      this.service.placeNote(next);
      this.service.editNote(next, (c) =>
        upsertSection(c, 'last-error', 'Last error (fte)', `Attempt ${record.attempts} failed (${errorClass}): ${message}\nNext attempt after ${retryAt.toISOString()}.`),
      );
      this.emit('retry_scheduled', `${record.id}: ${errorClass}: ${message}; retry in ${Math.round(decision.delayMs / 1000)} s`, {
        taskId: record.id,
        errorClass,
        recovered,
      });
      return;
    }
    if (!RUNNING_STATES.has(record.state)) {
      // Only a task that never started can land here (its snapshot vanished): withdraw it with the reason.
      const next = await this.service.cancel(record.id, 'fte', `${errorClass}: ${message}`);
      this.emit('cancelled', `${record.id}: ${message}`, { taskId: record.id, state: next.state });
      return;
    }
    const next = await this.store.apply(record.id, { type: 'dead_letter', error }, now, options);
    this.service.editNote(record, (c) =>
      upsertSection(
        c,
        'outcome',
        'Outcome (fte)',
        `Failed at ${now.toISOString()} after ${record.attempts} attempt(s): ${errorClass}: ${message}.\nRun \`fte task retry ${record.id}\` to try again from scratch.`,
      ),
    );
    this.service.placeNote(next);
    this.emit('failed', `${record.id}: failed (${errorClass}${decision.retry ? '' : `, ${decision.reason}`}): ${message}`, {
      taskId: record.id,
      errorClass,
      recovered,
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Waiting

  /** Nothing fte can do without a human or a clock beyond the current backoffs. */
  private async idle(): Promise<boolean> {
    if (this.active.size > 0 || this.completions.length > 0 || this.settleUntil !== null) return false;
    if ((await this.store.list({ states: ['retry_wait'] })).length > 0) return false;
    if ((await this.stopReason()) !== null) return true;
    const now = this.clock();
    const budget = await this.budget(now);
    if (budget.exhausted !== null) return true;
    // Work held back by its type's daily budget waits on the clock or a person, not on fte.
    return (await this.runnable(now)).every((r) => budget.exhaustedTypes[r.type] !== undefined);
  }

  /** Why `--once` has nothing more to do: what now waits on a person or on the clock. */
  private async idleSummary(): Promise<string> {
    const parts: string[] = [];
    const stop = await this.stopReason();
    if (stop !== null) parts.push(`dispatch is stopped: ${stop}`);
    const budget = await this.budget(this.clock());
    if (budget.exhausted !== null) parts.push(budget.exhausted);
    const waiting = await this.store.list({ states: ['pending_approval'] });
    if (waiting.length > 0) parts.push(`${waiting.length} waiting for approval (${waiting.map((t) => t.id).join(', ')})`);
    const queued = await this.runnable(this.clock());
    if (queued.length > 0 && stop === null && budget.exhausted === null) parts.push(`${queued.length} held by their type's daily budget`);
    return parts.length > 0 ? `nothing more to do without you: ${parts.join('; ')}` : 'all tasks are finished';
  }

  private async nextWakeMs(): Promise<number> {
    const sweep = this.config.orchestrator.poll_interval * 1000;
    let next = Math.min(sweep, this.config.orchestrator.heartbeat_interval * 1000);
    const now = this.clock().getTime();
    for (const record of await this.store.list({ states: ['retry_wait'] })) {
      if (record.retryAt !== null) next = Math.min(next, Math.max(0, record.retryAt.getTime() - now));
    }
    for (const record of await this.store.list({ states: ['pending_approval'] })) {
      next = Math.min(next, Math.max(0, approvalExpiresAt(record.stateSince, this.config).getTime() - now));
    }
    if (this.stopping !== 'no' && this.active.size > 0) next = Math.min(next, 200);
    if (this.settleUntil !== null) next = Math.min(next, Math.max(0, this.settleUntil - Date.now()));
    return next;
  }

  private sleep(ms: number): Promise<void> {
    if (this.wakeRequested) {
      this.wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        this.wakeRequested = false;
        done();
      };
    });
  }

  private startWatching(): void {
    // The watch makes a dropped file visible within a second; the sweep in `nextWakeMs` covers file systems where
    // watching is unreliable (network mounts, some sync tools).
    const targets: string[] = [this.vault.root, this.vault.stateDir];
    for (const folder of ['Needs_Action', 'Pending_Approval', 'Approved', 'Rejected'] as const) {
      targets.push(this.vault.folderPath(folder));
    }
    for (const target of targets) {
      try {
        const watcher = watch(target, { persistent: false }, () => this.poke());
        watcher.on('error', () => {});
        this.watchers.push(watcher);
      } catch {
        // Not watchable here; the sweep still sees changes.
      }
    }
  }
}

const OPEN_STATES: TaskState[] = ['needs_action', 'planning', 'pending_approval', 'approved', 'executing', 'retry_wait'];

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function safeRead(read: () => string): string | null {
  try {
    return read();
  } catch {
    return null;
  }
}

/** Ask a running orchestrator (of any process) to stop its agents now: the stop flag plus this marker. */
export function requestStopNow(stateDir: string): void {
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(join(stateDir, STOP_NOW_MARKER), `${new Date().toISOString()}\n`);
}
