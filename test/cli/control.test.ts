import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resumeResponseSchema, statusSchema, stopResponseSchema, taskDetailSchema } from '../../lib/app/contracts.ts';
import { defaultConfig } from '../../lib/core/config.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import { tempDir, removeTempDirs } from '../api/fixtures.ts';
import { PLAIN, runCli } from './run-cli.ts';

/**
 * status, stop, resume, task add and task show now run the same code as the API (lib/app/reads.ts, LocalActions,
 * lib/local/task-note.ts); their JSON keeps the keys it had and validates against the API's contracts.
 */

function vault(): string {
  const dir = tempDir('fte-control-');
  TaskService.open(dir, defaultConfig()).close();
  return dir;
}

describe('the commands that share the API’s code', () => {
  it('status --json is the API’s status report', async () => {
    const dir = vault();
    const { code, stdout } = await runCli(['orchestrator', 'status', '--vault', dir, '--json']);
    expect(code).toBe(0);
    const raw = JSON.parse(stdout) as Record<string, unknown>;
    for (const key of ['vault', 'orchestrator', 'stop', 'counts', 'running', 'pendingApproval']) expect(raw).toHaveProperty(key);
    const status = statusSchema.parse(raw);
    expect(status.orchestrator).toMatchObject({ running: false, pid: null, heartbeatAt: null });
  });

  it('stop --now and resume print the API’s responses and do what the API does', async () => {
    const dir = vault();
    const stopped = await runCli(['orchestrator', 'stop', '--vault', dir, '--now', '--reason', 'lunch', '--json']);
    expect(stopResponseSchema.parse(JSON.parse(stopped.stdout))).toEqual({ stopped: true, now: true, reason: 'lunch' });
    expect(existsSync(join(dir, '.fte', 'stop-now'))).toBe(true);
    const status = statusSchema.parse(JSON.parse((await runCli(['orchestrator', 'status', '--vault', dir, '--json'])).stdout));
    expect(status.stop).toEqual({ stopped: true, reason: 'lunch', stopFile: false });
    writeFileSync(join(dir, '.claude_stop'), '');
    const resumed = await runCli(['orchestrator', 'resume', '--vault', dir, '--json']);
    expect(resumeResponseSchema.parse(JSON.parse(resumed.stdout))).toEqual({ stopped: false, removedStopFile: true });
    const human = await runCli(['orchestrator', 'stop', '--vault', dir], PLAIN);
    expect(human.stdout).toBe('stopped: no new task will start.\n');
  });

  it('task add writes the note POST /tasks writes; task show is GET /tasks/:id', async () => {
    const dir = vault();
    const added = await runCli(['task', 'add', 'Wire the deposit', '--urgency', '4', '--type', 'Payment', '--vault', dir, '--json']);
    expect(added.code).toBe(0);
    const id = (JSON.parse(added.stdout) as { id: string }).id;
    expect(id).toBe('wire-the-deposit');
    const shown = await runCli(['task', 'show', id, '--vault', dir, '--json']);
    const detail = taskDetailSchema.parse(JSON.parse(shown.stdout));
    expect(detail.task).toMatchObject({ id, urgency: 4, type: 'payment', state: 'needs_action', approvalRequired: true });
    expect(detail.folder).toBe('Needs_Action');
    expect(detail.notePath).toBe(join(dir, 'Needs_Action', `${id}.md`));
    expect(detail.allowedEvents).toEqual(expect.arrayContaining(['plan', 'reject', 'cancel']));
    const human = await runCli(['task', 'show', id, '--vault', dir], PLAIN);
    expect(human.stdout.split('\n')[0]).toBe(`${id}: Wire the deposit`);
    expect(human.stdout).toMatch(/^state: needs_action\s+since \d{4}-\d\d-\d\dT/m);
    const missing = await runCli(['task', 'show', 'ghost', '--vault', dir, '--json']);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stderr)).toMatchObject({ error: { code: 'TASK_NOT_FOUND' } });
  });
});

afterAll(removeTempDirs);
