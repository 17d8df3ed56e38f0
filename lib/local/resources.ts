import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ResourceUsage } from '../app/contracts.ts';
import { processIsAlive } from './process-group.ts';

/**
 * CPU and memory of the orchestrator and its agents (seed T045), read from the operating system rather than recorded
 * by the engine, so any process — the orchestrator's own API, or a CLI next to it — sees the same figures.
 *
 * The orchestrator's pid comes from `.fte/orchestrator.pid`; each running agent's from `.fte/run/<task>.pid`. An agent
 * leads its own process group (lib/local/process-group.ts), and the tools it starts stay in that group, so an agent's
 * figures are the sum over its group. On Linux the figures come from /proc; elsewhere only the current process can be
 * measured and the rest is reported as unknown.
 */

/** /proc reports CPU time in USER_HZ ticks, which the kernel fixes at 100 per second for user space on Linux. */
const USER_HZ = 100;

interface ProcStat {
  pid: number;
  /** The state letter: R, S, D, Z (zombie), … */
  state: string;
  pgrp: number;
  cpuTicks: number;
  startTicks: number;
}

/** Fields of /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself contain spaces or ')'. */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  const open = text.indexOf('(');
  if (close < 0 || open < 0) return null;
  const pid = Number(text.slice(0, open).trim());
  // After the name: field 3 (state) is index 0, so field n is index n − 3.
  const rest = text.slice(close + 2).split(' ');
  const pgrp = Number(rest[2]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  const start = Number(rest[19]);
  if (![pid, pgrp, utime, stime, start].every(Number.isFinite)) return null;
  return { pid, state: rest[0] ?? '', pgrp, cpuTicks: utime + stime, startTicks: start };
}

/** Resident set size from /proc/<pid>/status (`VmRSS: 1234 kB`); 0 for a zombie or a kernel thread, which have none. */
export function parseVmRssBytes(statusText: string): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(statusText);
  return match === null ? 0 : Number(match[1]) * 1024;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function readPid(path: string): number | null {
  const text = readText(path);
  if (text === null) return null;
  const pid = Number(text.split('\n')[0]?.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

export interface ResourceOptions {
  /** Where /proc is; tests point it at a fake tree. */
  readonly procRoot?: string;
  readonly now?: Date;
}

export class ResourceSampler {
  private readonly procRoot: string;

  constructor(
    private readonly stateDir: string,
    options: ResourceOptions = {},
  ) {
    this.procRoot = options.procRoot ?? '/proc';
  }

  private procAvailable(): boolean {
    return readText(join(this.procRoot, 'self', 'stat')) !== null || readText(join(this.procRoot, String(process.pid), 'stat')) !== null;
  }

  private stat(pid: number): ProcStat | null {
    const text = readText(join(this.procRoot, String(pid), 'stat'));
    return text === null ? null : parseProcStat(text);
  }

  private rss(pid: number): number {
    const text = readText(join(this.procRoot, String(pid), 'status'));
    return text === null ? 0 : parseVmRssBytes(text);
  }

  private uptimeSeconds(): number | null {
    const text = readText(join(this.procRoot, 'uptime'));
    const value = text === null ? NaN : Number(text.split(' ')[0]);
    return Number.isFinite(value) ? value : null;
  }

  /** Every process, grouped by process group: one pass over /proc for all agents. */
  private processGroups(): Map<number, ProcStat[]> {
    const groups = new Map<number, ProcStat[]>();
    let entries: string[];
    try {
      entries = readdirSync(this.procRoot);
    } catch {
      return groups;
    }
    for (const name of entries) {
      if (!/^\d+$/.test(name)) continue;
      const stat = this.stat(Number(name));
      // Gone between the listing and the read, or a zombie: it runs nothing and holds no memory.
      if (stat === null || stat.state === 'Z' || stat.state === 'X') continue;
      const list = groups.get(stat.pgrp);
      if (list === undefined) groups.set(stat.pgrp, [stat]);
      else list.push(stat);
    }
    return groups;
  }

  private orchestrator(pid: number, proc: boolean): ResourceUsage['orchestrator'] {
    if (pid === process.pid) {
      // Our own process: Node's counters are exact and work on every platform.
      const usage = process.cpuUsage();
      const cpuSeconds = (usage.user + usage.system) / 1e6;
      const uptime = process.uptime();
      return {
        pid,
        cpuSeconds: round3(cpuSeconds),
        cpuPercent: uptime > 0 ? round1((cpuSeconds / uptime) * 100) : null,
        rssBytes: process.memoryUsage.rss(),
      };
    }
    if (!proc) return null;
    const stat = this.stat(pid);
    if (stat === null) return null;
    const cpuSeconds = stat.cpuTicks / USER_HZ;
    const uptime = this.uptimeSeconds();
    const lifetime = uptime === null ? null : uptime - stat.startTicks / USER_HZ;
    return {
      pid,
      cpuSeconds: round3(cpuSeconds),
      cpuPercent: lifetime !== null && lifetime > 0 ? round1((cpuSeconds / lifetime) * 100) : null,
      rssBytes: this.rss(pid),
    };
  }

  /** One sample. `orchestratorPid` overrides the pid file (the orchestrator's own API knows it is process.pid). */
  sample(options: { orchestratorPid?: number | null; now?: Date } = {}): ResourceUsage {
    const now = options.now ?? new Date();
    const proc = this.procAvailable();
    const filePid = readPid(join(this.stateDir, 'orchestrator.pid'));
    const pid = options.orchestratorPid !== undefined ? options.orchestratorPid : filePid !== null && processIsAlive(filePid) ? filePid : null;
    const orchestrator = pid === null ? null : this.orchestrator(pid, proc);

    const runDir = join(this.stateDir, 'run');
    let pidFiles: string[] = [];
    try {
      pidFiles = readdirSync(runDir).filter((n) => n.endsWith('.pid')).sort();
    } catch {
      pidFiles = [];
    }
    const groups = proc && pidFiles.length > 0 ? this.processGroups() : new Map<number, ProcStat[]>();
    const agents: ResourceUsage['agents'] = [];
    for (const file of pidFiles) {
      const pgid = readPid(join(runDir, file));
      if (pgid === null) continue;
      const taskId = file.slice(0, -'.pid'.length);
      if (!proc) {
        agents.push({ taskId, pid: pgid, processes: processIsAlive(pgid) ? 1 : 0, cpuSeconds: null, rssBytes: null });
        continue;
      }
      const members = groups.get(pgid) ?? [];
      // A pid file outlives its agent for a moment (the engine removes it when it records the run): skip the dead.
      if (members.length === 0) continue;
      agents.push({
        taskId,
        pid: pgid,
        processes: members.length,
        cpuSeconds: round3(members.reduce((s, m) => s + m.cpuTicks, 0) / USER_HZ),
        rssBytes: members.reduce((s, m) => s + this.rss(m.pid), 0),
      });
    }
    const totalCpuSeconds = (orchestrator?.cpuSeconds ?? 0) + agents.reduce((s, a) => s + (a.cpuSeconds ?? 0), 0);
    const totalRssBytes = (orchestrator?.rssBytes ?? 0) + agents.reduce((s, a) => s + (a.rssBytes ?? 0), 0);
    return {
      sampledAt: now.toISOString(),
      available: proc || pid === process.pid,
      orchestrator,
      agents,
      totalCpuSeconds: round3(totalCpuSeconds),
      totalRssBytes,
    };
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
