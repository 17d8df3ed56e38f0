import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../lib/local/config-file.ts';
import { Engine, type EngineEvent } from '../../lib/local/engine.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import type { VaultFolder } from '../../lib/core/vault-layout.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const STAND_IN = join(ROOT, 'examples', 'stand-in-claude.mjs');
const FTE_BIN = join(ROOT, 'bin', 'fte.js');

export interface StandInCall {
  pid: number;
  taskId: string | null;
  planning: boolean;
  behaviour: string;
  startMs: number;
  endMs?: number;
  exitCode?: number;
}

/** A temporary vault with its own settings and its own stand-in agent state, removed by `cleanup`. */
export class TestVault {
  readonly dir: string;
  readonly scratch: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(settings: string) {
    this.scratch = mkdtempSync(join(tmpdir(), 'fte-e2e-'));
    this.dir = join(this.scratch, 'vault');
    mkdirSync(join(this.dir, '.fte'), { recursive: true });
    mkdirSync(join(this.dir, 'Needs_Action'), { recursive: true });
    writeFileSync(join(this.dir, '.fte', 'orchestrator.yaml'), settings);
    this.env = {
      ...process.env,
      FTE_CLAUDE_COMMAND: STAND_IN,
      FTE_STAND_IN_STATE: join(this.scratch, 'stand-in-state'),
      FTE_STAND_IN_LOG: join(this.scratch, 'stand-in.log'),
      NO_COLOR: '1',
    };
  }

  note(id: string, frontmatter: Record<string, string | number>, body = '', folder: VaultFolder = 'Needs_Action'): void {
    const fm = Object.entries(frontmatter).map(([k, v]) => `${k}: ${typeof v === 'string' ? JSON.stringify(v) : v}`);
    mkdirSync(join(this.dir, folder), { recursive: true });
    writeFileSync(join(this.dir, folder, `${id}.md`), `---\n${fm.join('\n')}\n---\n${body}\n`);
  }

  /** Note ids per folder. */
  folders(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const folder of ['Needs_Action', 'In_Progress', 'Pending_Approval', 'Approved', 'Rejected', 'Done', 'Failed']) {
      const path = join(this.dir, folder);
      out[folder] = existsSync(path)
        ? readdirSync(path).filter((n) => n.endsWith('.md') && !n.endsWith('.error.md')).map((n) => n.slice(0, -3)).sort()
        : [];
    }
    return out;
  }

  read(folder: VaultFolder, id: string): string {
    return readFileSync(join(this.dir, folder, `${id}.md`), 'utf8');
  }

  calls(): StandInCall[] {
    const path = this.env['FTE_STAND_IN_LOG'] as string;
    if (!existsSync(path)) return [];
    return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as StandInCall);
  }

  /** Run the engine in this process until it has nothing left to do (`--once`). */
  async runOnce(options: { clock?: () => Date } = {}): Promise<EngineEvent[]> {
    const events: EngineEvent[] = [];
    // The in-process engine's agents inherit this process's environment; point them at this vault's stand-in state.
    const saved = { state: process.env['FTE_STAND_IN_STATE'], log: process.env['FTE_STAND_IN_LOG'] };
    process.env['FTE_STAND_IN_STATE'] = this.env['FTE_STAND_IN_STATE'];
    process.env['FTE_STAND_IN_LOG'] = this.env['FTE_STAND_IN_LOG'];
    const service = this.service();
    const engine = new Engine(service, { once: true, log: (e) => events.push(e), ...(options.clock ? { clock: options.clock } : {}) });
    try {
      await engine.run();
    } finally {
      await service.close();
      restore('FTE_STAND_IN_STATE', saved.state);
      restore('FTE_STAND_IN_LOG', saved.log);
    }
    return events;
  }

  service(): TaskService {
    const { config } = loadConfig({ vault: this.dir, env: this.env });
    return TaskService.open(this.dir, config);
  }

  /** The real CLI, as a user runs it. */
  cli(args: string[], options: { timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(process.execPath, [FTE_BIN, ...args, '--vault', this.dir], { env: this.env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`fte ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
      }, options.timeoutMs ?? 60_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolvePromise({ code, stdout, stderr });
      });
    });
  }

  /** Start `fte orchestrator run` as a separate process (for kill -9 and signal tests). */
  spawnOrchestrator(extra: string[] = []): ChildProcess {
    return spawn(process.execPath, [FTE_BIN, 'orchestrator', 'run', '--vault', this.dir, '--json', ...extra], {
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  cleanup(): void {
    rmSync(this.scratch, { recursive: true, force: true });
  }
}

export const FAST_SETTINGS = `
orchestrator:
  max_concurrent_tasks: 1
  poll_interval: 1
  heartbeat_interval: 1
  claude_timeout: 20
  kill_grace_period: 1
  shutdown_timeout: 2
retry:
  max_attempts: 3
  initial_backoff: 0.2
  max_backoff: 0.5
`;

export async function waitFor(check: () => boolean, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
