import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfig, type Config } from '../../lib/core/config.ts';
import { RUN_MARKER_ENV, RunSpool, type AgentSpool, type SpooledRun } from '../../lib/local/agent-spool.ts';
import { adoptClaude, runClaude } from '../../lib/local/claude-runner.ts';
import { processCarries, processIsAlive } from '../../lib/local/process-group.ts';

const STAND_IN = fileURLToPath(new URL('../../examples/stand-in-claude.mjs', import.meta.url));

let dir: string;
let env: NodeJS.ProcessEnv;
const strays: number[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fte-spool-'));
  env = { ...process.env, FTE_STAND_IN_STATE: join(dir, 'state'), FTE_STAND_IN_LOG: join(dir, 'stand-in.jsonl') };
});

afterEach(() => {
  for (const pid of strays.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function config(orchestrator: Partial<Config['orchestrator']> = {}): Config {
  const base = defaultConfig();
  return { ...base, orchestrator: { ...base.orchestrator, claude_command: STAND_IN, kill_grace_period: 0.2, ...orchestrator } };
}

const spoolDir = (): string => join(dir, 'run');

async function untilGone(pid: number): Promise<void> {
  while (processIsAlive(pid)) await new Promise((r) => setTimeout(r, 20));
}

function found(spool: RunSpool): SpooledRun {
  const contents = spool.read();
  if (contents.kind !== 'run') throw new Error(`expected a spooled run, found ${contents.kind}`);
  return contents.run;
}

/**
 * An agent whose orchestrator is gone: started the way the engine starts one (own group, output into the spool files,
 * the run's marker in its environment), with nobody recording its exit.
 */
function orphan(directive: string, timeoutMs = 20_000): { spool: RunSpool; pid: number } {
  const spool = new RunSpool(spoolDir(), 'task-1');
  const run: AgentSpool = spool.begin({ attempt: 1, kind: 'execute', iteration: 1, timeoutMs, logPath: join(dir, 'logs', '1-execute-1.log') });
  const out = openSync(run.stdoutPath, 'w');
  const err = openSync(run.stderrPath, 'w');
  const prompt = `Task id: task-1\nTask file: ${join(dir, 'task-1.md')}\nTitle: Orphaned\n\n${directive}\n<promise>DONE</promise>`;
  const child = spawn(STAND_IN, ['-p', prompt, '--output-format', 'json'], { detached: true, stdio: ['ignore', out, err], env: { ...env, ...run.env } });
  closeSync(out);
  closeSync(err);
  child.unref();
  const pid = child.pid as number;
  strays.push(pid);
  run.spawned(pid);
  return { spool, pid };
}

describe('the run spool', () => {
  it('records a run before its agent starts, then its group, then its exit; a new run forgets the last one', async () => {
    const spool = new RunSpool(spoolDir(), 'task-1');
    expect(spool.read()).toEqual({ kind: 'none' });
    const first = spool.begin({ attempt: 1, kind: 'execute', iteration: 1, timeoutMs: 1000, logPath: null });
    expect(found(spool).record).toMatchObject({ pgid: null, attempt: 1, iteration: 1 });
    const run = await runClaude(config(), {
      kind: 'execute',
      task: { id: 'task-1', title: 'Spooled', body: 'stand-in: succeed', type: 'general' },
      notePath: join(dir, 'task-1.md'),
      cwd: dir,
      logPath: null,
      env,
      spool: first,
      onSpawn: (pid) => first.spawned(pid),
    });
    expect(run.ok).toBe(true);
    const done = found(spool);
    expect(done.record.pgid).toBe(run.pid);
    expect(done.exit).toMatchObject({ exitCode: 0, signal: null, timedOut: false, aborted: false });
    // The agent wrote its result into the spool itself.
    expect(JSON.parse(readFileSync(done.output.stdoutPath, 'utf8'))).toMatchObject({ type: 'result', subtype: 'success' });

    spool.begin({ attempt: 1, kind: 'execute', iteration: 2, timeoutMs: 1000, logPath: null });
    const next = found(spool);
    expect(next.record).toMatchObject({ iteration: 2, pgid: null });
    expect(next.exit).toBeNull();
    expect(readFileSync(next.output.stdoutPath, 'utf8')).toBe('');
    spool.remove();
    expect(readdirSync(spoolDir())).toEqual([]);
  });

  it('gives the agent its marker, which is how a restart recognises it', async () => {
    const { spool, pid } = orphan('stand-in: slow 2000');
    const { marker } = found(spool);
    expect(marker.startsWith(`${RUN_MARKER_ENV}=`)).toBe(true);
    expect(processCarries(pid, marker)).toBe(true);
    expect(processCarries(pid, `${RUN_MARKER_ENV}=${'0'.repeat(32)}`)).toBe(false);
  });
});

describe('adoptClaude: finishing a run whose orchestrator died', () => {
  it('waits for an agent still at work and judges it by its result (exit code unknown)', async () => {
    const { spool, pid } = orphan('stand-in: slow 800\nstand-in: cost 0.5');
    const run = await adoptClaude(config(), found(spool), { pollMs: 20 });
    expect(processIsAlive(pid)).toBe(false);
    expect(run).toMatchObject({ ok: true, errorClass: null, exitCode: null, pid });
    expect(run?.result?.costUsd).toBe(0.5);
    expect(run?.result?.result).toContain('<promise>DONE</promise>');
    // Its output is appended to the iteration's log as a live run's would be.
    expect(readFileSync(join(dir, 'logs', '1-execute-1.log'), 'utf8')).toMatch(/adopted by orchestrator pid \d+[\s\S]*--- stdout ---\n\{"type":"result"/);
  });

  it('takes an ended agent\'s reported failure as that failure, exit 0 or not', async () => {
    const { spool, pid } = orphan('stand-in: error-exit-0');
    await untilGone(pid);
    expect(await adoptClaude(config(), found(spool))).toMatchObject({ ok: false, errorClass: 'agent_error', exitCode: null });
  });

  it('stops an adopted agent at its original time limit: timeout, as live', async () => {
    const { spool, pid } = orphan('stand-in: hang', 500);
    const run = await adoptClaude(config(), found(spool), { pollMs: 20 });
    expect(run).toMatchObject({ ok: false, errorClass: 'timeout' });
    expect(run?.message).toContain('0.5 s');
    expect(processIsAlive(pid)).toBe(false);
  });

  it('stops an adopted agent on abort: interrupted, as live', async () => {
    const { spool, pid } = orphan('stand-in: slow 10000');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const run = await adoptClaude(config(), found(spool), { signal: controller.signal, pollMs: 20 });
    expect(run).toMatchObject({ ok: false, errorClass: 'interrupted' });
    expect(processIsAlive(pid)).toBe(false);
  });

  it('returns null (unknown) for an agent that died leaving no result and no recorded exit', async () => {
    const { spool, pid } = orphan('stand-in: slow 10000');
    process.kill(-pid, 'SIGKILL');
    await untilGone(pid);
    expect(await adoptClaude(config(), found(spool))).toBeNull();
  });

  it('uses the exit the dead orchestrator recorded: exit 1 with a success object is not a success', async () => {
    const { spool, pid } = orphan('stand-in: succeed');
    await untilGone(pid);
    const run = found(spool);
    const judged = await adoptClaude(config(), {
      ...run,
      exit: { exitCode: 1, signal: null, timedOut: false, aborted: false, durationMs: 10, endedAt: new Date().toISOString() },
    });
    expect(judged).toMatchObject({ ok: false, errorClass: 'agent_error', exitCode: 1 });
  });
});
