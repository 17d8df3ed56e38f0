import type { Config } from '../core/config.ts';
import { iterationGate, perTaskBudgetMessage } from '../core/persistence.ts';
import type { Checkpoint, IterationRecord } from '../core/persistence.ts';
import type { ErrorClass } from '../core/retry.ts';
import type { TaskDoc } from '../core/task.ts';
import type { AgentSpool } from './agent-spool.ts';
import { runClaude, type AgentRun, type ClaudeRunInput } from './claude-runner.ts';

/**
 * Where the loop records its iterations and checkpoints: IterationJournal (files) locally, DynamoDB items in the
 * Fargate runner. Either may be synchronous. The loop only writes; reading the checkpoint back is the caller's job.
 */
export interface LoopJournal {
  append(taskId: string, record: IterationRecord): void | Promise<void>;
  saveCheckpoint(taskId: string, checkpoint: Checkpoint): void | Promise<void>;
}

/** One Claude run; runClaude by default, replaceable so the loop's rules can be driven without a process. */
export type AgentRunner = (config: Config, input: ClaudeRunInput) => Promise<AgentRun>;

export interface LoopInput {
  config: Config;
  journal: LoopJournal;
  task: Pick<TaskDoc, 'id' | 'title' | 'body' | 'type'>;
  attempt: number;
  notePath: string;
  plan: string | null;
  cwd: string;
  /** Where each iteration's output is logged (`<attempt>-execute-<iteration>.log`); null keeps no log file. */
  logDir: string | null;
  /** Where an interrupted earlier attempt stopped: go on in its session at the next iteration. */
  resumeFrom: Checkpoint | null;
  /** What the task has cost before this attempt (earlier attempts' runs). */
  priorCostUsd: number;
  /** Asked between iterations; a reason pauses the loop (stop flag, daily budget). */
  shouldPause: () => Promise<string | null>;
  signal?: AbortSignal;
  onSpawn?: (pid: number) => void;
  /** The agent's environment (the cloud runner hides the task role from it); the runner's own by default. */
  env?: NodeJS.ProcessEnv;
  runAgent?: AgentRunner;
  /** Opens the spool of each iteration's agent run (lib/local/agent-spool.ts), so a restart can finish it. */
  spool?: (iteration: number) => AgentSpool;
  /**
   * An iteration an earlier orchestrator started and died during, finished since (crash recovery): it stands as
   * iteration `iteration` of this attempt in place of a new run, and the loop goes on from it as if it had run it.
   */
  adopted?: AdoptedIteration | null;
}

export interface AdoptedIteration {
  iteration: number;
  run: AgentRun;
  /** The earlier orchestrator journaled this iteration already (it died after the append). */
  journaled: boolean;
  /** This attempt's iterations before it, from the journal: they count towards the attempt's cost and its run record. */
  earlier: IterationRecord[];
}

export interface LoopOutcome {
  ok: boolean;
  /** The loop stopped between iterations on request; the checkpoint stands. */
  pausedFor: string | null;
  errorClass: ErrorClass | null;
  message: string;
  /** The last reply's text. */
  text: string;
  iterations: IterationRecord[];
  costUsd: number;
  numTurns: number | null;
  durationMs: number;
  sessionId: string | null;
  exitCode: number | null;
  startedAt: Date;
  endedAt: Date;
}

/**
 * The per-task persistence loop (the seed's "Ralph Wiggum" loop): run Claude, and while its reply lacks the exact
 * completion promise, resume the same session with a continuation prompt — bounded by `orchestrator.max_iterations`
 * and by the task's budget, so it can never run away. Each iteration is journaled; after each unfinished one a
 * checkpoint lets a restarted orchestrator go on from there instead of from the first iteration.
 *
 * Both runtimes run this one loop: the local engine with its file journal, the Fargate runner (container/runner.ts)
 * with DynamoDB items — so the cloud stops, pauses and resumes at exactly the iterations the local runtime does.
 */
