import { accessSync, chmodSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createHash, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../lib/core/config.ts';
import type { Config } from '../../lib/core/config.ts';
import { buildPrompt } from '../../lib/core/claude-invocation.ts';
import { runClaude } from '../../lib/local/claude-runner.ts';
import type { ClaudeRunInput } from '../../lib/local/claude-runner.ts';
import { runAgent } from '../../lib/local/process-runner.ts';
import { processIsAlive } from '../../lib/local/process-group.ts';

const STAND_IN = fileURLToPath(new URL('../../examples/stand-in-claude.mjs', import.meta.url));

let dir: string;
let env: NodeJS.ProcessEnv;
let agentLog: string;

beforeAll(() => {
  // The executable bit is what lets claude_command name the script directly; a checkout may have lost it.
  try {
    accessSync(STAND_IN, constants.X_OK);
  } catch {
    chmodSync(STAND_IN, 0o755);
  }
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fte-runner-'));
  agentLog = join(dir, 'stand-in.jsonl');
  env = { ...process.env, FTE_STAND_IN_STATE: join(dir, 'state'), FTE_STAND_IN_LOG: agentLog };
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function config(orchestrator: Partial<Config['orchestrator']> = {}): Config {
  const base = defaultConfig();
  return { ...base, orchestrator: { ...base.orchestrator, claude_command: STAND_IN, ...orchestrator } };
}

function input(body: string, extra: Partial<ClaudeRunInput> = {}): ClaudeRunInput {
  return {
    kind: 'execute',
    task: { id: 'task-1', title: 'Do the thing', body, type: 'general' },
    notePath: join(dir, 'In_Progress', 'task-1.md'),
    cwd: dir,
    logPath: null,
    env,
    ...extra,
  };
}

interface AgentLogLine {
  pid: number;
  behaviour: string;
  argv: string[];
  promptSha256: string;
  grandchildPid?: number;
  startMs: number;
  endMs: number | null;
}

function agentLogLines(): AgentLogLine[] {
  return readFileSync(agentLog, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AgentLogLine);
}

function esrch(pid: number): string | undefined {
  try {
    process.kill(pid, 0);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

describe('runClaude with the stand-in agent', () => {
  it('succeeds and reports result, session, cost and timing', async () => {
    const spawned: number[] = [];
    const run = await runClaude(config(), input('stand-in: succeed', { onSpawn: (pid) => spawned.push(pid) }));
    expect(run).toMatchObject({ ok: true, errorClass: null, exitCode: 0 });
    expect(run.result?.costUsd).toBe(0.0123);
    expect(run.result?.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(run.result?.result).toContain('Do the thing');
    expect(spawned).toEqual([run.pid]);
    expect(run.endedAt.getTime()).toBeGreaterThanOrEqual(run.startedAt.getTime());
    expect(run.durationMs).toBeGreaterThan(0);
  });

  it('plans under the planning permission mode', async () => {
    const run = await runClaude(config(), input('stand-in: succeed', { kind: 'plan' }));
    expect(run.ok).toBe(true);
    expect(run.result?.result).toMatch(/^Plan for/);
    expect(agentLogLines()[0]?.argv).toEqual(['-p', '<prompt>', '--output-format', 'json', '--permission-mode', 'plan']);
  });

  it('classes fail as agent_error and keeps its cost', async () => {
    const run = await runClaude(config(), input('stand-in: fail\nstand-in: cost 0.5'));
    expect(run).toMatchObject({ ok: false, errorClass: 'agent_error', exitCode: 1 });
    expect(run.result?.costUsd).toBe(0.5);
  });

  it('does not trust exit 0 with is_error true', async () => {
    const run = await runClaude(config(), input('stand-in: error-exit-0'));
    expect(run).toMatchObject({ ok: false, errorClass: 'agent_error', exitCode: 0 });
  });

  it('classes garbage output as bad_output', async () => {
    const run = await runClaude(config(), input('stand-in: garbage'));
    expect(run).toMatchObject({ ok: false, errorClass: 'bad_output', exitCode: 0 });
  });

  it('classes a crash, quoting its stderr', async () => {
    const run = await runClaude(config(), input('stand-in: crash'));
    expect(run).toMatchObject({ ok: false, errorClass: 'crash', exitCode: 2 });
    expect(run.message).toContain('simulated crash');
  });

  it('classes rate limits and spent budgets', async () => {
    expect((await runClaude(config(), input('stand-in: rate-limit'))).errorClass).toBe('rate_limit');
    expect((await runClaude(config(), input('stand-in: over-budget'))).errorClass).toBe('budget_exceeded');
  });

  it('reports a missing command as a crash that says so', async () => {
    const missing = join(dir, 'no-such-claude');
    const run = await runClaude(config({ claude_command: missing }), input('stand-in: succeed'));
    expect(run).toMatchObject({ ok: false, errorClass: 'crash', exitCode: null, pid: null });
    expect(run.message).toContain(`command not found: ${missing}`);
  });

  it('kills a hung agent that ignores SIGTERM once its time is up', async () => {
    const started = Date.now();
    const run = await runClaude(
      config({ claude_timeout: 0.3, kill_grace_period: 0.2 }),
      input('stand-in: hang'),
    );
    expect(run).toMatchObject({ ok: false, errorClass: 'timeout', signal: 'SIGKILL' });
    expect(run.message).toContain('0.3 s');
    expect(Date.now() - started).toBeLessThan(2500);
    expect(run.pid).not.toBeNull();
    expect(esrch(run.pid as number)).toBe('ESRCH');
    expect(() => process.kill(-(run.pid as number), 0)).toThrow();
  });

  it('leaves no grandchild behind when the agent exits normally', async () => {
    const run = await runClaude(config(), input('stand-in: fork'));
    expect(run.ok).toBe(true);
    const grandchild = agentLogLines()[0]?.grandchildPid;
    expect(grandchild).toBeTypeOf('number');
    // A killed orphan can linger as a zombie where pid 1 does not reap; it runs nothing, so it counts as gone.
    expect(processIsAlive(grandchild as number)).toBe(false);
  });

  it('never lets a shell see the prompt', async () => {
    const marker = join(tmpdir(), `pwned-${randomUUID()}`);
    const body = `Do $(touch ${marker}) and \`touch ${marker}-tick\`; "quoted" 'single' \\ $HOME\nstand-in: succeed`;
    const run = await runClaude(config(), input(body));
    expect(run.ok).toBe(true);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(`${marker}-tick`)).toBe(false);
    const prompt = buildPrompt({
      kind: 'execute',
      task: { id: 'task-1', title: 'Do the thing', body, type: 'general' },
      notePath: join(dir, 'In_Progress', 'task-1.md'),
      completionPromise: defaultConfig().orchestrator.completion_promise,
    });
    expect(agentLogLines()[0]?.promptSha256).toBe(createHash('sha256').update(prompt).digest('hex'));
  });

  it('writes stdout and stderr to the log file, appending across runs', async () => {
    const logPath = join(dir, 'Logs', 'nested', 'task-1.log');
    await runClaude(config(), input('stand-in: fork', { logPath }));
    await runClaude(config(), input('stand-in: crash', { logPath }));
    const log = readFileSync(logPath, 'utf8');
    expect(log).toContain('--- stdout ---\n{"type":"result"');
    expect(log).toContain('--- stderr ---\nstand-in: grandchild pid');
    expect(log).toContain('simulated crash');
    expect(log.match(/^=== pid \d+, exit code/gm)).toHaveLength(2);
    expect(log).toMatch(/=== pid \d+, exit code 2, signal none/);
    // The prompt is already in the vault; the log shows its length only.
    expect(log).toMatch(/\["-p","<\d+ characters>","--output-format","json"\]/);
    expect(log).not.toContain('Task file:');
  });

  it('fails once, then succeeds for the same task', async () => {
    const first = await runClaude(config(), input('stand-in: fail-once'));
    const second = await runClaude(config(), input('stand-in: fail-once'));
    expect(first).toMatchObject({ ok: false, errorClass: 'agent_error' });
    expect(second).toMatchObject({ ok: true });
  });

  it('prints the completion promise on the third call of a resumed session', async () => {
    const promise = defaultConfig().orchestrator.completion_promise;
    const first = await runClaude(config(), input('stand-in: promise-on 3'));
    const sessionId = first.result?.sessionId ?? null;
    expect(first.ok).toBe(true);
    expect(first.result?.result).not.toContain(promise);
    // Resume prompts need not carry the directive: the session remembers it.
    const second = await runClaude(config(), input('Keep going.', { resumeSessionId: sessionId }));
    const third = await runClaude(config(), input('Keep going.', { resumeSessionId: sessionId }));
    expect(second.result?.result).not.toContain(promise);
    expect(third.result?.result).toContain(promise);
    expect([second.result?.sessionId, third.result?.sessionId]).toEqual([sessionId, sessionId]);
    expect(agentLogLines()[2]?.argv).toContain('--resume');
  });

  it('stops on abort and classes the run as interrupted', async () => {
    const controller = new AbortController();
    const pending = runClaude(
      config({ kill_grace_period: 0.2 }),
      input('stand-in: hang', { signal: controller.signal, onSpawn: () => setTimeout(() => controller.abort(), 100) }),
    );
    const run = await pending;
    expect(run).toMatchObject({ ok: false, errorClass: 'interrupted' });
    expect(esrch(run.pid as number)).toBe('ESRCH');
  });
});

describe('runAgent', () => {
  it('caps captured output and keeps its tail', async () => {
    const outcome = await runAgent({
      command: process.execPath,
      args: ['-e', "process.stdout.write('x'.repeat(5 * 1024 * 1024) + 'END')"],
      cwd: dir,
      timeoutMs: 5000,
      killGraceMs: 100,
      logPath: null,
    });
    expect(outcome.exitCode).toBe(0);
    expect(outcome.truncated).toEqual({ stdout: true, stderr: false });
    expect(outcome.stdout.length).toBe(4 * 1024 * 1024);
    expect(outcome.stdout.endsWith('END')).toBe(true);
  });

  it('does not start when already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const outcome = await runAgent({
      command: process.execPath,
      args: ['-e', ''],
      cwd: dir,
      timeoutMs: 1000,
      killGraceMs: 100,
      logPath: null,
      signal: controller.signal,
    });
    expect(outcome).toMatchObject({ aborted: true, pid: null, exitCode: null });
  });

  it('names a missing working directory rather than the command', async () => {
    const outcome = await runAgent({
      command: process.execPath,
      args: ['-e', ''],
      cwd: join(dir, 'missing'),
      timeoutMs: 1000,
      killGraceMs: 100,
      logPath: null,
    });
    expect(outcome.stderr).toContain('working directory does not exist');
  });
});
