import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FAST_SETTINGS, TestVault, waitFor } from './harness.ts';

let vault: TestVault;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  vault?.cleanup();
});

const settings = (extra: string, iterations = 5): string =>
  `${FAST_SETTINGS.replace('orchestrator:\n', `orchestrator:\n  max_iterations: ${iterations}\n`)}${extra}`;

async function show(v: TestVault, id: string) {
  const out = await v.cli(['task', 'show', id, '--json']);
  expect(out.code).toBe(0);
  return JSON.parse(out.stdout) as {
    task: { state: string; costUsd: number; lastError: { class: string } | null; attempts: number };
    iterations: Array<{ attempt: number; iteration: number; promiseSeen: boolean; costUsd: number; numTurns: number }>;
  };
}

describe('the per-task persistence loop', () => {
  it('resumes the session until the completion promise: promise on iteration 3 → done after exactly 3 runs', async () => {
    vault = new TestVault(settings(''));
    vault.note('essay', { title: 'Write the essay' }, 'stand-in: promise-on 3');
    await vault.runOnce();
    const calls = vault.calls();
    expect(calls).toHaveLength(3);
    // Runs 2 and 3 resume the session of run 1.
    const first = calls[0] as { sessionId?: string };
    for (const c of calls.slice(1) as Array<{ argv?: string[] }>) {
      const argv = c.argv ?? [];
      expect(argv[argv.indexOf('--resume') + 1]).toBe(first.sessionId);
    }
    const report = await show(vault, 'essay');
    expect(report.task.state).toBe('done');
    expect(report.iterations.map((i) => [i.iteration, i.promiseSeen])).toEqual([
      [1, false],
      [2, false],
      [3, true],
    ]);
    expect(report.task.costUsd).toBeCloseTo(3 * 0.0123, 6);
  });

  it('fails the attempt with iterations_exhausted when the promise never comes', async () => {
    vault = new TestVault(settings('', 3).replace('max_attempts: 3', 'max_attempts: 1'));
    vault.note('endless', { title: 'Never finishes' }, 'stand-in: promise-on 999');
    await vault.runOnce();
    expect(vault.calls()).toHaveLength(3);
    const report = await show(vault, 'endless');
    expect(report.task.state).toBe('failed');
    expect(report.task.lastError?.class).toBe('iterations_exhausted');
    expect(vault.folders()['Failed']).toEqual(['endless']);
  });

  it('ends the task as budget_exceeded when its budget is crossed mid-loop, with no further run', async () => {
    vault = new TestVault(settings('\nbudget:\n  per_task_usd: 1.2\n', 10));
    vault.note('pricey', { title: 'Expensive work' }, 'stand-in: promise-on 10\nstand-in: cost 0.5');
    await vault.runOnce();
    const calls = vault.calls() as Array<{ argv?: string[] }>;
    expect(calls).toHaveLength(3); // 0.5, 1.0, then 1.5 ≥ 1.2: stop
    // Each run may spend only what is left of the task's budget.
    const budgets = calls.map((c) => Number((c.argv ?? [])[(c.argv ?? []).indexOf('--max-budget-usd') + 1]));
    expect(budgets[0]).toBeCloseTo(1.2, 6);
    expect(budgets[1]).toBeCloseTo(0.7, 6);
    expect(budgets[2]).toBeCloseTo(0.2, 6);
    const report = await show(vault, 'pricey');
    expect(report.task.state).toBe('failed');
    expect(report.task.lastError?.class).toBe('budget_exceeded');
    expect(report.task.attempts).toBe(1); // not retried
    expect(report.task.costUsd).toBeCloseTo(1.5, 6);
  });

  it('stops dispatch when the daily budget is spent, and resumes when it is raised or the window moves on', async () => {
    vault = new TestVault(settings('\nbudget:\n  daily_usd: 0.05\n'));
    for (const id of ['a', 'b', 'c']) vault.note(id, { title: `Task ${id}` }, 'stand-in: cost 0.03');
    const events = await vault.runOnce();
    expect(vault.calls()).toHaveLength(2); // 0.03, 0.06 ≥ 0.05: no third start
    expect(events.some((e) => e.event === 'budget_exhausted')).toBe(true);
    const status = JSON.parse((await vault.cli(['orchestrator', 'status', '--json'])).stdout);
    expect(status.budget.exhausted).toMatch(/daily budget exhausted/);
    const dry = JSON.parse((await vault.cli(['orchestrator', 'run', '--dry-run', '--json'])).stdout);
    expect(dry.stopped).toMatch(/daily budget/);
    const health = await vault.cli(['orchestrator', 'health', '--json']);
    expect(health.code).toBe(1); // degraded
    const budgetCheck = JSON.parse(health.stdout).checks.find((c: { name: string }) => c.name === 'budget');
    expect(budgetCheck).toMatchObject({ status: 'degraded', threshold: 0.05 });
    expect(budgetCheck.message).toMatch(/daily budget exhausted/);
    // What waits is estimated from what tasks of its type recently cost.
    const queue = JSON.parse((await vault.cli(['orchestrator', 'queue', '--json'])).stdout);
    expect(queue.tasks.map((t: { id: string }) => t.id)).toEqual(['c']);
    expect(queue.tasks[0].estimatedCostUsd).toBeCloseTo(0.03, 6);
    expect(queue.estimatedCostUsd).toBeCloseTo(0.03, 6);

    // The window moves on: a day later the spend has left it.
    const later = new Date(Date.now() + 25 * 3_600_000);
    await vault.runOnce({ clock: () => later });
    expect(vault.calls()).toHaveLength(3);

    // Raising the budget frees it at once.
    vault.note('d', { title: 'Task d' }, 'stand-in: cost 0.03');
    vault.note('e', { title: 'Task e' }, 'stand-in: cost 0.03');
    await vault.runOnce({ clock: () => later });
    expect(vault.calls()).toHaveLength(4); // 0.03 + 0.03 of d → exhausted again before e
    const yaml = join(vault.dir, '.fte', 'orchestrator.yaml');
    writeFileSync(yaml, readFileSync(yaml, 'utf8').replace('daily_usd: 0.05', 'daily_usd: 5'));
    await vault.runOnce({ clock: () => later });
    expect(vault.calls()).toHaveLength(5);
    expect(vault.folders()['Done']).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('after kill -9 between iterations, resumes at the next iteration, not the first', async () => {
    vault = new TestVault(settings(''));
    vault.note('long', { title: 'Long loop' }, 'stand-in: promise-on 3\nstand-in: delay 1500');
    const first = vault.spawnOrchestrator();
    children.push(first);
    const checkpoint = join(vault.dir, '.fte', 'iterations', 'long.checkpoint.json');
    await waitFor(() => existsSync(checkpoint), 20_000, 'the first checkpoint');
    first.kill('SIGKILL');
    await new Promise((r) => first.on('close', r));
    const saved = JSON.parse(readFileSync(checkpoint, 'utf8')) as { iteration: number; sessionId: string };
    expect(saved.iteration).toBe(1);

    await vault.runOnce();
    const report = await show(vault, 'long');
    expect(report.task.state).toBe('done');
    const numbers = report.iterations.map((i) => i.iteration);
    expect(numbers[0]).toBe(1);
    // The restarted attempt did not start over at iteration 1.
    expect(numbers.slice(1).every((n) => n >= 2)).toBe(true);
    expect(report.iterations.filter((i) => i.iteration === 1)).toHaveLength(1);
    // And it went on in the same Claude session.
    const calls = vault.calls() as Array<{ argv?: string[]; taskId: string }>;
    const resumed = calls.slice(1).map((c) => (c.argv ?? [])[(c.argv ?? []).indexOf('--resume') + 1]);
    expect(resumed.every((id) => id === saved.sessionId)).toBe(true);
  }, 60_000);
});
