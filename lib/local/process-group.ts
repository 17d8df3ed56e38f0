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

/**
 * Whether a process was started with `marker` (`NAME=value`) in its environment. fte gives each agent run a random
 * marker, which its own children inherit: after a restart, that is what proves a pid or group in a pid file is still the
 * run fte started and not a stranger that got the number since (pids are reused). Linux only (from /proc); false
 * elsewhere and when the environment cannot be read.
 */
export function processCarries(pid: number, marker: string): boolean {
  // While a process is between two execs (`env` starting `node` for a #! script) its environ reads empty for an
  // instant; an agent that just started is not a stranger, so an empty read is tried again before the answer is no.
  for (let tries = 0; tries < ENVIRON_RETRIES; tries++) {
    let environ: string;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      return false;
    }
    if (environ.length > 0) return environ.split('\0').includes(marker);
    Atomics.wait(ENVIRON_PAUSE, 0, 0, 5);
  }
  return false;
}

const ENVIRON_RETRIES = 20;
const ENVIRON_PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** Whether group identity can be checked here at all (see `processCarries`). */
export const CAN_VERIFY_GROUPS = process.platform === 'linux';

/** Running processes that carry `marker`, with their process groups (a scan of /proc; empty where it cannot be read). */
export function processesCarrying(marker: string): Array<{ pid: number; pgrp: number }> {
  const out: Array<{ pid: number; pgrp: number }> = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(name);
    if (stat === null || DEAD_STATES.has(stat.state)) continue;
    if (processCarries(Number(name), marker)) out.push({ pid: Number(name), pgrp: stat.pgrp });
  }
  return out;
}

/**
 * Whether group `pgid` still runs a process of the run that carries `marker`. Linux frees a pid only once no process
 * uses it as its pid or its group id, so a group with a marked member is the very group fte started. Where identity
 * cannot be checked (not Linux) this falls back to "the group exists".
 */
export function markedGroupAlive(pgid: number, marker: string): boolean {
  if (!CAN_VERIFY_GROUPS) return signalGroup(pgid, 0);
  if (!signalGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return false;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(name);
    if (stat && stat.pgrp === pgid && !DEAD_STATES.has(stat.state) && processCarries(Number(name), marker)) return true;
  }
  return false;
}

/** Whether the group's leader (the agent itself) still runs and is the process fte started (see `markedGroupAlive`). */
export function markedLeaderAlive(pgid: number, marker: string): boolean {
  if (!processIsAlive(pgid)) return false;
  return !CAN_VERIFY_GROUPS || processCarries(pgid, marker);
}

/**
 * Stop a group fte started but is not the parent of (an agent left by an orchestrator that died): SIGTERM, then SIGKILL
 * once `graceMs` has passed, each only while the group is still verified as that run's (`markedGroupAlive`). True when
 * the group was ours and is gone; false when it was already gone or is not ours to stop.
 */
export async function stopMarkedGroup(pgid: number, marker: string, graceMs: number): Promise<boolean> {
  if (!markedGroupAlive(pgid, marker)) return false;
  signalGroup(pgid, 'SIGTERM');
  if (await waitForGroupExit(pgid, graceMs, 25)) return true;
  if (markedGroupAlive(pgid, marker)) signalGroup(pgid, 'SIGKILL');
  return waitForGroupExit(pgid, 2000, 25);
}
