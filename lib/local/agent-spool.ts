import { randomBytes } from 'node:crypto';
import { FileWriteError } from '../core/errors.ts';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod';
import type { RunKind } from '../core/claude-invocation.ts';
import type { AgentExit, AgentOutputFiles } from './process-runner.ts';

/**
 * What one task's agent run leaves in `.fte/run/`, so that a run outlives a kill -9 of its orchestrator instead of being
 * repeated after it:
 * - `<id>.run`  the run's record (JSON): its random marker, attempt, kind, loop iteration, start, time limit, log path;
 * - `<id>.pid`  the agent's process group, a bare number as pid files go, once the agent has started;
 * - `<id>.out`, `<id>.err`  the agent's stdout and stderr, written by the agent itself (they are its output files);
 * - `<id>.exit` how the agent exited, written by the orchestrator the moment it sees the exit.
 *
 * Order keeps them consistent through a crash at any point: a new run first removes the last run's record, pid and
 * exit, then empties the output files, then writes its own record before the agent starts, and the pid after. So a
 * record always describes the output files and the pid beside it, and an exit counts only when it names the record's
 * marker. Writes are atomic (temporary file, then rename); they are not fsynced, since they guard against the
 * orchestrator dying, not the machine.
 */

/** The environment variable that carries a run's marker into the agent and everything it starts. */
export const RUN_MARKER_ENV = 'FTE_RUN_MARKER';

const SUFFIXES = ['.run.tmp', '.pid.tmp', '.exit.tmp', '.run', '.pid', '.out', '.err', '.exit'] as const;

const recordSchema = z.object({
  marker: z.string().min(16),
  attempt: z.number().int().nonnegative(),
  kind: z.enum(['plan', 'execute']),
  iteration: z.number().int().positive().nullable(),
  spawnedAt: z.iso.datetime(),
  timeoutMs: z.number().positive(),
  logPath: z.string().nullable(),
});
export type SpoolRecord = z.output<typeof recordSchema> & {
  /** The agent's process group (its own pid), from the pid file; null until the agent has started. */
  pgid: number | null;
};

const exitSchema = z.object({
  marker: z.string(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  aborted: z.boolean(),
  durationMs: z.number().nonnegative(),
  endedAt: z.iso.datetime(),
});

/** A run found in the spool: its record, how it exited if that was seen, and where its output is. */
export interface SpooledRun {
  record: SpoolRecord;
  /** `NAME=value`, as it appears in the agent's environment. */
  marker: string;
  exit: AgentExit | null;
  output: AgentOutputFiles;
}

export type SpoolContents =
  | { kind: 'none' }
  /** A pid file without a record (an earlier fte version): names a group that cannot be verified as the run's. */
  | { kind: 'unverifiable'; pgid: number | null }
  | { kind: 'run'; run: SpooledRun };

/** The handle a live run writes through; the runner takes the output paths from it. */
export interface AgentSpool extends AgentOutputFiles {
  readonly env: Readonly<Record<string, string>>;
  spawned(pid: number): void;
  exited(exit: AgentExit): void;
}

export class RunSpool {
  constructor(
    private readonly dir: string,
    readonly taskId: string,
  ) {}

  private path(suffix: (typeof SUFFIXES)[number]): string {
    return join(this.dir, `${this.taskId}${suffix}`);
  }

  get output(): AgentOutputFiles {
    return { stdoutPath: this.path('.out'), stderrPath: this.path('.err') };
  }

  /**
   * Before an agent starts: clear the last run's files and record this one (marker, no pid yet). Throws a
   * FileWriteError naming the file (ENOSPC, EACCES, ...): an agent whose run cannot be recorded must not start.
   */
  begin(meta: Pick<SpoolRecord, 'attempt' | 'kind' | 'iteration' | 'timeoutMs' | 'logPath'>): AgentSpool {
    const token = randomBytes(16).toString('hex');
    const record: z.input<typeof recordSchema> = { marker: token, spawnedAt: new Date().toISOString(), ...meta };
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    unlinkIfPresent(this.path('.run'));
    unlinkIfPresent(this.path('.pid'));
    unlinkIfPresent(this.path('.exit'));
    for (const suffix of ['.out', '.err'] as const) {
      try {
        writeFileSync(this.path(suffix), '', { mode: 0o600 });
      } catch (err) {
        throw new FileWriteError(this.path(suffix), err);
      }
    }
    this.atomicWrite('.run', `${JSON.stringify(record)}\n`);
    return {
      ...this.output,
      env: { [RUN_MARKER_ENV]: token },
      spawned: (pid) => this.atomicWrite('.pid', `${pid}\n`),
      exited: (exit) => this.atomicWrite('.exit', `${JSON.stringify({ marker: token, ...exit })}\n`),
    };
  }

  read(): SpoolContents {
    const pgid = this.readPid();
    const parsed = recordSchema.safeParse(parseJson(readText(this.path('.run')) ?? ''));
    if (!parsed.success) return pgid === undefined ? { kind: 'none' } : { kind: 'unverifiable', pgid };
    const record: SpoolRecord = { ...parsed.data, pgid: pgid ?? null };
    let exit: AgentExit | null = null;
    const recorded = exitSchema.safeParse(parseJson(readText(this.path('.exit')) ?? ''));
    // Only this run's exit counts (begin removes the last one's, but the marker is the proof).
    if (recorded.success && recorded.data.marker === record.marker) {
      const { marker: _marker, ...fields } = recorded.data;
      exit = fields;
    }
    return { kind: 'run', run: { record, marker: `${RUN_MARKER_ENV}=${record.marker}`, exit, output: this.output } };
  }

  /** Forget the run: every file of this task in the spool. */
  remove(): void {
    for (const suffix of SUFFIXES) {
      try {
        rmSync(this.path(suffix), { force: true });
      } catch {
        // Not a file fte wrote (a folder of that name): it names no process, so it is left alone.
      }
    }
  }

  /** The tasks with any file in the spool folder. */
  static taskIds(dir: string): string[] {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return [];
    }
    const ids = new Set<string>();
    for (const name of names) {
      const suffix = SUFFIXES.find((s) => name.endsWith(s) && name.length > s.length);
      if (suffix !== undefined) ids.add(name.slice(0, -suffix.length));
    }
    return [...ids];
  }

  /** The group in the pid file: undefined when there is no pid file, null when it holds no valid pid. */
  private readPid(): number | null | undefined {
    const text = readText(this.path('.pid'));
    if (text === null) return undefined;
    const pid = Number(text.split('\n')[0]?.trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  }

  private atomicWrite(suffix: '.run' | '.pid' | '.exit', text: string): void {
    const temp = this.path(`${suffix}.tmp` as const);
    try {
      writeFileSync(temp, text, { mode: 0o600 });
      renameSync(temp, this.path(suffix));
    } catch (err) {
      rmSync(temp, { force: true });
      // The system's message names no file; an operator with a full disk needs to know which file system to free.
      throw new FileWriteError(this.path(suffix), err);
    }
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
