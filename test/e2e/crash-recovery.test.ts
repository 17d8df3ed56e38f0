import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processIsAlive } from '../../lib/local/process-group.ts';
import { fte, OrchestratorProcess, readStore, waitUntil, type EventLine } from '../hardening/support.ts';
import { FAST_SETTINGS, TestVault } from './harness.ts';

/**
 * Issue 7, open item 1: an agent run is not repeated because its orchestrator was killed. Each case kills a real
 * `fte orchestrator run` with SIGKILL while its agent (the stand-in) is mid-run, then starts fte again, and counts the
 * stand-in's own invocations ($FTE_STAND_IN_LOG).
 */

let vault: TestVault;
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  vault?.cleanup();
});

const runDir = (v: TestVault): string => join(v.dir, '.fte', 'run');

/** The agent's process group, once the orchestrator has recorded it in the task's pid file. */
function spooledPid(v: TestVault, id: string): number | null {
  const path = join(runDir(v), `${id}.pid`);
  if (!existsSync(path)) return null;
  const pid = Number(readFileSync(path, 'utf8').trim());
  return Number.isInteger(pid) && pid > 1 ? pid : null;
}

/** Start the orchestrator, wait for the agent of `id` to run, kill -9 the orchestrator; the agent's pid. */
async function killMidRun(v: TestVault, id: string): Promise<{ pid: number; events: EventLine[] }> {
  const o = new OrchestratorProcess(v.dir, v.env);
  cleanups.push(() => void o.kill9());
  await waitUntil(() => spooledPid(v, id) !== null, 15_000, `the agent of ${id} to start`);
  await o.kill9();
  const pid = spooledPid(v, id) as number;
  expect(processIsAlive(pid)).toBe(true);
  cleanups.push(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  return { pid, events: o.lines };
}

async function runOnce(v: TestVault): Promise<EventLine[]> {
  const r = await fte(v.dir, v.env, ['orchestrator', 'run', '--once', '--no-api', '--json'], { timeoutMs: 60_000 });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as EventLine);
}

const executions = (v: TestVault, id: string) => v.calls().filter((c) => c.taskId === id && !c.planning);
const events = (lines: EventLine[], id: string) => lines.filter((l) => l.taskId === id).map((l) => l.event);

