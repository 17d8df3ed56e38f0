import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resourcesSchema } from '../../lib/app/contracts.ts';
import { ResourceSampler, parseProcStat, parseVmRssBytes } from '../../lib/local/resources.ts';
import { tempDir, removeTempDirs } from './fixtures.ts';

/** metrics.resources: CPU and memory of the orchestrator and of its agents' process groups. */

function statLine(pid: number, comm: string, state: string, pgrp: number, utime: number, stime: number, start: number): string {
  // Fields 3.. after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  // cutime cstime priority nice threads itrealvalue starttime …
  const rest = [state, 1, pgrp, pgrp, 0, -1, 0, 0, 0, 0, 0, utime, stime, 0, 0, 20, 0, 1, 0, start, 0, 0];
  return `${pid} (${comm}) ${rest.join(' ')}\n`;
}

function fakeProc(processes: Array<{ pid: number; comm: string; state?: string; pgrp: number; ticks: number; start: number; rssKb: number }>, uptime: number): string {
  const root = tempDir('fte-proc-');
  writeFileSync(join(root, 'uptime'), `${uptime} 0.00\n`);
  mkdirSync(join(root, 'self'));
  writeFileSync(join(root, 'self', 'stat'), statLine(1, 'self', 'S', 1, 0, 0, 0));
  for (const p of processes) {
    mkdirSync(join(root, String(p.pid)));
    writeFileSync(join(root, String(p.pid), 'stat'), statLine(p.pid, p.comm, p.state ?? 'S', p.pgrp, p.ticks, 0, p.start));
    writeFileSync(join(root, String(p.pid), 'status'), `Name:\t${p.comm}\nVmRSS:\t ${p.rssKb} kB\n`);
  }
  return root;
}

describe('reading /proc', () => {
  it('parses a stat line whose command name holds spaces and parentheses', () => {
    expect(parseProcStat(statLine(4242, 'evil) (name', 'R', 4240, 150, 50, 9000))).toEqual({ pid: 4242, state: 'R', pgrp: 4240, cpuTicks: 200, startTicks: 9000 });
    expect(parseProcStat('garbage')).toBeNull();
    expect(parseVmRssBytes('Name:\tx\nVmRSS:\t  2048 kB\n')).toBe(2048 * 1024);
    expect(parseVmRssBytes('Name:\tzombie\n')).toBe(0);
  });

  it('sums each agent’s process group and reads the orchestrator from its pid file', () => {
    const orchestrator = process.ppid; // alive, and not this process
    const proc = fakeProc(
      [
        { pid: orchestrator, comm: 'node', pgrp: orchestrator, ticks: 500, start: 1000, rssKb: 100_000 },
        { pid: 7001, comm: 'claude', pgrp: 7001, ticks: 300, start: 5000, rssKb: 50_000 },
        { pid: 7002, comm: 'bash -c (tool)', pgrp: 7001, ticks: 100, start: 5100, rssKb: 10_000 },
        { pid: 7003, comm: 'defunct', state: 'Z', pgrp: 7001, ticks: 0, start: 5100, rssKb: 0 },
        { pid: 8001, comm: 'other', pgrp: 8001, ticks: 999, start: 100, rssKb: 999 },
      ],
      2000,
    );
    const stateDir = tempDir();
    writeFileSync(join(stateDir, 'orchestrator.pid'), `${orchestrator}\nhost/1/abc\n`);
    mkdirSync(join(stateDir, 'run'));
    writeFileSync(join(stateDir, 'run', 'task-a.pid'), '7001\n');
    writeFileSync(join(stateDir, 'run', 'task-gone.pid'), '7999\n');
    const sample = resourcesSchema.parse(new ResourceSampler(stateDir, { procRoot: proc }).sample({ now: new Date('2026-01-01T00:00:00Z') }));
    // 500 ticks = 5 s over a life of 2000 − 1000/100 = 1990 s.
    expect(sample.orchestrator).toEqual({ pid: orchestrator, cpuSeconds: 5, cpuPercent: 0.3, rssBytes: 100_000 * 1024 });
    // The zombie is not counted; the dead agent's leftover pid file is skipped.
    expect(sample.agents).toEqual([{ taskId: 'task-a', pid: 7001, processes: 2, cpuSeconds: 4, rssBytes: 60_000 * 1024 }]);
    expect(sample.totalCpuSeconds).toBe(9);
    expect(sample.totalRssBytes).toBe(160_000 * 1024);
    expect(sample.available).toBe(true);
    expect(sample.sampledAt).toBe('2026-01-01T00:00:00.000Z');
  });

  it('reports nothing as running when there is no orchestrator and no agent', () => {
    const sample = new ResourceSampler(tempDir()).sample();
    expect(sample.orchestrator).toBeNull();
    expect(sample.agents).toEqual([]);
    expect(sample.totalRssBytes).toBe(0);
  });

  it('measures a real agent process group on this machine', async () => {
    const stateDir = tempDir();
    mkdirSync(join(stateDir, 'run'));
    // An agent leads its own group (detached), with a child of its own, as the engine starts them.
    const agent = spawn('sh', ['-c', 'sleep 30 & sleep 30; wait'], { detached: true, stdio: 'ignore' });
    try {
      const pid = agent.pid as number;
      writeFileSync(join(stateDir, 'run', 'real-task.pid'), `${pid}\n`);
      let sample = new ResourceSampler(stateDir).sample({ orchestratorPid: process.pid });
      for (let i = 0; i < 50 && (sample.agents[0]?.processes ?? 0) < 3; i++) {
        await new Promise((r) => setTimeout(r, 20));
        sample = new ResourceSampler(stateDir).sample({ orchestratorPid: process.pid });
      }
      expect(sample.orchestrator?.pid).toBe(process.pid);
      expect(sample.agents).toHaveLength(1);
      expect(sample.agents[0]).toMatchObject({ taskId: 'real-task', pid, processes: 3 });
      expect(sample.agents[0]?.rssBytes).toBeGreaterThan(0);
    } finally {
      process.kill(-(agent.pid as number), 'SIGKILL');
    }
  });
});

afterAll(removeTempDirs);
