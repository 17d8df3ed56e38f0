import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, unlinkSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
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
import type { TaskDoc } from '../core/task.ts';
import { RunSpool, type AgentSpool, type SpooledRun } from './agent-spool.ts';
import { adoptClaude, runClaude, type AgentRun } from './claude-runner.ts';
import { runExecutionLoop, type AdoptedIteration, type LoopOutcome } from './execution-loop.ts';
import { IterationJournal } from './iteration-journal.ts';
import { markedGroupAlive, processIsAlive, processesCarrying, signalGroup, stopMarkedGroup } from './process-group.ts';
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
  /** Why nothing says how an adopted run ended (crash recovery): it is requeued as interrupted, attempt counted. */
  unknownEnd?: string;
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

/** An adopted run nothing says anything about: its agent is gone, no exit was recorded, its output holds no result. */
function unknownEnd(adopted: SpooledRun): RunEnd {
  const now = new Date();
  return {
    ok: false,
    errorClass: 'interrupted',
    message: 'interrupted',
    text: '',
    costUsd: 0,
    numTurns: null,
    durationMs: 0,
    sessionId: null,
    exitCode: null,
    startedAt: new Date(adopted.record.spawnedAt),
    endedAt: now,
    pausedFor: null,
    unknownEnd:
      adopted.record.pgid === null
        ? 'the orchestrator stopped (crash or kill) as it was starting this agent: no process of the run was found and ' +
          'it left no output, so it never ran or died at once'
        : 'the orchestrator stopped (crash or kill) while this agent ran, and the agent ended leaving no result and no ' +
          'recorded exit (it crashed, or was killed with its orchestrator), so how the run ended is unknown',
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
  /** The open tasks as the last turn listed them, for deciding how long to sleep and whether `--once` is done. */
  private lastOpen: readonly TaskRecord[] | null = null;
  /** How long the last turn took (ms): turns woken back to back are spaced by it, see `run`. */
  private lastTurnMs = 0;

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
        // Back-to-back wakes (completions, file events) are spaced by the last turn's own length: a turn then handles
        // every completion that arrived meanwhile instead of one each, and the loop leaves at least half the time to
        // the API and the agents' output however long the backlog makes a turn. Small backlogs keep turns short, so
        // the spacing is a few milliseconds there.
        await delay(Math.min(this.lastTurnMs, MAX_TURN_SPACING_MS));
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

  /**
   * One turn of the loop. Public so tests can drive the engine step by step.
   *
   * A turn reads the open tasks once and the live folders once, and every step works from those: at a backlog of
   * 10,000 the store listing is the dearest thing a turn does, and each step listing again made a turn's cost a
   * multiple of it. A step that changes tasks (intake, timers, a person's decision) marks the listing stale, and
   * dispatch alone reads it again — it must see what was just admitted or approved. Between phases the turn yields, so
   * the HTTP API in the same process answers while a long backlog is being worked through.
   */
  async tick(): Promise<void> {
    if (this.fatal !== null) throw this.fatal;
    const started = performance.now();
    await this.heartbeat();
    await this.drainCompletions();
    await yieldToIo();
    let open = await this.store.list({ states: OPEN_STATES });
    const where = this.vault.snapshot(LIVE_FOLDERS);
    let changed = await this.intake(new Set(open.map((r) => r.id)), where);
    changed = (await this.reconcile(open, where)) || changed;
    await yieldToIo();
    changed = (await this.fireTimers(open)) || changed;
    if (changed) open = await this.store.list({ states: OPEN_STATES });
    await this.enforceRunningStates(open);
    if (this.stopping === 'no') await this.dispatch(open);
    this.lastOpen = open;
    this.lastTurnMs = performance.now() - started;
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
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processIsAlive(pid)) {
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

  /** The files in .fte/run through which a task's agent run outlives its orchestrator (agent-spool.ts). */
  private spoolOf(taskId: string): RunSpool {
    return new RunSpool(this.runDir, taskId);
  }

  /**
   * Tasks a previous orchestrator left in a running state: it died (kill -9, power loss) while their agents ran. A run
   * it spooled is finished, not repeated (`adopt`): an agent still at work is waited for, one that ended is judged from
   * what it left, and the outcome is recorded as the live path would. Only a run nothing says anything about (no spool
   * of this attempt: the crash came before the agent started, or the spool is an earlier version's) goes back to the
   * queue with the attempt counted, or to Failed/ when that was its last attempt; whatever it left running is stopped
   * first, as two agents working on one task would duplicate its effects.
   */
  private async recoverOrphans(): Promise<void> {
    const orphans = await this.store.list({ states: [...RUNNING_STATES] });
    for (const record of orphans) {
      if (this.active.has(record.id)) continue;
      const found = this.spoolOf(record.id).read();
      const kind: RunKind = record.state === 'planning' ? 'plan' : 'execute';
      if (found.kind === 'run' && found.run.record.attempt === record.attempts && found.run.record.kind === kind) {
        this.adopt(record, found.run);
        continue;
      }
      const why = 'the orchestrator stopped (crash or kill) before it recorded this attempt\'s agent run';
      this.emit('recover', `${record.id}: run outcome unknown: ${why}; counted as interrupted`, { taskId: record.id });
      await this.killLeftoverAgent(record.id, 'its run cannot be finished from what was recorded');
      await this.failRun(record, 'interrupted', `${why}, so how that run ended is unknown`, this.journaledRun(record), true);
    }
    await this.repairFinished();
  }

  /**
   * Finish the spooled run of a task a stopped orchestrator left running: through the same completion path as a live
   * run, so the outcome lands exactly as it would have (Done/ with its outcome section, a retry, Failed/). It holds a
   * concurrency slot like any run, and shutdown, cancellation and the time limit stop it like any run.
   */
  private adopt(record: TaskRecord, found: SpooledRun): void {
    const { kind, iteration, pgid } = found.record;
    const run: ActiveRun = {
      taskId: record.id,
      kind,
      attempt: record.attempts,
      startedAt: new Date(found.record.spawnedAt),
      abort: new AbortController(),
      // The earlier orchestrator had asked it to stop (shutdown, cancel): the end is the interruption it would have recorded.
      abortReason: found.exit?.aborted ? 'stopped by the orchestrator before that orchestrator itself died' : null,
      pid: pgid,
    };
    this.active.set(record.id, run);
    const what = kind === 'plan' ? 'planning run' : `execution (iteration ${iteration ?? 1})`;
    this.emit(
      'adopt',
      `${record.id}: finishing the ${what} of attempt ${record.attempts} that a stopped orchestrator left ` +
        `(${found.exit ? 'its agent ended, exit recorded' : pgid === null ? 'agent not recorded yet' : `agent group ${pgid}`}) instead of running it again`,
      { taskId: record.id, kind, attempt: record.attempts, iteration, pid: pgid },
    );
    const task = this.service.admittedDoc(record.id) ?? { id: record.id, title: record.title, body: '', type: record.type };
    this.launch(record, run, task, this.approvedPlan(record, kind), found);
  }

  /**
   * What a crash between a store write and the note's move leaves behind for a task that has since finished: the note
   * still in a folder of work in flight (In_Progress/, Pending_Approval/, Approved/) while the store says done, failed,
   * rejected, expired or cancelled. Reconciliation on each turn covers open tasks only, so finished ones are put right
   * here, once per start. So are the spooled runs of tasks no longer running: a run whose end was recorded but whose
   * files were not yet removed, or the agent of a task cancelled or rejected while no orchestrator ran — still at work
   * for nothing, so it is stopped first (only while its group is verifiably that run's: pids are reused).
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
    for (const id of RunSpool.taskIds(this.runDir)) {
      if (this.active.has(id)) continue;
      const record = isValidTaskId(id) ? await this.store.get(id) : null;
      if (record !== null && RUNNING_STATES.has(record.state)) continue;
      await this.killLeftoverAgent(id, `the task is ${record?.state ?? 'not in the store'}`);
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

  /**
   * Stop what a spooled run left running and forget the run. Its group is signalled only while a member still carries
   * the run's marker (process-group.ts): a pid file outlives its process, and the number may belong to a stranger now.
   * A pid file without a record (an earlier fte version) cannot be verified, so what it names is left alone.
   */
  private async killLeftoverAgent(taskId: string, why: string): Promise<void> {
    const spool = this.spoolOf(taskId);
    const found = spool.read();
    if (found.kind === 'run') {
      const { record, marker } = found.run;
      const pgid = record.pgid ?? processesCarrying(marker)[0]?.pgrp ?? null;
      if (pgid !== null && markedGroupAlive(pgid, marker)) {
        this.emit('recover', `stopping the agent of ${taskId} (process group ${pgid}) left running by a stopped orchestrator: ${why}`, { taskId, pid: pgid });
        await stopMarkedGroup(pgid, marker, this.config.orchestrator.kill_grace_period * 1000);
      }
    } else if (found.kind === 'unverifiable' && found.pgid !== null && signalGroup(found.pgid, 0)) {
      this.emit('recover', `left process group ${found.pgid} alone: ${taskId}'s pid file has no record proving it is still that agent`, { taskId, pid: found.pgid });
    }
    spool.remove();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The loop's steps

  private async heartbeat(): Promise<void> {
    const now = this.clock();
    if (now.getTime() - this.lastHeartbeat < 1000) return;
    this.lastHeartbeat = now.getTime();
    await this.store.heartbeat(this.owner, now);
  }

  /** Admit the notes in Needs_Action/ the store does not know yet. Returns whether any task was admitted. */
  private async intake(open: ReadonlySet<string>, where: ReadonlyMap<string, readonly VaultFolder[]>): Promise<boolean> {
    // One listing of the open tasks per turn instead of one read per queued note: a turn's cost must not grow with a
    // store round trip per waiting task (bench/discovery.ts measured 13 µs a note that way).
    this.settleUntil = null;
    let admitted = false;
    // The snapshot lists Needs_Action/ first and in name order, so notes are admitted in the order they always were.
    for (const [id, folders] of where) {
      if (!folders.includes('Needs_Action')) continue;
      if (open.has(id)) continue; // queued, or reconcile puts it back where it belongs
      await yieldToIo(); // a folder of thousands of new notes is admitted in one turn; the API answers meanwhile
      const result = await this.service.admit(id, 'Needs_Action', { settleMs: NOTE_SETTLE_MS });
      switch (result.kind) {
        case 'admitted':
          admitted = true;
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
    return admitted;
  }

  /**
   * Bring store and vault into agreement. A person's moves are decisions: Pending_Approval → Approved approves,
   * anything → Rejected rejects. Every other difference is a half-finished move of fte's own (a crash between the
   * store write and the rename) or a move fte does not accept (a note dragged into Approved/ that was never asked
   * about), and the note goes back to the folder of its recorded state — so no file move can skip the approval gate.
   */
  private async reconcile(open: readonly TaskRecord[], where: ReadonlyMap<string, readonly VaultFolder[]>): Promise<boolean> {
    let decided = false;
    for (const record of open) {
      const expected = folderOf(record.state);
      let folders = where.get(record.id) ?? [];
      if (folders.length === 1 && folders[0] === expected) continue;
      // The snapshot skips Done/ and Failed/, which only grow; a note dragged there is looked up by name.
      if (folders.length === 0) folders = this.vault.locate(record.id);
      if (folders.length === 0) continue; // deleted: dispatch cancels it if it ever comes up
      try {
        if (record.state === 'pending_approval' && folders.length === 1 && folders[0] === 'Approved') {
          await this.service.approve(record.id, 'vault');
          this.emit('approved', `${record.id} approved (moved to Approved/)`, { taskId: record.id });
          decided = true;
          continue;
        }
        if (folders.length === 1 && folders[0] === 'Rejected') {
          const reason = record.state === 'pending_approval' ? 'moved to Rejected/' : 'moved to Rejected/ before it finished';
          await this.service.reject(record.id, 'vault', reason);
          this.emit('rejected', `${record.id} rejected (${reason})`, { taskId: record.id });
          decided = true;
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
    return decided;
  }

  /** Expire unanswered approval requests and requeue tasks whose backoff is over. Returns whether any task moved. */
  private async fireTimers(open: readonly TaskRecord[]): Promise<boolean> {
    const now = this.clock();
    let fired = false;
    for (const record of open) {
      if (record.state !== 'pending_approval') continue;
      if (now.getTime() < approvalExpiresAt(record.stateSince, this.config).getTime()) continue;
      fired = true;
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
    for (const record of open) {
      if (record.state !== 'retry_wait') continue;
      if (record.retryAt !== null && now.getTime() < record.retryAt.getTime()) continue;
      fired = true;
      try {
        await this.service.applyAndPlace(record.id, { type: 'retry' }, { expectedVersion: record.version });
        this.emit('retry', `${record.id}: backoff over, queued again`, { taskId: record.id });
      } catch (err) {
        if (!(err instanceof InvalidTransitionError || err instanceof StaleWriteError)) throw err;
      }
    }
    return fired;
  }

  /** Stop agents whose task left its running state underneath them (cancelled, rejected), and honour `stop --now`. */
  private async enforceRunningStates(open: readonly TaskRecord[]): Promise<void> {
    const stopNow = existsSync(join(this.vault.stateDir, STOP_NOW_MARKER));
    if (stopNow) {
      const control = await this.store.control();
      if (control.stopRequested) this.abortAll('stop --now');
      rmSync(join(this.vault.stateDir, STOP_NOW_MARKER), { force: true });
    }
    if (this.active.size === 0) return;
    const byId = new Map(open.map((r) => [r.id, r]));
    for (const run of this.active.values()) {
      if (run.abortReason !== null) continue;
      // Not in the listing means no longer open (cancelled, rejected): only then is the task read again, for its state.
      const record = byId.get(run.taskId) ?? (await this.store.get(run.taskId));
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
    // Their spools stay: the next start records what these runs left (agent-spool.ts) instead of guessing.
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

  /**
   * The runnable tasks in dispatch order: approved work first (a person is waiting on it), then by score. `open` is a
   * listing of the open tasks taken this turn, to pick from instead of reading the store again.
   */
  async runnable(now: Date, open?: readonly TaskRecord[]): Promise<TaskRecord[]> {
    const candidates =
      open === undefined
        ? await this.store.list({ states: RUNNABLE_STATES })
        : open.filter((r) => r.state === 'approved' || r.state === 'needs_action');
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

  private async dispatch(open: readonly TaskRecord[]): Promise<void> {
    const cap = this.config.orchestrator.max_concurrent_tasks;
    if (this.active.size >= cap) return;
    const stop = await this.stopReason();
    if (stop !== null) return;
    const now = this.clock();
    const budget = await this.budget(now);
    if (budget.exhausted !== null) return;
    for (const record of await this.runnable(now, open)) {
      if (this.active.size >= cap) break;
      if (this.active.has(record.id)) continue;
      if (budget.exhaustedTypes[record.type] !== undefined) continue;
      await this.start(record);
      await yieldToIo();
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
    this.launch(started, run, doc, this.approvedPlan(started, kind), null);
  }

  /** The plan a person approved, which an execute run of a task that needed approval must follow. */
  private approvedPlan(record: TaskRecord, kind: RunKind): string | null {
    if (kind !== 'execute' || !record.approvalRequired) return null;
    const note = safeRead(() => this.vault.read('In_Progress', record.id));
    return note === null ? null : readSection(note, 'plan');
  }

  /**
   * Run a started task's agent — a planning run, or the execution loop — or finish the run an earlier orchestrator
   * started (`adopted`, crash recovery), and queue how it ended for the loop. Every agent run is spooled in .fte/run
   * (agent-spool.ts) before it starts, so that a restart after a kill -9 finishes it rather than repeats it.
   */
  private launch(record: TaskRecord, run: ActiveRun, task: Pick<TaskDoc, 'id' | 'title' | 'body' | 'type'>, plan: string | null, adopted: SpooledRun | null): void {
    const spool = this.spoolOf(record.id);
    const logDir = join(this.vault.stateDir, 'logs', record.id);
    let current: AgentSpool | null = null;
    const unrecordable = (err: unknown): void => {
      // Without its spool a crash would leave this agent running where no restart can find it: stop it, and stop
      // the loop (a full disk or a broken .fte/ is not something the next task would fare better with).
      run.abortReason = `cannot record the agent's run: ${(err as Error).message}`;
      run.abort.abort();
      this.fatal ??= err as Error;
      this.poke();
    };
    const begin = (iteration: number | null, logPath: string): AgentSpool => {
      try {
        current = spool.begin({ attempt: run.attempt, kind: run.kind, iteration, timeoutMs: this.config.orchestrator.claude_timeout * 1000, logPath });
        return current;
      } catch (err) {
        unrecordable(err);
        throw err;
      }
    };
    const onSpawn = (pid: number): void => {
      run.pid = pid;
      try {
        current?.spawned(pid);
      } catch (err) {
        unrecordable(err);
      }
    };
    const notePath = this.vault.notePath('In_Progress', record.id);
    const execute = (adoptedIteration: AdoptedIteration | null): Promise<RunEnd> =>
      runExecutionLoop({
        config: this.config,
        journal: this.journal,
        task,
        attempt: run.attempt,
        notePath,
        plan,
        cwd: this.vault.root,
        logDir,
        resumeFrom: this.journal.checkpoint(record.id),
        priorCostUsd: record.costUsd,
        shouldPause: async () => (await this.stopReason()) ?? (await this.budget(this.clock())).exhausted,
        signal: run.abort.signal,
        onSpawn,
        spool: (iteration) => begin(iteration, join(logDir, `${run.attempt}-execute-${iteration}.log`)),
        adopted: adoptedIteration,
      }).then(fromLoop);
    let running: Promise<RunEnd>;
    if (adopted !== null) {
      running = adoptClaude(this.config, adopted, { signal: run.abort.signal }).then((ended) => {
        if (ended === null) return unknownEnd(adopted);
        if (run.kind === 'plan') return fromAgentRun(ended);
        const iteration = adopted.record.iteration ?? 1;
        const journaled = this.journal.list(record.id).filter((r) => r.attempt === run.attempt);
        return execute({
          iteration,
          run: ended,
          journaled: journaled.some((r) => r.iteration === iteration),
          earlier: journaled.filter((r) => r.iteration < iteration),
        });
      });
    } else if (run.kind === 'plan') {
      const logPath = join(logDir, `${run.attempt}-plan.log`);
      running = Promise.resolve()
        .then(() => runClaude(this.config, { kind: 'plan', task, notePath, plan: null, cwd: this.vault.root, logPath, signal: run.abort.signal, onSpawn, spool: begin(null, logPath) }))
        .then(fromAgentRun);
    } else {
      running = execute(null);
    }
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
      // Each end is a few synchronous writes; between two, the API in this process gets its turn.
      await yieldToIo();
      const completion = this.completions.shift() as Completion;
      let recorded = false;
      try {
        await this.finish(completion);
        recorded = true;
      } finally {
        this.active.delete(completion.run.taskId);
        // An end that could not be recorded keeps its spool: the next start records it from there.
        if (recorded) this.spoolOf(completion.run.taskId).remove();
      }
    }
  }

  private async finish({ run, result, crash }: Completion): Promise<void> {
    const record = await this.store.get(run.taskId);
    if (record === null || !RUNNING_STATES.has(record.state)) return; // cancelled or rejected while it ran
    if (result?.unknownEnd !== undefined) {
      this.emit('recover', `${record.id}: run outcome unknown: ${result.unknownEnd}; counted as interrupted`, { taskId: record.id });
      await this.failRun(record, 'interrupted', result.unknownEnd, this.journaledRun(record), true);
      return;
    }
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
    const open = this.lastOpen ?? (await this.store.list({ states: OPEN_STATES }));
    if (open.some((r) => r.state === 'retry_wait')) return false;
    if ((await this.stopReason()) !== null) return true;
    const now = this.clock();
    const budget = await this.budget(now);
    if (budget.exhausted !== null) return true;
    // Work held back by its type's daily budget waits on the clock or a person, not on fte.
    return (await this.runnable(now, open)).every((r) => budget.exhaustedTypes[r.type] !== undefined);
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
    for (const record of this.lastOpen ?? (await this.store.list({ states: OPEN_STATES }))) {
      if (record.state === 'retry_wait' && record.retryAt !== null) next = Math.min(next, Math.max(0, record.retryAt.getTime() - now));
      if (record.state === 'pending_approval') {
        next = Math.min(next, Math.max(0, approvalExpiresAt(record.stateSince, this.config).getTime() - now));
      }
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
    // In the vault root only the stop file matters and in .fte/ only the stop-now marker: the database's own journal
    // lives there too, and waking on each of its writes made every store write cost a loop turn.
    const stopFile = this.config.orchestrator.stop_hook_file;
    const targets: Array<[string, (name: string | null) => boolean]> = [
      [this.vault.root, (name) => name === null || name === stopFile],
      [this.vault.stateDir, (name) => name === null || name === STOP_NOW_MARKER],
    ];
    for (const folder of ['Needs_Action', 'Pending_Approval', 'Approved', 'Rejected'] as const) {
      targets.push([this.vault.folderPath(folder), () => true]);
    }
    for (const [target, matters] of targets) {
      try {
        const watcher = watch(target, { persistent: false }, (_event, name) => {
          if (matters(name === null ? null : String(name))) this.poke();
        });
        watcher.on('error', () => {});
        this.watchers.push(watcher);
      } catch {
        // Not watchable here; the sweep still sees changes.
      }
    }
  }
}

const OPEN_STATES: TaskState[] = ['needs_action', 'planning', 'pending_approval', 'approved', 'executing', 'retry_wait'];
const RUNNABLE_STATES: TaskState[] = ['approved', 'needs_action'];
const MAX_TURN_SPACING_MS = 250;
/**
 * The folders a turn lists: where open tasks' notes live and where a person drops a decision. Done/ and Failed/ only
 * grow and hold finished work, so listing them every turn would make a turn slower with every task ever done.
 */
const LIVE_FOLDERS: readonly VaultFolder[] = ['Needs_Action', 'In_Progress', 'Pending_Approval', 'Approved', 'Rejected'];

/** Let pending I/O callbacks (HTTP requests, agent output) run between the synchronous phases of a turn. */
function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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
