import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { signalGroup, waitForGroupExit } from './process-group.ts';
import { RunLog } from './run-log.ts';

/**
 * Runs one agent process and always leaves nothing of it behind.
 *
 * The agent is spawned without a shell (its argv is passed as is, so task text can never be interpreted) and as the
 * leader of its own process group, so the tools it starts can be killed with it. Cleanup of that group:
 * - on timeout or abort: SIGTERM to the group, then SIGKILL to the group after `killGraceMs`;
 * - whenever the agent itself exits, for any reason: SIGKILL to whatever is left of its group. An agent's tools may
 *   start servers or watchers and the agent may exit without stopping them; they would otherwise run on as orphans
 *   and, holding its stdout open, keep the run from ever ending. A process that leaves the group on purpose
 *   (setsid, its own `detached` spawn) escapes this, and fte stops reading its output after a short wait.
 * The promise resolves after the agent has exited, its output has ended and (within a bound) no member of its group
 * is running any more. POSIX only: Windows has no process groups.
 */

/** Per stream; beyond it the oldest output is dropped, since Claude's result object is the last thing it prints. */
export const OUTPUT_CAP_BYTES = 4 * 1024 * 1024;
/** How long to wait, after the agent exits, for its output pipes to close. */
const STREAM_DRAIN_MS = 2000;
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

/** Keeps the last `cap` bytes of a stream. */
class TailBuffer {
  truncated = false;
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.cap) {
      const first = this.chunks[0] as Buffer;
      const excess = this.size - this.cap;
      this.truncated = true;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
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

function whenClosed(stream: Readable | null): Promise<void> {
  if (!stream || stream.closed || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

function delay(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

export async function runAgent(options: RunAgentOptions): Promise<ProcessOutcome> {
  const started = performance.now();
  const log = options.logPath ? new RunLog(options.logPath) : null;
  const stdout = new TailBuffer(OUTPUT_CAP_BYTES);
  const stderr = new TailBuffer(OUTPUT_CAP_BYTES);
  let pid: number | null = null;
  let timedOut = false;
  let aborted = false;

  const shownArgs = options.args.map((a) => (a.length > LOGGED_ARG_MAX ? `<${a.length} characters>` : a));
  log?.line(`=== ${new Date().toISOString()} run ${options.command} ${JSON.stringify(shownArgs)} in ${options.cwd} ===`);

  const finish = async (exitCode: number | null, signal: string | null): Promise<ProcessOutcome> => {
    const durationMs = Math.round(performance.now() - started);
    log?.line(
      `=== pid ${pid ?? 'none'}, exit code ${exitCode ?? 'none'}, signal ${signal ?? 'none'}, timed out ${timedOut ? 'yes' : 'no'}, ` +
        `aborted ${aborted ? 'yes' : 'no'}, ${durationMs} ms ===`,
    );
    await log?.close();
    return {
      exitCode,
      signal,
      timedOut,
      aborted,
      stdout: stdout.text(),
      stderr: stderr.text(),
      durationMs,
      pid,
      truncated: { stdout: stdout.truncated, stderr: stderr.truncated },
      logError: log?.error ?? null,
    };
  };
  const note = (text: string): void => {
    const chunk = Buffer.from(text);
    stderr.push(chunk);
    log?.output('stderr', chunk);
  };

  if (options.signal?.aborted) {
    aborted = true;
    note('fte: the run was aborted before the agent started\n');
    return finish(null, null);
  }

  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
    });
  } catch (err) {
    // Synchronous failures: an argument with a NUL byte, an invalid option.
    note(describeSpawnError(options.command, options.cwd, err));
    return finish(null, null);
  }

  const outputClosed = Promise.all([whenClosed(child.stdout), whenClosed(child.stderr)]);
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout.push(chunk);
    log?.output('stdout', chunk);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr.push(chunk);
    log?.output('stderr', chunk);
  });

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
      note(describeSpawnError(options.command, options.cwd, err));
      settle(outputClosed.then(() => finish(null, null)));
    });

    child.once('exit', (exitCode, signal) => {
      exited = true;
      clearTimeout(timeoutTimer);
      clearTimeout(graceTimer);
      const afterExit = async (): Promise<ProcessOutcome> => {
        if (pid !== null) signalGroup(pid, 'SIGKILL');
        const drain = delay(STREAM_DRAIN_MS);
        const drained = await Promise.race([outputClosed.then(() => true), drain.promise.then(() => false)]);
        drain.cancel();
        if (!drained) {
          child.stdout?.destroy();
          child.stderr?.destroy();
          note('fte: a process outside the agent\'s group kept its output open; stopped reading it\n');
        }
        if (pid !== null) await waitForGroupExit(pid, GROUP_EXIT_WAIT_MS);
        return finish(exitCode, signal);
      };
      settle(afterExit());
    });
  });
}
