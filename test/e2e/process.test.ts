import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processIsAlive } from '../../lib/local/process-group.ts';
import { FAST_SETTINGS, TestVault, waitFor } from './harness.ts';

let vault: TestVault;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  vault?.cleanup();
});

interface Line {
  event: string;
  taskId?: string;
}

/** Start the orchestrator as its own process and collect its JSON event lines. */
function start(v: TestVault): { child: ChildProcess; lines: Line[]; exited: Promise<number | null> } {
  const child = v.spawnOrchestrator();
  children.push(child);
  const lines: Line[] = [];
  let buffer = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffer += d.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as Line);
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, lines, exited };
}

// A zombie (exited, not yet reaped by whoever adopted it) runs nothing, so it counts as gone.
const alive = (pid: number): boolean => processIsAlive(pid);

describe('the orchestrator process', () => {
  it('picks up a dropped note by watching, long before the safety-net sweep', async () => {
    vault = new TestVault(FAST_SETTINGS.replace('poll_interval: 1', 'poll_interval: 60').replace('heartbeat_interval: 1', 'heartbeat_interval: 60'));
    const o = start(vault);
    await waitFor(() => o.lines.some((l) => l.event === 'start'), 15_000, 'start');
    await new Promise((r) => setTimeout(r, 300));
    vault.note('dropped', { title: 'Dropped in while running' });
    // The sweep would take 60 s; the watch must see it within a few.
    await waitFor(() => o.lines.some((l) => l.event === 'done' && l.taskId === 'dropped'), 5_000, 'the dropped note to run');
    o.child.kill('SIGTERM');
    expect(await o.exited).toBe(0);
  }, 30_000);

  it('stops dispatch on the stop file and resumes when it is removed', async () => {
    vault = new TestVault(FAST_SETTINGS);
    writeFileSync(join(vault.dir, '.claude_stop'), '');
    vault.note('held', { title: 'Held by the stop file' });
    const dry = JSON.parse((await vault.cli(['orchestrator', 'run', '--dry-run', '--json'])).stdout);
    expect(dry.stopped).toMatch(/stop file/);
    expect(dry.tasks[0]).toMatchObject({ id: 'held', startsNow: false, action: 'execute', source: 'new note' });
    // A dry run changes nothing: no store, no folders, the note where it was.
    expect(existsSync(join(vault.dir, '.fte', 'fte.db'))).toBe(false);
    expect(existsSync(join(vault.dir, 'Done'))).toBe(false);
    expect(vault.folders()['Needs_Action']).toEqual(['held']);
    const o = start(vault);
    await waitFor(() => o.lines.some((l) => l.event === 'admitted'), 15_000, 'admission');
    await new Promise((r) => setTimeout(r, 1500));
    expect(vault.calls()).toHaveLength(0);
    const status = JSON.parse((await vault.cli(['orchestrator', 'status', '--json'])).stdout);
    expect(status.stop).toMatchObject({ stopped: true, stopFile: true });
    expect(status.orchestrator.running).toBe(true);
    expect((await vault.cli(['orchestrator', 'resume'])).code).toBe(0);
    expect(existsSync(join(vault.dir, '.claude_stop'))).toBe(false);
    await waitFor(() => o.lines.some((l) => l.event === 'done'), 10_000, 'the task to run after resume');
    o.child.kill('SIGTERM');
    await o.exited;
  }, 40_000);

  it('stop --now stops running agents and puts their tasks back in the queue', async () => {
    vault = new TestVault(FAST_SETTINGS.replace('max_concurrent_tasks: 1', 'max_concurrent_tasks: 2'));
    vault.note('long-a', { title: 'Long A' }, 'stand-in: slow 20000');
    vault.note('long-b', { title: 'Long B' }, 'stand-in: slow 20000');
    const o = start(vault);
    await waitFor(() => vault.calls().length === 2 || o.lines.filter((l) => l.event === 'dispatch').length === 2, 15_000, 'two runs');
    const stop = await vault.cli(['orchestrator', 'stop', '--now', '--json']);
    expect(JSON.parse(stop.stdout)).toMatchObject({ stopped: true, now: true });
    await waitFor(() => o.lines.filter((l) => l.event === 'interrupted').length === 2, 15_000, 'both interrupted');
    expect(vault.folders()['Needs_Action']).toEqual(['long-a', 'long-b']);
    const status = JSON.parse((await vault.cli(['orchestrator', 'status', '--json'])).stdout);
    expect(status.running).toEqual([]);
    expect(status.counts.needs_action).toBe(2);
    o.child.kill('SIGTERM');
    expect(await o.exited).toBe(0);
  }, 40_000);

  it('survives kill -9 mid-run: the restarted orchestrator adopts the orphaned agents and loses or duplicates nothing', async () => {
    vault = new TestVault(FAST_SETTINGS.replace('max_concurrent_tasks: 1', 'max_concurrent_tasks: 3'));
    for (let i = 0; i < 6; i++) vault.note(`job-${i}`, { title: `Job ${i}` }, i < 3 ? 'stand-in: slow 5000' : 'stand-in: slow 100');
    const first = start(vault);
    await waitFor(() => first.lines.filter((l) => l.event === 'dispatch').length >= 3, 15_000, 'three dispatches');
    const runDir = join(vault.dir, '.fte', 'run');
    const pidFiles = (): string[] => (existsSync(runDir) ? readdirSync(runDir).filter((n) => n.endsWith('.pid')) : []);
    const pidOf = (name: string): number => Number(readFileSync(join(runDir, name), 'utf8').trim());
    await waitFor(() => pidFiles().length === 3 && pidFiles().every((n) => pidOf(n) > 1), 10_000, 'three agent pid files');
    first.child.kill('SIGKILL');
    await first.exited;
    const inFlight = pidFiles().map((n) => n.replace(/\.pid$/, ''));
    const orphans = pidFiles().map(pidOf);
    // The agents survive their orchestrator (they lead their own process groups and write to files, not to its pipes).
    expect(orphans.every(alive)).toBe(true);

    const second = start(vault);
    await waitFor(() => second.lines.filter((l) => l.event === 'adopt').length === 3, 10_000, 'recovery');
    // Adopted, not stopped: each orphan runs on to its own end and its task is done without a second run.
    await waitFor(() => inFlight.every((id) => second.lines.some((l) => l.event === 'done' && l.taskId === id)), 20_000, 'the adopted runs to finish');
    await waitFor(() => second.lines.filter((l) => l.event === 'done').length === 6, 20_000, 'all six done');
    for (const pid of orphans) expect(alive(pid)).toBe(false);
    expect(second.lines.filter((l) => l.event === 'interrupted')).toEqual([]);
    for (const id of inFlight) expect(vault.calls().filter((c) => c.taskId === id).map((c) => c.exitCode)).toEqual([0]);
    second.child.kill('SIGTERM');
    await second.exited;

    const service = vault.service();
    const tasks = await service.store.list();
    await service.close();
    expect(tasks).toHaveLength(6);
    for (const id of inFlight) expect(tasks.find((x) => x.id === id)).toMatchObject({ state: 'done', attempts: 1 });
    // Every note is in exactly one folder and the folder agrees with the store.
    const f = vault.folders();
    const all = Object.values(f).flat().sort();
    expect(all).toEqual(tasks.map((t) => t.id).sort());
    expect(new Set(all).size).toBe(6);
    // Nothing ran twice at the same time: per task, runs never overlap.
    const calls = vault.calls();
    for (const id of new Set(calls.map((c) => c.taskId))) {
      const runs = calls.filter((c) => c.taskId === id).sort((a, b) => a.startMs - b.startMs);
      for (let i = 1; i < runs.length; i++) {
        const prev = runs[i - 1];
        const cur = runs[i];
        if (prev?.endMs !== undefined && cur) expect(cur.startMs).toBeGreaterThanOrEqual(prev.endMs);
      }
    }
  }, 60_000);

  it('refuses to start a second orchestrator on the same vault', async () => {
    vault = new TestVault(FAST_SETTINGS);
    const o = start(vault);
    await waitFor(() => o.lines.some((l) => l.event === 'start'), 15_000, 'start');
    await waitFor(() => existsSync(join(vault.dir, '.fte', 'orchestrator.pid')), 5_000, 'lock');
    const second = await vault.cli(['orchestrator', 'run', '--json']);
    expect(second.code).toBe(1);
    expect(JSON.parse(second.stderr).error.code).toBe('ORCHESTRATOR_RUNNING');
    o.child.kill('SIGINT');
    expect(await o.exited).toBe(0);
  }, 30_000);
});
