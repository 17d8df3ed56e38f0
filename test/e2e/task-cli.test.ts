import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processIsAlive } from '../../lib/local/process-group.ts';
import { FAST_SETTINGS, TestVault, waitFor } from './harness.ts';

let vault: TestVault;
afterEach(() => vault?.cleanup());

describe('fte task commands', () => {
  it('adds a task as a note, lists it, shows it, and the loop runs it', async () => {
    vault = new TestVault(FAST_SETTINGS);
    const add = await vault.cli(['task', 'add', 'Summarise the Q3 report', '--urgency', 'high', '--type', 'research', '--from', 'Boss@Company.com', '--deadline', '2030-01-31', '--json']);
    expect(add.code).toBe(0);
    const added = JSON.parse(add.stdout);
    expect(added.id).toBe('summarise-the-q3-report');
    expect(added.task).toMatchObject({ state: 'needs_action', urgency: 4, type: 'research', sender: 'boss@company.com', approvalRequired: false });
    expect(vault.folders()['Needs_Action']).toEqual(['summarise-the-q3-report']);
    expect(vault.read('Needs_Action', 'summarise-the-q3-report')).toMatch(/^---\ntitle: Summarise the Q3 report\n/);

    const again = JSON.parse((await vault.cli(['task', 'add', 'Summarise the Q3 report', '--json'])).stdout);
    expect(again.id).toBe('summarise-the-q3-report-2');

    const list = JSON.parse((await vault.cli(['task', 'list', '--state', 'needs_action', '--json'])).stdout);
    expect(list.tasks.map((t: { id: string }) => t.id).sort()).toEqual(['summarise-the-q3-report', 'summarise-the-q3-report-2']);

    await vault.runOnce();
    const show = JSON.parse((await vault.cli(['task', 'show', 'summarise-the-q3-report', '--json'])).stdout);
    expect(show.task.state).toBe('done');
    expect(show.folder).toBe('Done');
    expect(show.runs).toHaveLength(1);
    expect(show.runs[0]).toMatchObject({ kind: 'execute', ok: true, attempt: 1 });
    expect(show.task.costUsd).toBeGreaterThan(0);
  });

  it('rejects bad input with a usage error and changes nothing', async () => {
    vault = new TestVault(FAST_SETTINGS);
    const bad = await vault.cli(['task', 'add', 'x', '--urgency', 'extreme', '--json']);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stderr).error.message).toMatch(/--urgency/);
    const badDate = await vault.cli(['task', 'add', 'x', '--deadline', 'friday']);
    expect(badDate.code).toBe(2);
    expect((await vault.cli(['task', 'list', '--state', 'bogus'])).code).toBe(2);
    expect(vault.folders()['Needs_Action']).toEqual([]);
    const missing = await vault.cli(['task', 'show', 'nope', '--json']);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stderr).error.code).toBe('TASK_NOT_FOUND');
  });

  it('keeps shell metacharacters in titles as text', async () => {
    vault = new TestVault(FAST_SETTINGS);
    const title = 'Check $(touch /tmp/fte-pwned) and `id`; rm -rf ~';
    const add = JSON.parse((await vault.cli(['task', 'add', title, '--json'])).stdout);
    await vault.runOnce();
    const show = JSON.parse((await vault.cli(['task', 'show', add.id, '--json'])).stdout);
    expect(show.task.title).toBe(title);
    expect(show.task.state).toBe('done');
    expect(existsSync('/tmp/fte-pwned')).toBe(false);
  });

  it('cancelling a running task stops its agent and moves the note to Rejected/', async () => {
    vault = new TestVault(FAST_SETTINGS);
    vault.note('long', { title: 'Long job' }, 'stand-in: slow 30000');
    const child = vault.spawnOrchestrator();
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(() => out.includes('"event":"dispatch"'), 15_000, 'dispatch');
      const pidFile = join(vault.dir, '.fte', 'run', 'long.pid');
      await waitFor(() => existsSync(pidFile), 10_000, 'the agent pid file');
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      expect(processIsAlive(pid)).toBe(true);
      const cancel = await vault.cli(['task', 'cancel', 'long', '--reason', 'not needed', '--json']);
      expect(JSON.parse(cancel.stdout)).toMatchObject({ id: 'long', state: 'cancelled' });
      await waitFor(() => out.includes('"event":"abort"'), 10_000, 'abort');
      await waitFor(() => !processIsAlive(pid), 10_000, 'the agent to end');
      expect(vault.folders()['Rejected']).toEqual(['long']);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('close', r));
    }
  }, 40_000);
});
