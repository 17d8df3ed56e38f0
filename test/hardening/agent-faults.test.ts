import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestVault } from '../e2e/harness.ts';
import { callsByPid, leftoverProcesses, processesMentioning, readStandInLog, readStore, waitUntil } from './support.ts';

/**
 * Agent faults (issue 7): every way an agent can end badly, run through the whole engine with the stand-in agent, ends
 * in its own error class — recorded in the store, the note dead-lettered to Failed/ with the reason — and leaves no
 * process behind: not the agent, not a grandchild it forked, not a member of its process group (zombies count as
 * gone: they run nothing).
 */

let vault: TestVault;
afterEach(() => vault?.cleanup());

const SETTINGS = `
orchestrator:
  max_concurrent_tasks: 10
  poll_interval: 1
  heartbeat_interval: 1
  claude_timeout: 2
  kill_grace_period: 0.5
  shutdown_timeout: 2
retry:
  max_attempts: 1
`;

/** Directive → the state and error class the task must end in. */
const FAULTS: Array<{ id: string; directive: string; state: string; errorClass: string | null }> = [
  { id: 'hang', directive: 'hang', state: 'failed', errorClass: 'timeout' },
  { id: 'crash', directive: 'crash', state: 'failed', errorClass: 'crash' },
  { id: 'garbage', directive: 'garbage', state: 'failed', errorClass: 'bad_output' },
  { id: 'error-exit-0', directive: 'error-exit-0', state: 'failed', errorClass: 'agent_error' },
  // The agent succeeds; what matters is the grandchild it leaves running in its group.
  { id: 'fork', directive: 'fork', state: 'done', errorClass: null },
  { id: 'fail', directive: 'fail', state: 'failed', errorClass: 'agent_error' },
  { id: 'rate-limit', directive: 'rate-limit', state: 'failed', errorClass: 'rate_limit' },
  { id: 'over-budget', directive: 'over-budget', state: 'failed', errorClass: 'budget_exceeded' },
  { id: 'max-turns', directive: 'max-turns', state: 'failed', errorClass: 'agent_error' },
];

describe('agent faults through the engine', () => {
  it('each fault ends in its error class, dead-lettered, with no agent, grandchild or group member left running', async () => {
    vault = new TestVault(SETTINGS);
    for (const f of FAULTS) vault.note(f.id, { title: `Fault ${f.id}` }, `stand-in: ${f.directive}`);
    const started = Date.now();
    await vault.runOnce();
    const elapsed = Date.now() - started;

    const dump = await readStore(vault.dir);
    const byId = new Map(dump.tasks.map((t) => [t.id, t]));
    const folders = vault.folders();
    for (const f of FAULTS) {
      const record = byId.get(f.id);
      expect({ id: f.id, state: record?.state, errorClass: record?.lastError?.class ?? null }).toEqual({
        id: f.id,
        state: f.state,
        errorClass: f.errorClass,
      });
      expect(folders[f.state === 'done' ? 'Done' : 'Failed']).toContain(f.id);
      // Exactly one run, recorded with the same class.
      const runs = dump.runs.get(f.id) ?? [];
      expect(runs).toHaveLength(1);
      expect(runs[0]?.errorClass ?? null).toBe(f.errorClass);
    }
    // The hang was cut at claude_timeout (2 s) plus the grace period, not waited out.
    expect(elapsed).toBeLessThan(20_000);
    const hangRun = dump.runs.get('hang')?.[0];
    expect(hangRun?.durationMs).toBeGreaterThanOrEqual(2000);

    const calls = callsByPid(readStandInLog(vault.env['FTE_STAND_IN_LOG'] as string));
    expect([...calls.values()].map((c) => c.taskId).sort()).toEqual(FAULTS.map((f) => f.id).sort());
    const pids = new Set<number>();
    for (const c of calls.values()) {
      pids.add(c.pid);
      if (c.grandchildPid !== undefined) pids.add(c.grandchildPid);
    }
    const fork = [...calls.values()].find((c) => c.taskId === 'fork');
    expect(fork?.grandchildPid).toBeGreaterThan(0);
    // Cleanup of a group is awaited by the runner within a bound; give the kernel a moment to finish reaping.
    await waitUntil(() => leftoverProcesses(pids).length === 0, 3000, 'every agent and grandchild to be gone').catch(() => {});
    expect(leftoverProcesses(pids)).toEqual([]);
    expect(processesMentioning(vault.scratch)).toEqual([]);
  }, 60_000);

  it('a grandchild that ignores SIGTERM and keeps the output open, forked by an agent that then exits without a result', async () => {
    // Not a stand-in directive: an agent written for this fault. It forks a grandchild that ignores SIGTERM, holds
    // the agent's stdout open and forks a great-grandchild of its own, then exits 0 having printed no result.
    vault = new TestVault(SETTINGS);
    const agent = join(vault.scratch, 'forking-agent.mjs');
    writeFileSync(
      agent,
      `#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
const code = "process.on('SIGTERM', () => {}); const { spawn } = require('node:child_process'); " +
  "const g = spawn(process.execPath, ['-e', 'process.on(\\"SIGTERM\\", () => {}); setInterval(() => {}, 1000)'], { stdio: 'inherit' }); " +
  "require('node:fs').appendFileSync(process.env.PIDS, g.pid + '\\\\n'); setInterval(() => {}, 1000);";
const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
appendFileSync(process.env.PIDS, process.pid + '\\n' + child.pid + '\\n');
setTimeout(() => { process.stdout.write('working...\\n'); process.exit(0); }, 300);
`,
    );
    chmodSync(agent, 0o755);
    const pidsFile = join(vault.scratch, 'pids.txt');
    // The engine's settings come from the vault's environment, where FTE_CLAUDE_COMMAND overrides the command.
    const saved = { pids: process.env['PIDS'] };
    process.env['PIDS'] = pidsFile;
    vault.env['FTE_CLAUDE_COMMAND'] = agent;
    vault.note('forker', { title: 'Forks and leaves' }, 'anything');
    try {
      await vault.runOnce();
    } finally {
      if (saved.pids === undefined) delete process.env['PIDS'];
      else process.env['PIDS'] = saved.pids;
    }
    const dump = await readStore(vault.dir);
    const record = dump.tasks.find((t) => t.id === 'forker');
    expect(record?.state).toBe('failed');
    expect(record?.lastError?.class).toBe('bad_output');
    await waitUntil(() => readFileSync(pidsFile, 'utf8').trim().split('\n').length >= 3, 5000, 'three pids');
    const pids = readFileSync(pidsFile, 'utf8').trim().split('\n').map(Number);
    expect(pids).toHaveLength(3);
    await waitUntil(() => leftoverProcesses(pids).length === 0, 3000, 'the agent family to be gone').catch(() => {});
    expect(leftoverProcesses(pids)).toEqual([]);
  }, 60_000);
});
