import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { markedGroupAlive, markedLeaderAlive, processesCarrying, signalGroup, stopMarkedGroup, waitForGroupExit } from './process-group.ts';
import { RunLog, type OutputSource } from './run-log.ts';

/**
 * Runs one agent process and always leaves nothing of it behind.
 *
 * The agent is spawned without a shell (its argv is passed as is, so task text can never be interpreted) and as the
 * leader of its own process group, so the tools it starts can be killed with it. Cleanup of that group:
 * - on timeout or abort: SIGTERM to the group, then SIGKILL to the group after `killGraceMs`;
 * - whenever the agent itself exits, for any reason: SIGKILL to whatever is left of its group. An agent's tools may
 *   start servers or watchers and the agent may exit without stopping them; they would otherwise run on as orphans.
 *   A process that leaves the group on purpose (setsid, its own `detached` spawn) escapes this.
 * The agent writes its stdout and stderr straight into files, never into pipes to fte: a file outlives the orchestrator,
 * so an agent that finishes after a kill -9 of fte still leaves its result where the restarted orchestrator can read it
 * (`adoptAgent`), and an agent writing to a dead orchestrator's pipe would get EPIPE. It also means a process that
 * holds the output open can never keep a run from ending: fte reads the files once the agent has exited.
 * The promise resolves after the agent has exited and (within a bound) no member of its group is running any more.
 * POSIX only: Windows has no process groups.
 */

/** Per stream; beyond it the oldest output is dropped, since Claude's result object is the last thing it prints. */
export const OUTPUT_CAP_BYTES = 4 * 1024 * 1024;
/** How long to wait, after the final SIGKILL, for the group's members to be gone. */
const GROUP_EXIT_WAIT_MS = 1000;
/** setTimeout's ceiling (about 24.8 days); a longer delay would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Arguments longer than this (the prompt) are shown in the log by their length only. */
const LOGGED_ARG_MAX = 200;

export interface RunAgentOptions {
  command: string;
  args: readonly string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  killGraceMs: number;
  logPath: string | null;
  signal?: AbortSignal;
  onSpawn?: (pid: number) => void;
  /** Where the agent's output goes; files in a temporary folder, removed afterwards, when not given. */
  output?: AgentOutputFiles;
  /** Told the moment the agent exits, before anything else is done about it, so the exit can be recorded durably. */
  onExit?: (exit: AgentExit) => void;
}

export interface AgentOutputFiles {
  stdoutPath: string;
  stderrPath: string;
}

/** How the agent process itself ended, as its parent saw it. */
export interface AgentExit {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  endedAt: string;
}

export interface ProcessOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  aborted: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
  pid: number | null;
  /** Whether the oldest output of a stream was dropped to stay within OUTPUT_CAP_BYTES. */
  truncated: { stdout: boolean; stderr: boolean };
  /** Why the log file could not be written, if it could not; the run itself is unaffected. */
  logError: string | null;
}

/** The last `cap` bytes of a file (the result object is at the end), and whether anything before them was dropped. */
function readTail(path: string, cap: number): { text: string; truncated: boolean } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { text: '', truncated: false };
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, cap);
    const buffer = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const n = readSync(fd, buffer, read, length - read, size - length + read);
      if (n === 0) break;
      read += n;
    }
    return { text: buffer.subarray(0, read).toString('utf8'), truncated: size > cap };
  } finally {
    closeSync(fd);
  }
}

const COPY_CHUNK_BYTES = 1024 * 1024;

/** Append a whole output file to the run log: the log keeps everything, however much is dropped from memory. */
function copyToLog(log: RunLog, source: OutputSource, path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return;
  }
  try {
    const buffer = Buffer.alloc(COPY_CHUNK_BYTES);
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      log.output(source, Buffer.from(buffer.subarray(0, n)));
    }
  } finally {
    closeSync(fd);
  }
}

function describeSpawnError(command: string, cwd: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  // spawn reports a missing working directory as ENOENT too, naming the command.
  if (e.code === 'ENOENT' && !existsSync(cwd)) return `fte: working directory does not exist: ${cwd}\n`;
  if (e.code === 'ENOENT') return `fte: command not found: ${command} (spawn ENOENT)\n`;
  if (e.code === 'EACCES') return `fte: command is not executable: ${command} (spawn EACCES)\n`;
  return `fte: could not start ${command}: ${e.message}\n`;
}

