import { copyFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FAST_SETTINGS, TestVault } from './harness.ts';

let vault: TestVault;
afterEach(() => vault?.cleanup());

const move = (v: TestVault, id: string, from: string, to: string): void =>
  renameSync(join(v.dir, from, `${id}.md`), join(v.dir, to, `${id}.md`));

/** Execution runs (not planning runs) the stand-in saw for a task. */
const executions = (v: TestVault, id: string) => v.calls().filter((c) => c.taskId === id && !c.planning);

describe('approval gate end to end', () => {
  it('plans first, waits in Pending_Approval/ with the plan and the reason, and executes only after `fte approve`', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('pay', { title: 'Pay invoice 12', type: 'payment' }, 'Transfer EUR 100 to ACME.');
    await vault.runOnce();
    expect(vault.folders()['Pending_Approval']).toEqual(['pay']);
    const note = vault.read('Pending_Approval', 'pay');
    expect(note).toContain('## Plan (fte, for your approval)');
    expect(note).toContain('tasks of type "payment" always need approval');
    expect(vault.calls().map((c) => c.planning)).toEqual([true]);

    const approve = await vault.cli(['approve', 'pay', '--json']);
    expect(approve.code).toBe(0);
    expect(JSON.parse(approve.stdout)).toMatchObject({ id: 'pay', state: 'approved' });
    expect(vault.folders()['Approved']).toEqual(['pay']);

    await vault.runOnce();
    expect(executions(vault, 'pay')).toHaveLength(1);
    expect(vault.folders()['Done']).toEqual(['pay']);
    const show = JSON.parse((await vault.cli(['task', 'show', 'pay', '--json'])).stdout);
    expect(show.task.approval.by).toMatch(/^cli:/);
    expect(show.history.map((e: { to: string }) => e.to)).toEqual(['planning', 'pending_approval', 'approved', 'executing', 'done']);
  });

  it('approves by moving the note to Approved/ and rejects by moving it to Rejected/', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('deploy-a', { title: 'Deploy service A', type: 'deploy' });
    vault.note('deploy-b', { title: 'Deploy service B', type: 'deploy' });
    await vault.runOnce();
    expect(vault.folders()['Pending_Approval']).toEqual(['deploy-a', 'deploy-b']);
    move(vault, 'deploy-a', 'Pending_Approval', 'Approved');
    move(vault, 'deploy-b', 'Pending_Approval', 'Rejected');
    await vault.runOnce();
    expect(vault.folders()['Done']).toEqual(['deploy-a']);
    expect(vault.folders()['Rejected']).toEqual(['deploy-b']);
    expect(executions(vault, 'deploy-a')).toHaveLength(1);
    expect(executions(vault, 'deploy-b')).toHaveLength(0);
    const service = vault.service();
    expect((await service.mustGet('deploy-a')).approval?.by).toBe('vault');
    expect((await service.mustGet('deploy-b')).state).toBe('rejected');
    await service.close();
  });

  it('rejects with `fte reject --reason` and never executes', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('wire', { title: 'Wire money to a new supplier' });
    await vault.runOnce();
    const reject = await vault.cli(['reject', 'wire', '--reason', 'unknown supplier', '--json']);
    expect(reject.code).toBe(0);
    await vault.runOnce();
    expect(vault.folders()['Rejected']).toEqual(['wire']);
    expect(vault.read('Rejected', 'wire')).toContain('unknown supplier');
    expect(executions(vault, 'wire')).toHaveLength(0);
  });

  it('expires an unanswered request after the approval timeout', async () => {
    vault = new TestVault(`${FAST_SETTINGS}\napproval:\n  timeout: 1\n`);
    vault.note('prod', { title: 'Restart production database' });
    await vault.runOnce();
    expect(vault.folders()['Pending_Approval']).toEqual(['prod']);
    await new Promise((r) => setTimeout(r, 1100));
    await vault.runOnce();
    expect(vault.folders()['Rejected']).toEqual(['prod']);
    const service = vault.service();
    expect((await service.mustGet('prod')).state).toBe('expired');
    await service.close();
    expect(executions(vault, 'prod')).toHaveLength(0);
    // An expired request can be asked again.
    expect((await vault.cli(['task', 'retry', 'prod'])).code).toBe(0);
    expect(vault.folders()['Needs_Action']).toEqual(['prod']);
  });

  it('no file trick or frontmatter claim gets risky work executed without approval', async () => {
    vault = new TestVault(FAST_SETTINGS);
    // Claims auto approval on a payment.
    vault.note('sneaky', { title: 'Pay the consultant', type: 'payment', approval: 'auto' });
    // Dropped straight into Approved/ without ever being asked about.
    vault.note('dropped', { title: 'Delete the customer table' }, '', 'Approved');
    await vault.runOnce();
    expect(vault.folders()['Pending_Approval']).toEqual(['sneaky']);
    expect(vault.folders()['Approved']).toEqual(['dropped']); // ignored: not a task fte asked about
    // Copy (not move) the pending note into Approved/: two folders is not a decision.
    copyFileSync(join(vault.dir, 'Pending_Approval', 'sneaky.md'), join(vault.dir, 'Approved', 'sneaky.md'));
    await vault.runOnce();
    expect(executions(vault, 'sneaky')).toHaveLength(0);
    expect(executions(vault, 'dropped')).toHaveLength(0);
    // `fte approve` on a task that is not waiting for approval is refused.
    const premature = await vault.cli(['approve', 'dropped', '--json']);
    expect(premature.code).not.toBe(0);
    expect(JSON.parse(premature.stderr).error.code).toBe('TASK_NOT_FOUND');
  });

  it('a note moved into Approved/ before its plan was approved goes back and is planned, not executed', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('delete-logs', { title: 'Delete last year logs' });
    const service = vault.service();
    await service.admit('delete-logs');
    await service.close();
    move(vault, 'delete-logs', 'Needs_Action', 'Approved');
    const events = await vault.runOnce();
    expect(events.some((e) => e.event === 'repaired' && e.taskId === 'delete-logs')).toBe(true);
    expect(vault.calls().filter((c) => c.taskId === 'delete-logs').map((c) => c.planning)).toEqual([true]);
    expect(vault.folders()['Pending_Approval']).toEqual(['delete-logs']);
  });
});
