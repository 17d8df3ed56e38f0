import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FAST_SETTINGS, TestVault, waitFor } from './harness.ts';

let vault: TestVault;
afterEach(() => vault?.cleanup());

describe('state-changing commands through --endpoint', () => {
  it('approve, stop, resume and task add act through another orchestrator\'s API', async () => {
    vault = new TestVault(`${FAST_SETTINGS}\napi:\n  port: 0\n`);
    vault.note('pay', { title: 'Pay the printer', type: 'payment' });
    const child = vault.spawnOrchestrator();
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const discovery = join(vault.dir, '.fte', 'api.json');
      await waitFor(() => existsSync(discovery) && out.includes('"event":"awaiting_approval"'), 20_000, 'the API and the approval request');
      const { url } = JSON.parse(readFileSync(discovery, 'utf8')) as { url: string };
      const token = readFileSync(join(vault.dir, '.fte', 'api-token'), 'utf8').trim();
      const remote = ['--endpoint', url, '--token', token, '--json'];

      const denied = await vault.cli(['approve', 'pay', '--endpoint', url, '--token', 'wrong', '--json']);
      expect(denied.code).toBe(1);
      expect(JSON.parse(denied.stderr).error.code).toBe('UNAUTHORIZED');

      const approved = await vault.cli(['approve', 'pay', ...remote]);
      expect(approved.code).toBe(0);
      expect(JSON.parse(approved.stdout)).toMatchObject({ id: 'pay', state: 'approved' });
      await waitFor(() => out.includes('"event":"done"'), 20_000, 'the approved task to run');

      expect(JSON.parse((await vault.cli(['orchestrator', 'stop', '--reason', 'lunch', ...remote])).stdout)).toMatchObject({ stopped: true, reason: 'lunch' });
      const status = JSON.parse((await vault.cli(['orchestrator', 'status', ...remote])).stdout);
      expect(status.stop).toMatchObject({ stopped: true, reason: 'lunch' });
      const added = JSON.parse((await vault.cli(['task', 'add', 'Order toner', '--urgency', 'low', ...remote])).stdout);
      expect(added).toMatchObject({ id: 'order-toner', task: { state: 'needs_action', urgency: 2 } });
      await new Promise((r) => setTimeout(r, 1500));
      expect(vault.calls().filter((c) => c.taskId === 'order-toner')).toHaveLength(0); // stopped
      expect(JSON.parse((await vault.cli(['orchestrator', 'resume', ...remote])).stdout)).toMatchObject({ stopped: false });
      await waitFor(() => vault.calls().some((c) => c.taskId === 'order-toner'), 20_000, 'the added task to run after resume');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('close', r));
    }
  }, 60_000);
});
