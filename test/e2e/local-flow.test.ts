import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FAST_SETTINGS, TestVault } from './harness.ts';

let vault: TestVault;
afterEach(() => vault?.cleanup());

describe('the local loop end to end (stand-in agent)', () => {
  it('runs tasks in priority order under max_concurrent_tasks: 1', async () => {
    vault = new TestVault(`${FAST_SETTINGS}\nvip_senders: [ceo@company.com]\n`);
    vault.note('low', { title: 'Tidy the wiki', urgency: 'whenever' });
    vault.note('vip', { title: 'Board numbers', urgency: 'critical', from: 'ceo@company.com' });
    vault.note('mid', { title: 'Reply to a client', urgency: 'normal' });
    vault.note('high', { title: 'Fix the build', urgency: 'high' });
    await vault.runOnce();
    expect(vault.calls().map((c) => c.taskId)).toEqual(['vip', 'high', 'mid', 'low']);
    expect(vault.folders()['Done']).toEqual(['high', 'low', 'mid', 'vip']);
    expect(vault.read('Done', 'vip')).toContain('## Outcome (fte)');
  });

  it('never exceeds the concurrency cap: 100 tasks, 10 at once', async () => {
    vault = new TestVault(FAST_SETTINGS.replace('max_concurrent_tasks: 1', 'max_concurrent_tasks: 10'));
    for (let i = 0; i < 100; i++) vault.note(`t${String(i).padStart(3, '0')}`, { title: `Task ${i}` }, 'stand-in: slow 150');
    await vault.runOnce();
    const calls = vault.calls();
    expect(calls).toHaveLength(100);
    expect(new Set(calls.map((c) => c.taskId)).size).toBe(100);
    const edges = calls.flatMap((c) => [
      { at: c.startMs, d: 1 },
      { at: c.endMs as number, d: -1 },
    ]);
    edges.sort((a, b) => a.at - b.at || a.d - b.d);
    let now = 0;
    let peak = 0;
    for (const e of edges) {
      now += e.d;
      peak = Math.max(peak, now);
    }
    expect(peak).toBeLessThanOrEqual(10);
    expect(peak).toBeGreaterThanOrEqual(5); // the cap was actually used, not just respected by running serially
    expect(vault.folders()['Done']).toHaveLength(100);
  }, 60_000);

  it('quarantines malformed notes with a reason while the rest proceed', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('good', { title: 'A fine task' });
    writeFileSync(join(vault.dir, 'Needs_Action', 'bad-yaml.md'), '---\ntitle: "unterminated\n---\nbody\n');
    writeFileSync(join(vault.dir, 'Needs_Action', 'binary.md'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1]));
    writeFileSync(join(vault.dir, 'Needs_Action', 'bad-date.md'), '---\ntitle: x\ndeadline: someday\n---\nbody\n');
    const events = await vault.runOnce();
    const f = vault.folders();
    expect(f['Done']).toEqual(['good']);
    expect(f['Failed']).toEqual(['bad-date', 'bad-yaml', 'binary']);
    expect(f['Needs_Action']).toEqual([]);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(join(vault.dir, 'Failed', 'bad-yaml.error.md'), 'utf8')).toMatch(/reason: bad_yaml/);
    expect(readFileSync(join(vault.dir, 'Failed', 'binary.error.md'), 'utf8')).toMatch(/reason: binary/);
    expect(readFileSync(join(vault.dir, 'Failed', 'bad-date.error.md'), 'utf8')).toMatch(/deadline/);
    expect(events.filter((e) => e.event === 'quarantined')).toHaveLength(3);
  });

  it('retries with backoff and then succeeds', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('flaky', { title: 'Flaky' }, 'stand-in: fail-once');
    const events = await vault.runOnce();
    expect(vault.calls().map((c) => c.exitCode)).toEqual([1, 0]);
    expect(events.map((e) => e.event)).toContain('retry_scheduled');
    expect(vault.folders()['Done']).toEqual(['flaky']);
    const service = vault.service();
    const task = await service.mustGet('flaky');
    const runs = await service.store.runs('flaky');
    await service.close();
    expect(task.attempts).toBe(2);
    expect(runs.map((r) => [r.attempt, r.ok, r.errorClass])).toEqual([
      [1, false, 'agent_error'],
      [2, true, null],
    ]);
  });

  it('dead-letters to Failed/ after the last attempt', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('doomed', { title: 'Never works' }, 'stand-in: fail');
    await vault.runOnce();
    expect(vault.calls()).toHaveLength(3); // retry.max_attempts
    expect(vault.folders()['Failed']).toEqual(['doomed']);
    expect(vault.read('Failed', 'doomed')).toMatch(/Failed at .* after 3 attempt/);
  });

  it('counts exit 0 with is_error: true as a failure', async () => {
    vault = new TestVault(FAST_SETTINGS.replace('max_attempts: 3', 'max_attempts: 1'));
    vault.note('liar', { title: 'Exit zero, error result' }, 'stand-in: error-exit-0');
    await vault.runOnce();
    expect(vault.calls().map((c) => c.exitCode)).toEqual([0]);
    expect(vault.folders()['Failed']).toEqual(['liar']);
    expect(vault.folders()['Done']).toEqual([]);
  });

  it('does not retry a non-retryable failure (over budget)', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('spendy', { title: 'Too expensive' }, 'stand-in: over-budget');
    await vault.runOnce();
    expect(vault.calls()).toHaveLength(1);
    expect(vault.folders()['Failed']).toEqual(['spendy']);
  });

  it('kills the whole process tree of an agent that runs past claude_timeout', async () => {
    vault = new TestVault(FAST_SETTINGS.replace('claude_timeout: 20', 'claude_timeout: 1').replace('max_attempts: 3', 'max_attempts: 1'));
    vault.note('stuck', { title: 'Hangs' }, 'stand-in: hang');
    const started = Date.now();
    await vault.runOnce();
    expect(Date.now() - started).toBeLessThan(10_000);
    const [call] = vault.calls();
    expect(call?.taskId).toBe('stuck');
    let alive = true;
    try {
      process.kill(call?.pid as number, 0);
    } catch {
      alive = false;
    }
    expect(alive).toBe(false);
    expect(vault.folders()['Failed']).toEqual(['stuck']);
    expect(vault.read('Failed', 'stuck')).toMatch(/timeout/);
  }, 30_000);

  it('a new note reusing the name of a finished task is a new task under a free name', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('report', { title: 'Weekly report' });
    await vault.runOnce();
    vault.note('report', { title: 'Weekly report, next week' });
    await vault.runOnce();
    expect(vault.folders()['Done']).toEqual(['report', 'report-2']);
    expect(vault.read('Done', 'report-2')).toContain('next week');
  });

  it('a dead task moved back to Needs_Action/ is retried from scratch', async () => {
    vault = new TestVault(FAST_SETTINGS.replace('max_attempts: 3', 'max_attempts: 1'));
    vault.note('again', { title: 'Try again' }, 'stand-in: fail-once');
    await vault.runOnce();
    expect(vault.folders()['Failed']).toEqual(['again']);
    renameSync(join(vault.dir, 'Failed', 'again.md'), join(vault.dir, 'Needs_Action', 'again.md'));
    await vault.runOnce();
    expect(vault.folders()['Done']).toEqual(['again']);
    expect(vault.folders()['Failed']).toEqual([]);
  });
});