/** Output files for a run nobody needs to find again: a private temporary folder, removed by `dispose`. */
function temporaryOutput(): { files: AgentOutputFiles; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fte-agent-'));
  return {
    files: { stdoutPath: join(dir, 'stdout'), stderrPath: join(dir, 'stderr') },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Collects what a run produced: the output files' tails plus fte's own notes, and the log. */
class RunRecorder {
  private readonly notes: string[] = [];
  readonly log: RunLog | null;

  constructor(
    logPath: string | null,
    private readonly files: AgentOutputFiles,
  ) {
    this.log = logPath ? new RunLog(logPath) : null;
  }

  /** A line of fte's own about the run, shown as stderr (the classifier quotes stderr when there is no result). */
  note(text: string): void {
    this.notes.push(text);
    this.log?.output('stderr', Buffer.from(text));
  }

  async finish(fields: Omit<ProcessOutcome, 'stdout' | 'stderr' | 'truncated' | 'logError'>): Promise<ProcessOutcome> {
    const out = readTail(this.files.stdoutPath, OUTPUT_CAP_BYTES);
    const err = readTail(this.files.stderrPath, OUTPUT_CAP_BYTES);
    if (this.log) {
      copyToLog(this.log, 'stdout', this.files.stdoutPath);
      copyToLog(this.log, 'stderr', this.files.stderrPath);
      this.log.line(
        `=== pid ${fields.pid ?? 'none'}, exit code ${fields.exitCode ?? 'none'}, signal ${fields.signal ?? 'none'}, ` +
          `timed out ${fields.timedOut ? 'yes' : 'no'}, aborted ${fields.aborted ? 'yes' : 'no'}, ${fields.durationMs} ms ===`,
      );
      await this.log.close();
    }
    return {
      ...fields,
      stdout: out.text,
      stderr: err.text + this.notes.join(''),
      truncated: { stdout: out.truncated, stderr: err.truncated },
      logError: this.log?.error ?? null,
    };
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function runAgent(options: RunAgentOptions): Promise<ProcessOutcome> {
  const started = performance.now();
  const temporary = options.output ? null : temporaryOutput();
  const files = options.output ?? (temporary as { files: AgentOutputFiles }).files;
  const recorder = new RunRecorder(options.logPath, files);
  let pid: number | null = null;
  let timedOut = false;
  let aborted = false;

  const shownArgs = options.args.map((a) => (a.length > LOGGED_ARG_MAX ? `<${a.length} characters>` : a));
  recorder.log?.line(`=== ${new Date().toISOString()} run ${options.command} ${JSON.stringify(shownArgs)} in ${options.cwd} ===`);

  const finish = async (exitCode: number | null, signal: string | null): Promise<ProcessOutcome> => {
    try {
      return await recorder.finish({ exitCode, signal, timedOut, aborted, durationMs: Math.round(performance.now() - started), pid });
    } finally {
      temporary?.dispose();
    }
  };

  if (options.signal?.aborted) {
    aborted = true;
    recorder.note('fte: the run was aborted before the agent started\n');
    return finish(null, null);
  }

  let child: ChildProcess;
  let stdoutFd: number | null = null;
  let stderrFd: number | null = null;
  try {
    stdoutFd = openSync(files.stdoutPath, 'w', 0o600);
    stderrFd = openSync(files.stderrPath, 'w', 0o600);
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', stdoutFd, stderrFd],
      shell: false,
    });
  } catch (err) {
    // Synchronous failures: an argument with a NUL byte, an invalid option, output files that cannot be created.
    recorder.note(describeSpawnError(options.command, options.cwd, err));
    return finish(null, null);
  } finally {
    // The child has its own copies of the descriptors; fte reads the files by name once the agent has exited.
    if (stdoutFd !== null) closeSync(stdoutFd);
    if (stderrFd !== null) closeSync(stderrFd);
  }

  return new Promise<ProcessOutcome>((resolve) => {
    let settled = false;
    let exited = false;
    let timeoutTimer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;

    const terminate = (): void => {
      if (pid === null || exited || graceTimer !== undefined) return;
      const group = pid;
      signalGroup(group, 'SIGTERM');
      graceTimer = setTimeout(() => signalGroup(group, 'SIGKILL'), Math.min(options.killGraceMs, MAX_TIMER_MS));
    };
    const onAbort = (): void => {
      aborted = true;
      terminate();
    };
    const settle = (outcome: Promise<ProcessOutcome>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timeoutTimer);
      clearTimeout(graceTimer);
      options.signal?.removeEventListener('abort', onAbort);
      void outcome.then(resolve);
    };

    child.once('spawn', () => {
      pid = child.pid ?? null;
      if (pid !== null) options.onSpawn?.(pid);
      timeoutTimer = setTimeout(() => {
        timedOut = true;
        terminate();
      }, Math.min(options.timeoutMs, MAX_TIMER_MS));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      // An abort between the check above and this listener would otherwise go unnoticed.
      if (options.signal?.aborted) onAbort();
    });

    child.on('error', (err) => {
      // After a successful spawn, 'exit' decides the outcome; an error before it means nothing ran.
      if (pid !== null) return;
      recorder.note(describeSpawnError(options.command, options.cwd, err));
      settle(finish(null, null));
    });

    child.once('exit', (exitCode, signal) => {
      exited = true;
      clearTimeout(timeoutTimer);
      clearTimeout(graceTimer);
      try {
        options.onExit?.({
          exitCode,
          signal,
          timedOut,
          aborted,
          durationMs: Math.round(performance.now() - started),
          endedAt: new Date().toISOString(),
        });
      } catch {
        // Recording the exit only spares a restarted orchestrator a guess; the run itself is unaffected.
      }
      const afterExit = async (): Promise<ProcessOutcome> => {
        if (pid !== null) {
          signalGroup(pid, 'SIGKILL');
          await waitForGroupExit(pid, GROUP_EXIT_WAIT_MS);
        }
        return finish(exitCode, signal);
      };
      settle(afterExit());
    });
  });
}

export interface AdoptAgentOptions {
  /** The agent's process group; null when the orchestrator that started it died before recording it. */
  pgid: number | null;
  /** The `NAME=value` the run carries in its environment: what proves a process is still the run's (pid reuse). */
  marker: string;
  output: AgentOutputFiles;
  /** How the agent exited, if the orchestrator that started it lived to see it. */
  exit: AgentExit | null;
  spawnedAt: Date;
  timeoutMs: number;
  killGraceMs: number;
  logPath: string | null;
  signal?: AbortSignal;
  pollMs?: number;
}

export interface AdoptedOutcome extends ProcessOutcome {
  /** Whether `exitCode` and `signal` are known: only a parent sees them, and the parent may have died first. */
  exitKnown: boolean;
}

/**
 * Take over an agent an earlier orchestrator started and did not live to see end (kill -9, power loss of fte only):
 * wait for it as `runAgent` would — to its end, or to its time limit or an abort (then SIGTERM, SIGKILL after
 * `killGraceMs`, as `runAgent` does) — then clear what is left of its group and read its output files.
 *
 * fte is not the agent's parent, so it cannot collect its exit status: it polls whether the agent still runs, and the
 * exit code is known only if the earlier orchestrator recorded it (`exit`). A process counts as the agent only while it
 * carries the run's marker, so a pid reused by someone else is never waited for or signalled.
 */
export async function adoptAgent(options: AdoptAgentOptions): Promise<AdoptedOutcome> {
  const recorder = new RunRecorder(options.logPath, options.output);
  const pollMs = options.pollMs ?? 100;
  const marked = options.pgid === null ? processesCarrying(options.marker) : [];
  const pgid = options.pgid ?? marked.find((p) => p.pid === p.pgrp)?.pgrp ?? marked[0]?.pgrp ?? null;
  const deadline = options.spawnedAt.getTime() + options.timeoutMs;
  let timedOut = options.exit?.timedOut ?? false;
  let aborted = options.exit?.aborted ?? false;
  recorder.log?.line(
    `=== ${new Date().toISOString()} adopted by orchestrator pid ${process.pid}: agent group ${pgid ?? 'not found'}, ` +
      `exit ${options.exit ? 'recorded' : 'not recorded'} ===`,
  );

  if (options.exit === null && pgid !== null) {
    while (markedLeaderAlive(pgid, options.marker)) {
      if (options.signal?.aborted || Date.now() >= deadline) {
        if (options.signal?.aborted) aborted = true;
        else timedOut = true;
        await stopMarkedGroup(pgid, options.marker, options.killGraceMs);
        break;
      }
      await delay(Math.min(pollMs, Math.max(1, deadline - Date.now())));
    }
  }
  // As after any agent's end: whatever it left running in its group goes with it.
  if (pgid !== null && markedGroupAlive(pgid, options.marker)) {
    signalGroup(pgid, 'SIGKILL');
    await waitForGroupExit(pgid, GROUP_EXIT_WAIT_MS);
  }
  const exitKnown = options.exit !== null;
  const outcome = await recorder.finish({
    exitCode: options.exit?.exitCode ?? null,
    signal: options.exit?.signal ?? null,
    timedOut,
    aborted,
    durationMs: options.exit?.durationMs ?? Math.max(0, Date.now() - options.spawnedAt.getTime()),
    pid: pgid,
  });
  return { ...outcome, exitKnown };
}
