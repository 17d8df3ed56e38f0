import { readdirSync, readFileSync } from 'node:fs';

/**
 * Process-group helpers for POSIX. An agent runs as the leader of its own group (spawned `detached`), so signalling
 * `-pgid` reaches every process it started that did not leave the group on purpose.
 */

/** Signal a whole group. False when there is no such group (ESRCH) or it is not ours to signal (EPERM). */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH' || code === 'EPERM') return false;
    throw err;
  }
}

/** State letter and process group of a process, from Linux's /proc; null when it is gone or /proc is unreadable. */
function procStat(pid: string): { state: string; pgrp: number } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name is in parentheses and may itself contain spaces or parentheses; fields resume after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', pgrp: Number(fields[2]) };
}

const DEAD_STATES = new Set(['Z', 'X', 'x']);

/**
 * Whether a process is still running. A zombie counts as dead: it runs nothing and holds nothing but its table entry.
 * Zombies matter because an orphaned grandchild is re-parented to pid 1, and in some containers pid 1 never reaps, so
 * `kill(pid, 0)` keeps succeeding for a process that is long dead.
 */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (process.platform !== 'linux') return true;
  const stat = procStat(String(pid));
  return stat !== null && !DEAD_STATES.has(stat.state);
}

/** Whether any process of the group is still running (zombies excluded on Linux, as above). */
export function groupIsAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(name);
    if (stat && stat.pgrp === pgid && !DEAD_STATES.has(stat.state)) return true;
  }
  return false;
}

/** Poll until the group has no running member or `timeoutMs` passes; true when it is gone. */
export async function waitForGroupExit(pgid: number, timeoutMs: number, pollMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!groupIsAlive(pgid)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
