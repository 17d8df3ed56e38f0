import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifySignature, type NotificationPayload } from '../../lib/core/webhooks.ts';
import { removeTempDirs, tempDir, writeNote } from '../api/fixtures.ts';
import { startReceiver, type Receiver } from '../fixtures/webhook-receiver.ts';

/**
 * `fte orchestrator run` with webhooks configured: the real CLI in a child process, the stand-in agent, and a real
 * HTTP receiver with one fast, signed JSON target and one slow Slack-format target.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const FTE = join(ROOT, 'bin', 'fte.js');
const STAND_IN = join(ROOT, 'examples', 'stand-in-claude.mjs');
const SECRET = 'whsec_run_test';
const SLOW_MS = 3000;

let receiver: Receiver;
const children: ChildProcess[] = [];

beforeEach(async () => {
  receiver = await startReceiver();
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  await receiver.close();
});

afterAll(removeTempDirs);

function vault(): string {
  const dir = tempDir('fte-notify-');
  mkdirSync(join(dir, '.fte'), { recursive: true });
  mkdirSync(join(dir, 'Needs_Action'), { recursive: true });
  writeFileSync(
    join(dir, '.fte', 'orchestrator.yaml'),
    [
      'orchestrator:',
      '  poll_interval: 1',
      '  heartbeat_interval: 1',
      '  max_concurrent_tasks: 3',
      'retry:',
      '  max_attempts: 1',
      'budget:',
      '  daily_usd: 0.04',
      'notifications:',
      '  enabled: true',
      '  timeout: 10',
      '  max_attempts: 2',
      '  targets:',
      `    - url: ${receiver.url}/fast`,
      '      secret: ${FTE_WEBHOOK_SECRET}',
      '      events: [task_failed, task_dead_lettered, approval_requested, budget_exhausted, orchestrator_stopped]',
      `    - url: ${receiver.url}/slow`,
      '      format: slack',
      '      events: [approval_requested, task_dead_lettered]',
      '',
    ].join('\n'),
  );
  return dir;
}

interface Finished {
  code: number | null;
  events: Array<Record<string, unknown>>;
  stderr: string;
}

function runOnce(dir: string): Promise<Finished> {
  return start(dir, ['--once']).finished;
}

function start(dir: string, args: readonly string[]): { child: ChildProcess; finished: Promise<Finished> } {
  const child = spawn(process.execPath, [FTE, 'orchestrator', 'run', '--vault', dir, '--json', '--no-api', ...args], {
    env: { ...process.env, FTE_CLAUDE_COMMAND: STAND_IN, FTE_STAND_IN_STATE: join(tempDir('fte-notify-scratch-'), 'state'), FTE_WEBHOOK_SECRET: SECRET, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const finished = new Promise<Finished>((resolveRun) =>
    child.on('exit', (code) => {
      const events = stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      resolveRun({ code, events, stderr });
    }),
  );
  return { child, finished };
}

describe('fte orchestrator run with webhooks', () => {
  it('delivers signed notifications for approvals, dead letters, the budget and the exit, without waiting on a slow receiver', async () => {
    receiver.on('/slow', () => ({ status: 200, delayMs: SLOW_MS }));
    const dir = vault();
    writeNote(dir, 'Needs_Action', 'pay-acme', { title: 'Pay the <!channel> ACME invoice', type: 'payment' }, 'stand-in: succeed');
    writeNote(dir, 'Needs_Action', 'broken', { title: 'Broken task', type: 'code' }, 'stand-in: fail');
    writeNote(dir, 'Needs_Action', 'pricey', { title: 'Pricey task', type: 'research' }, 'stand-in: cost 0.05');

    const run = await runOnce(dir);
    expect(run.code, run.stderr).toBe(0);
    const names = run.events.map((e) => e['event']);
    expect(names).toEqual(expect.arrayContaining(['notifications', 'awaiting_approval', 'failed', 'done', 'budget_exhausted', 'exit']));

    // The fast target: every notification it subscribed to, signed with the secret from the environment.
    const fast = receiver.at('/fast');
    const payloads = fast.map((r) => JSON.parse(r.body) as NotificationPayload);
    expect(payloads.map((p) => `${p.event}:${p.taskId ?? '-'}`).sort()).toEqual([
      'approval_requested:pay-acme',
      'budget_exhausted:-',
      'orchestrator_stopped:-',
      'task_dead_lettered:broken',
    ]);
    for (const r of fast) {
      const check = verifySignature({
        secret: SECRET,
        body: r.body,
        signature: r.headers['x-fte-signature'] as string,
        timestamp: r.headers['x-fte-timestamp'] as string,
        nowSeconds: Math.floor(Date.now() / 1000),
      });
      expect(check).toEqual({ ok: true });
    }
    const approval = payloads.find((p) => p.event === 'approval_requested');
    expect(approval?.task).toMatchObject({ id: 'pay-acme', title: 'Pay the <!channel> ACME invoice', state: 'pending_approval' });
    expect(payloads.find((p) => p.event === 'task_dead_lettered')?.task?.lastError?.class).toBeDefined();
    expect(payloads.find((p) => p.event === 'orchestrator_stopped')?.source).toBe('exit');

    // The slow target got its two Slack messages — answered only after the loop had finished and logged its exit:
    // the engine never waited on it. The exit then waited for them (within the grace period), so nothing was lost.
    const slow = receiver.at('/slow');
    expect(slow).toHaveLength(2);
    const texts = slow.map((r) => (JSON.parse(r.body) as { text: string }).text).sort();
    expect(texts[0]).toContain('Approval needed\nPay the &lt;!channel&gt; ACME invoice (`pay-acme`)');
    expect(texts[1]).toContain('Task dead-lettered');
    const exitAt = Date.parse(String(run.events.find((e) => e['event'] === 'exit')?.['at']));
    const firstSlowRequest = Math.min(...slow.map((r) => r.at));
    for (const r of slow) expect(r.answeredAt).not.toBeNull();
    expect(exitAt).toBeLessThan(firstSlowRequest + SLOW_MS);
    const delivered = run.events.filter((e) => e['event'] === 'webhook_delivered');
    expect(delivered).toHaveLength(6);
    expect(run.events.filter((e) => e['event'] === 'webhook_failed')).toEqual([]);
  }, 30_000);

  it('notices the stop file between turns and reports it, then the exit, as orchestrator_stopped', async () => {
    const dir = vault();
    const running = start(dir, []);
    // The watcher looks every poll_interval, at least every 5 s; the stop file is what an operator would touch.
    await new Promise((resolveWait) => setTimeout(resolveWait, 500));
    writeFileSync(join(dir, '.claude_stop'), '');
    const [stopped] = await receiver.waitFor('/fast', 1, 15_000);
    expect(JSON.parse(stopped?.body ?? '{}')).toMatchObject({ event: 'orchestrator_stopped', source: 'stop_requested', message: 'dispatch stopped: stop file .claude_stop' });
    running.child.kill('SIGTERM');
    const run = await running.finished;
    expect(run.code, run.stderr).toBe(0);
    const sources = receiver.at('/fast').map((r) => (JSON.parse(r.body) as NotificationPayload).source);
    expect(sources).toEqual(['stop_requested', 'exit']);
    expect(run.events.map((e) => e['event'])).toEqual(expect.arrayContaining(['stop_requested', 'shutdown', 'exit']));
  }, 30_000);
});