describe('kill -9 of the orchestrator while an agent runs', () => {
  it('an agent that finishes while fte is down is recorded from its output, not run again', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('report', { title: 'Write the report' }, 'stand-in: slow 1500\nstand-in: cost 0.25');
    const { pid } = await killMidRun(vault, 'report');
    // The agent finishes with nobody to report to.
    await waitUntil(() => !processIsAlive(pid), 10_000, 'the orphaned agent to finish');
    expect(executions(vault, 'report').map((c) => c.exitCode)).toEqual([0]);

    const lines = await runOnce(vault);
    expect(events(lines, 'report')).toEqual(['adopt', 'done']);
    expect(executions(vault, 'report')).toHaveLength(1);
    expect(vault.folders()['Done']).toEqual(['report']);
    const note = vault.read('Done', 'report');
    expect(note).toContain('## Outcome (fte)');
    expect(note).toContain('Completed "Write the report"');
    const dump = await readStore(vault.dir);
    expect(dump.tasks[0]).toMatchObject({ state: 'done', attempts: 1 });
    expect(dump.tasks[0]?.costUsd).toBeCloseTo(0.25, 6);
    expect(dump.runs.get('report')?.map((r) => [r.attempt, r.ok, r.costUsd])).toEqual([[1, true, 0.25]]);
    expect(dump.history.filter((e) => e.event === 'interrupt')).toEqual([]);
    expect(readdirSync(runDir(vault))).toEqual([]);
  }, 60_000);

  it('an agent still running at restart is waited for and adopted, not stopped and repeated', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('long', { title: 'A long job' }, 'stand-in: slow 4000');
    const { pid } = await killMidRun(vault, 'long');
    const lines = await runOnce(vault);
    expect(events(lines, 'long')).toEqual(['adopt', 'done']);
    expect(processIsAlive(pid)).toBe(false);
    // The one invocation ran to its own end (exit 0), under the restarted orchestrator's watch.
    expect(executions(vault, 'long').map((c) => [c.pid, c.exitCode])).toEqual([[pid, 0]]);
    expect(vault.folders()['Done']).toEqual(['long']);
    expect(readdirSync(runDir(vault))).toEqual([]);
  }, 60_000);

  it('a failure that happens while fte is down is recorded as that failure (retry policy applies), not as an interruption', async () => {
    // One attempt only for this type: a recorded failure dead-letters it; a requeue would run the agent again.
    vault = new TestVault(`${FAST_SETTINGS}  per_type:\n    once:\n      max_attempts: 1\n`);
    vault.note('flaky', { title: 'Fails', type: 'once' }, 'stand-in: fail\nstand-in: delay 1500');
    await killMidRun(vault, 'flaky');
    const lines = await runOnce(vault);
    expect(events(lines, 'flaky')).toEqual(['adopt', 'failed']);
    expect(executions(vault, 'flaky').map((c) => c.exitCode)).toEqual([1]);
    const dump = await readStore(vault.dir);
    expect(dump.tasks[0]).toMatchObject({ state: 'failed', attempts: 1 });
    expect(dump.tasks[0]?.lastError?.class).toBe('agent_error');
    expect(vault.folders()['Failed']).toEqual(['flaky']);
    expect(vault.read('Failed', 'flaky')).toContain('agent_error');
  }, 60_000);

  it('the execution loop goes on from an iteration that ended while fte was down, without repeating it', async () => {
    vault = new TestVault(FAST_SETTINGS.replace('orchestrator:\n', 'orchestrator:\n  max_iterations: 5\n'));
    vault.note('essay', { title: 'Write the essay' }, 'stand-in: promise-on 2\nstand-in: delay 1200');
    const { pid } = await killMidRun(vault, 'essay');
    await waitUntil(() => !processIsAlive(pid), 10_000, 'iteration 1 to end');
    const lines = await runOnce(vault);
    expect(events(lines, 'essay')).toEqual(['adopt', 'done']);
    // Iteration 1 ran once (while fte was down), iteration 2 resumed its session under the restarted orchestrator.
    const calls = executions(vault, 'essay');
    expect(calls).toHaveLength(2);
    const out = await vault.cli(['task', 'show', 'essay', '--json']);
    const report = JSON.parse(out.stdout) as { task: { state: string; costUsd: number }; iterations: Array<{ iteration: number; promiseSeen: boolean }> };
    expect(report.task.state).toBe('done');
    expect(report.iterations.map((i) => [i.iteration, i.promiseSeen])).toEqual([
      [1, false],
      [2, true],
    ]);
    expect(report.task.costUsd).toBeCloseTo(2 * 0.0123, 6);
  }, 60_000);

  it('a run that ended leaving nothing to judge it by is requeued, and the event log says so', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('lost', { title: 'Killed with its orchestrator' }, 'stand-in: slow 3000');
    const { pid } = await killMidRun(vault, 'lost');
    // Both die (as with a whole container or cgroup killed): no result, no recorded exit.
    process.kill(-pid, 'SIGKILL');
    await waitUntil(() => !processIsAlive(pid), 5000, 'the agent to die');
    const lines = await runOnce(vault);
    expect(events(lines, 'lost')).toEqual(['adopt', 'recover', 'interrupted', 'dispatch', 'done']);
    expect(lines.find((l) => l.event === 'recover' && l.taskId === 'lost')?.message).toContain('unknown');
    expect(executions(vault, 'lost').map((c) => c.exitCode)).toEqual([0]);
    expect((await readStore(vault.dir)).tasks[0]).toMatchObject({ state: 'done', attempts: 2 });
  }, 60_000);

  it('a task cancelled while fte is down has its agent stopped at the next start', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('withdrawn', { title: 'Not needed any more' }, 'stand-in: slow 15000');
    const { pid } = await killMidRun(vault, 'withdrawn');
    const cancel = await vault.cli(['task', 'cancel', 'withdrawn', '--reason', 'changed my mind']);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(processIsAlive(pid)).toBe(true);
    const started = Date.now();
    const lines = await runOnce(vault);
    expect(processIsAlive(pid)).toBe(false);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(lines.find((l) => l.event === 'recover' && l.taskId === 'withdrawn')?.message).toContain('cancelled');
    // Stopped, not finished: the stand-in logs only at its end, and it never got there.
    expect(executions(vault, 'withdrawn')).toEqual([]);
    expect((await readStore(vault.dir)).tasks[0]?.state).toBe('cancelled');
    expect(readdirSync(runDir(vault))).toEqual([]);
  }, 60_000);

  it('a spooled run whose process group now belongs to someone else is not signalled (pid reuse)', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('old', { title: 'Done long ago' }, 'stand-in: succeed');
    await runOnce(vault);
    // A bystander in its own group, named by a well-formed record of a run of `old` whose marker it does not carry.
    const bystander = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    cleanups.push(() => bystander.kill('SIGKILL'));
    const pid = bystander.pid as number;
    const record = {
      marker: 'f'.repeat(32),
      attempt: 1,
      kind: 'execute',
      iteration: 1,
      spawnedAt: new Date().toISOString(),
      timeoutMs: 20_000,
      logPath: null,
    };
    writeFileSync(join(runDir(vault), 'old.run'), `${JSON.stringify(record)}\n`);
    writeFileSync(join(runDir(vault), 'old.pid'), `${pid}\n`);
    await runOnce(vault);
    expect(processIsAlive(pid)).toBe(true);
    expect(readdirSync(runDir(vault))).toEqual([]);
  }, 60_000);
});