export async function runExecutionLoop(input: LoopInput): Promise<LoopOutcome> {
  const { config, journal, task } = input;
  const runAgent = input.runAgent ?? runClaude;
  const max = config.orchestrator.max_iterations;
  const promise = config.orchestrator.completion_promise;
  const perTask = config.budget.per_task_usd;
  const adopted = input.adopted ?? null;
  const firstEarlier = adopted?.earlier[0];
  const startedAt = firstEarlier ? new Date(firstEarlier.startedAt) : (adopted?.run.startedAt ?? new Date());
  const iterations: IterationRecord[] = [...(adopted?.earlier ?? [])];
  let session = adopted?.earlier.at(-1)?.sessionId ?? input.resumeFrom?.sessionId ?? null;
  let iteration = adopted ? adopted.iteration - 1 : (input.resumeFrom?.iteration ?? 0);
  let last: AgentRun | null = null;

  const spent = (): number => input.priorCostUsd + iterations.reduce((s, r) => s + r.costUsd, 0);
  const outcome = (fields: Partial<LoopOutcome> & Pick<LoopOutcome, 'ok' | 'errorClass' | 'message'>): LoopOutcome => ({
    pausedFor: null,
    text: last?.result?.result ?? '',
    iterations,
    costUsd: iterations.reduce((s, r) => s + r.costUsd, 0),
    numTurns: iterations.some((r) => r.numTurns !== null) ? iterations.reduce((s, r) => s + (r.numTurns ?? 0), 0) : null,
    durationMs: iterations.reduce((s, r) => s + r.durationMs, 0),
    sessionId: session,
    exitCode: last?.exitCode ?? null,
    startedAt,
    endedAt: new Date(),
    ...fields,
  });

  for (let pass = 0; ; pass++) {
    iteration += 1;
    // The adopted iteration passed the gate and the pause check when the earlier orchestrator started it.
    const inherited = pass === 0 && adopted !== null;
    if (inherited) {
      last = adopted.run;
    } else {
      const gate = iterationGate({ iteration, maxIterations: max, spentUsd: spent(), perTaskUsd: perTask });
      if (!gate.go) return outcome({ ok: false, errorClass: gate.errorClass, message: gate.message });
      if (iterations.length > 0 || input.resumeFrom !== null) {
        const pause = await input.shouldPause();
        if (pause !== null) return outcome({ ok: false, errorClass: null, message: pause, pausedFor: pause });
      }
      const continuing = session !== null;
      const logPath = input.logDir === null ? null : `${input.logDir}/${input.attempt}-execute-${iteration}.log`;
      last = await runAgent(config, {
        kind: 'execute',
        task,
        notePath: input.notePath,
        plan: input.plan,
        cwd: input.cwd,
        logPath,
        resumeSessionId: continuing ? session : null,
        continuation: continuing ? { iteration, maxIterations: max } : null,
        maxBudgetUsd: gate.remainingUsd,
        env: input.env,
        signal: input.signal,
        onSpawn: input.onSpawn,
        ...(input.spool ? { spool: input.spool(iteration) } : {}),
      });
    }
    const text = last.result?.result ?? '';
    const record: IterationRecord = {
      attempt: input.attempt,
      iteration,
      startedAt: last.startedAt.toISOString(),
      endedAt: last.endedAt.toISOString(),
      durationMs: last.durationMs,
      costUsd: last.result?.costUsd ?? 0,
      numTurns: last.result?.numTurns ?? null,
      sessionId: last.result?.sessionId ?? session,
      ok: last.ok,
      errorClass: last.errorClass,
      promiseSeen: last.ok && text.includes(promise),
    };
    if (!(inherited && adopted.journaled)) await journal.append(task.id, record);
    iterations.push(record);
    session = record.sessionId;
    if (!last.ok) return outcome({ ok: false, errorClass: last.errorClass ?? 'agent_error', message: last.message });
    if (record.promiseSeen) return outcome({ ok: true, errorClass: null, message: 'completion promise seen' });
    if (session !== null) await journal.saveCheckpoint(task.id, { attempt: input.attempt, iteration, sessionId: session });
    if (perTask !== undefined && spent() >= perTask) {
      return outcome({ ok: false, errorClass: 'budget_exceeded', message: perTaskBudgetMessage(spent(), perTask) });
    }
    if (session === null) {
      // Without a session there is nothing to resume; a fresh run would start the task over.
      return outcome({ ok: false, errorClass: 'bad_output', message: 'the agent reported no session_id, so the loop cannot continue it' });
    }
  }
}
