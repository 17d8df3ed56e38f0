import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { HistoryEvent } from '../../lib/core/history.ts';
import type { RunRecord, TaskRecord } from '../../lib/core/store.ts';
import { processIsAlive } from '../../lib/local/process-group.ts';
import { SqliteTaskStore } from '../../lib/local/sqlite-store.ts';
import { ROOT, STAND_IN } from '../e2e/harness.ts';
import { mulberry32 as seeded } from '../prng.ts';

/**
 * Shared by the hardening tests (test/hardening/*.test.ts) and their full-size runs in bench/: the real `fte` process,
 * the stand-in agent's log, process and file-tree inspection, and reading a vault's store after the fact.
 */

export { ROOT, STAND_IN };
export const FTE_BIN = join(ROOT, 'bin', 'fte.js');

export { seeded };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(check: () => boolean, timeoutMs: number, what: string, pollMs = 25): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** The environment every fte process and stand-in agent of one scenario runs with. */
export function fteEnv(standInDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    FTE_CLAUDE_COMMAND: STAND_IN,
    FTE_STAND_IN_STATE: join(standInDir, 'state'),
    FTE_STAND_IN_LOG: join(standInDir, 'stand-in.log'),
    NO_COLOR: '1',
    ...extra,
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the real CLI once: `node bin/fte.js <args> --vault <vault>`. */
export function fte(
  vault: string,
  env: NodeJS.ProcessEnv,
  args: string[],
  options: { timeoutMs?: number; command?: string[] } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = options.command ?? [process.execPath];
    const child = spawn(cmd as string, [...pre, FTE_BIN, ...args, '--vault', vault], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fte ${args.join(' ')} timed out\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
    }, options.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface EventLine {
  at: string;
  event: string;
  taskId?: string;
  message: string;
  [key: string]: unknown;
}

/** `fte orchestrator run --json [--no-api]` as its own process, with its event lines collected as they come. */
export class OrchestratorProcess {
  readonly child: ChildProcess;
  readonly lines: EventLine[] = [];
  readonly spawnedAt = Date.now();
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private buffer = '';

  /** `api: true` serves the HTTP API (pass `--api-port 0` in `extra` for a free port); by default it is off. */
  constructor(vault: string, env: NodeJS.ProcessEnv, extra: string[] = [], options: { api?: boolean } = {}) {
    const api = options.api === true ? [] : ['--no-api'];
    this.child = spawn(process.execPath, [FTE_BIN, 'orchestrator', 'run', '--vault', vault, '--json', ...api, ...extra], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => {
      this.buffer += d.toString();
      const parts = this.buffer.split('\n');
      this.buffer = parts.pop() ?? '';
      for (const p of parts) {
        if (!p.trim()) continue;
        try {
          this.lines.push(JSON.parse(p) as EventLine);
        } catch {
          this.lines.push({ at: new Date().toISOString(), event: 'unparsed', message: p });
        }
      }
    });
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  has(event: string, taskId?: string): boolean {
    return this.lines.some((l) => l.event === event && (taskId === undefined || l.taskId === taskId));
  }

  /** kill -9; resolves when the process is gone. Returns the moment the signal was sent. */
  async kill9(): Promise<number> {
    const at = Date.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    return at;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The stand-in agent's log (examples/stand-in-claude.mjs, $FTE_STAND_IN_LOG): one JSON line per invocation.

export interface StandInCall {
  pid: number;
  ppid: number;
  argv: string[];
  promptLength: number;
  promptSha256: string | null;
  taskId: string | null;
  planning: boolean;
  startMs: number;
  behaviour?: string;
  sessionId?: string;
  /** Absent for a run that never finished (killed); null for `hang`, which logs at its start. */
  endMs?: number | null;
  exitCode?: number;
  grandchildPid?: number;
}

export function readStandInLog(path: string): StandInCall[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as StandInCall);
}

/**
 * Invocations merged per pid: `hang` logs once at its start and is never heard of again, every other behaviour logs
 * once at its end (with its start time); a run killed before its end is not in the log at all.
 */
export function callsByPid(calls: StandInCall[]): Map<number, StandInCall> {
  const out = new Map<number, StandInCall>();
  for (const c of calls) out.set(c.pid, { ...(out.get(c.pid) ?? {}), ...c });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/** Running (not zombie) processes whose process group is `pgid`, from /proc. */
export function processesInGroup(pgid: number): number[] {
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && !['Z', 'X', 'x'].includes(fields[0] ?? '')) out.push(Number(name));
  }
  return out;
}

/** Of these pids (agents and the grandchildren they reported), the ones still running, or running members of their groups. */
export function leftoverProcesses(pids: Iterable<number>): number[] {
  const left = new Set<number>();
  for (const pid of pids) {
    if (processIsAlive(pid)) left.add(pid);
    for (const member of processesInGroup(pid)) left.add(member);
  }
  return [...left].sort((a, b) => a - b);
}

/**
 * Every running process (other than this one) whose command line or environment mentions `needle` — a scenario's own
 * scratch path, which every fte process and agent of the scenario carries in $FTE_STAND_IN_LOG. This finds agents that
 * were killed before they could log anything, and grandchildren that inherited the environment.
 */
export function processesMentioning(needle: string): Array<{ pid: number; cmdline: string }> {
  const out: Array<{ pid: number; cmdline: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8');
      if ((cmdline.includes(needle) || environ.includes(needle)) && processIsAlive(Number(name))) out.push({ pid: Number(name), cmdline });
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// File trees

/** Every entry under `dir` (lstat: links are not followed) → a description that changes when the entry does. */
export function treeSnapshot(dir: string, options: { contents?: boolean; skip?: (rel: string) => boolean } = {}): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (path: string): void => {
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const name of names) {
      const full = join(path, name);
      const rel = relative(dir, full);
      if (options.skip?.(rel)) continue;
      let st;
      try {
        st = lstatSync(full);
      } catch {
        continue;
      }
      if (st.isSymbolicLink()) out.set(rel, `link → ${readlinkSync(full)}`);
      else if (st.isDirectory()) {
        out.set(rel, `dir ${(st.mode & 0o7777).toString(8)}`);
        walk(full);
      } else if (st.isFile()) {
        const hash = options.contents === false ? `${st.mtimeMs}` : createHash('sha256').update(readFileSync(full)).digest('hex').slice(0, 16);
        out.set(rel, `file ${st.size} ${hash}`);
      } else out.set(rel, `special ${st.mode.toString(8)}`);
    }
  };
  walk(dir);
  return out;
}

/** What changed between two snapshots, one line per entry. */
export function treeDiff(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [path, desc] of before) {
    const now = after.get(path);
    if (now === undefined) out.push(`- ${path} (${desc})`);
    else if (now !== desc) out.push(`~ ${path} (${desc} → ${now})`);
  }
  for (const [path, desc] of after) if (!before.has(path)) out.push(`+ ${path} (${desc})`);
  return out.sort();
}

// ---------------------------------------------------------------------------------------------------------------
// The store, read after the fact

export interface StoreDump {
  tasks: TaskRecord[];
  history: HistoryEvent[];
  runs: Map<string, RunRecord[]>;
}

export async function readStore(vault: string): Promise<StoreDump> {
  const store = SqliteTaskStore.open(join(vault, '.fte', 'fte.db'), { readonly: true });
  try {
    const tasks = await store.list();
    const history = await store.history({ since: new Date(0), until: new Date(8.64e15) });
    const runs = new Map<string, RunRecord[]>();
    for (const t of tasks) runs.set(t.id, await store.runs(t.id));
    return { tasks, history, runs };
  } finally {
    await store.close();
  }
}

/** Markdown-ish fixed-width table, for the figures the runs print. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(cells[0] as string[]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}
