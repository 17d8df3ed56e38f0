import type { Config } from '../core/config.ts';
import { buildClaudeArgs, buildContinuationPrompt, buildPrompt, interpretResult } from '../core/claude-invocation.ts';
import type { RunKind, RunResult } from '../core/claude-invocation.ts';
import type { TaskDoc } from '../core/task.ts';
import type { AgentSpool, SpooledRun } from './agent-spool.ts';
import { adoptAgent, runAgent, type ProcessOutcome } from './process-runner.ts';

export interface ClaudeRunInput {
  kind: RunKind;
  task: Pick<TaskDoc, 'id' | 'title' | 'body' | 'type'>;
  notePath: string;
  /** The approved plan an execute run must follow. */
  plan?: string | null;
  cwd: string;
  logPath: string | null;
  resumeSessionId?: string | null;
  /** A further budget cap for this run (e.g. what is left of the task's budget); the smaller cap wins. */
  maxBudgetUsd?: number | null;
  /** For execute runs; defaults to `orchestrator.completion_promise`, null leaves it out of the prompt. */
  completionPromise?: string | null;
  /** A later iteration of the persistence loop: resume `resumeSessionId` with the continuation prompt. */
  continuation?: { iteration: number; maxIterations: number } | null;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onSpawn?: (pid: number) => void;
  /** Where the run leaves what a restarted orchestrator needs to finish it (lib/local/agent-spool.ts); none by default. */
  spool?: AgentSpool;
}

export type AgentRun = RunResult & {
  durationMs: number;
  exitCode: number | null;
  signal: string | null;
  pid: number | null;
  startedAt: Date;
  endedAt: Date;
};

/**
 * The longest single argument Linux passes to a program (MAX_ARG_STRLEN, 32 pages of 4 KiB, less the final NUL). The
 * prompt is one argument, and notes may be up to 1 MiB, so a long note can produce a prompt that cannot be passed.
 */
export const MAX_ARGUMENT_BYTES = process.platform === 'linux' ? 131_071 : Number.POSITIVE_INFINITY;

/** One headless Claude Code run, from prompt to classified result. Never throws for anything the agent does. */
export async function runClaude(config: Config, input: ClaudeRunInput): Promise<AgentRun> {
  const completionPromise =
    input.kind === 'execute'
      ? input.completionPromise === undefined
        ? config.orchestrator.completion_promise
        : input.completionPromise
      : null;
  const prompt = input.continuation && completionPromise
    ? buildContinuationPrompt({
        task: input.task,
        notePath: input.notePath,
        iteration: input.continuation.iteration,
        maxIterations: input.continuation.maxIterations,
        completionPromise,
      })
    : buildPrompt({
    kind: input.kind,
    task: input.task,
    notePath: input.notePath,
    plan: input.plan ?? null,
    completionPromise: completionPromise ?? undefined,
  });
  const args = buildClaudeArgs(config, {
    kind: input.kind,
    prompt,
    resumeSessionId: input.resumeSessionId ?? null,
    maxBudgetUsd: input.maxBudgetUsd ?? null,
  });

  const startedAt = new Date();
  const promptBytes = Buffer.byteLength(prompt);
  if (promptBytes > MAX_ARGUMENT_BYTES) {
    // spawn would fail with E2BIG, on every attempt: say why, once, instead of a retried "crash".
    return {
      ok: false,
      errorClass: 'invalid_task',
      message:
        `the prompt is ${promptBytes} bytes, more than the ${MAX_ARGUMENT_BYTES} the operating system allows for one ` +
        'argument; shorten the note (or the plan)',
      result: null,
      durationMs: 0,
      exitCode: null,
      signal: null,
      pid: null,
      startedAt,
      endedAt: new Date(),
    };
  }
  const { spool } = input;
  const outcome = await runAgent({
    command: config.orchestrator.claude_command,
    args,
    cwd: input.cwd,
    // The marker goes to the agent's environment, which its children inherit: it is how a restart recognises them.
    env: spool ? { ...(input.env ?? process.env), ...spool.env } : input.env,
    timeoutMs: config.orchestrator.claude_timeout * 1000,
    killGraceMs: config.orchestrator.kill_grace_period * 1000,
    logPath: input.logPath,
    signal: input.signal,
    onSpawn: input.onSpawn,
    ...(spool ? { output: spool, onExit: (exit) => spool.exited(exit) } : {}),
  });
  return classify(outcome, config.orchestrator.claude_timeout, startedAt, new Date());
}

/** The run's verdict and its numbers, as both the live and the adopting path report them. */
function classify(outcome: ProcessOutcome, timeoutSeconds: number, startedAt: Date, endedAt: Date): AgentRun {
  const interpreted = interpretResult(outcome);
  const message =
    outcome.timedOut && interpreted.errorClass === 'timeout'
      ? `the agent ran past its ${timeoutSeconds} s limit and was killed`
      : interpreted.message;
  return {
    ...interpreted,
    message,
    durationMs: outcome.durationMs,
    exitCode: outcome.exitCode,
    signal: outcome.signal,
    pid: outcome.pid,
    startedAt,
    endedAt,
  };
}

/**
 * Finish a run an earlier orchestrator started and died during (see `adoptAgent`): wait for the agent if it still
 * runs, then judge how it ended. Null when nothing says how: the agent is gone, nobody recorded its exit and its
 * output holds no result object (it crashed, or was killed with its orchestrator) — the caller requeues such a run.
 *
 * The rule for "finished and recorded", which lets the result stand instead of running the task again:
 * - the earlier orchestrator recorded the exit: judged exactly as a live run (exit 0 AND `subtype: success` AND
 *   `is_error: false` for success);
 * - the exit went unseen (the agent ended while no orchestrator ran, so no parent collected its status) but its stdout
 *   file holds a complete result object: the result object is the agent's last word and stands for the exit code —
 *   success is `subtype: success` AND `is_error: false`, anything else is the failure it reports;
 * - the agent ran past its time limit, or the adopting orchestrator was asked to stop it: timeout or interrupted, as
 *   live.
 */
export async function adoptClaude(
  config: Config,
  run: SpooledRun,
  options: { signal?: AbortSignal; pollMs?: number } = {},
): Promise<AgentRun | null> {
  const outcome = await adoptAgent({
    pgid: run.record.pgid,
    marker: run.marker,
    output: run.output,
    exit: run.exit,
    spawnedAt: new Date(run.record.spawnedAt),
    timeoutMs: run.record.timeoutMs,
    killGraceMs: config.orchestrator.kill_grace_period * 1000,
    logPath: run.record.logPath,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
  });
  const startedAt = new Date(run.record.spawnedAt);
  const endedAt = run.exit ? new Date(run.exit.endedAt) : new Date();
  const timeoutSeconds = run.record.timeoutMs / 1000;
  if (outcome.exitKnown || outcome.timedOut || outcome.aborted) return classify(outcome, timeoutSeconds, startedAt, endedAt);
  const judged = classify({ ...outcome, exitCode: 0 }, timeoutSeconds, startedAt, endedAt);
  if (judged.result === null) return null;
  return { ...judged, exitCode: null };
}
