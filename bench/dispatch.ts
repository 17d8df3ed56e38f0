import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { validateConfig, type Config } from '../lib/core/config.ts';
import { runClaude } from '../lib/local/claude-runner.ts';
import { EngineUnderTest, Scratch, noopResult, writeNoopAgent, writeNote } from './harness.ts';
import { formatMs, percentile, pool, printTable, type Row } from './table.ts';

/**
 * Dispatch overhead per task with a no-op agent (a shell script that prints one successful Claude result and exits).
 * Three levels, each at concurrency 1 and 10, over the same number of tasks:
 *   raw spawn  — child_process.spawn of the agent alone, with the options fte uses (own process group, piped output),
 *                until its output closes: the floor no orchestrator can beat;
 *   runClaude  — fte's runner (lib/local/claude-runner.ts): prompt and argv, per-attempt log file, process-group
 *                cleanup, result parsing;
 *   Engine     — `new Engine(TaskService.open(vault, config), { once: true })` over a vault holding N notes: intake,
 *                scoring, store transitions, note moves and result sections, the runner, and the loop itself.
 * The ratio is per-task wall time against raw spawn at the same concurrency, i.e. what orchestration multiplies the
 * cost of starting an agent by; "overhead/task" is the difference.
 */

const PROMPT = `${'You are doing a task for fte. '.repeat(30)}\nTask id: bench`;

function rawSpawn(command: string, cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, ['-p', PROMPT, '--output-format', 'json'], {
      cwd,
      env: process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.resume();
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      if (code !== 0 || (JSON.parse(out) as { subtype?: string }).subtype !== 'success') reject(new Error(`no-op agent failed: ${code} ${out}`));
      else resolve(ms);
    });
  });
}

interface Measured {
  wallMs: number;
  samples: number[];
  extra?: Record<string, string>;
  note?: string;
}

async function measureRaw(n: number, concurrency: number, command: string, cwd: string): Promise<Measured> {
  const samples: number[] = [];
  const t0 = performance.now();
  await pool(n, concurrency, async () => {
    samples.push(await rawSpawn(command, cwd));
  });
  return { wallMs: performance.now() - t0, samples };
}

async function measureRunner(n: number, concurrency: number, config: Config, scratch: Scratch): Promise<Measured> {
  const samples: number[] = [];
  let failures = 0;
  const t0 = performance.now();
  await pool(n, concurrency, async (i) => {
    const id = `runner-${concurrency}-${i}`;
    const s0 = performance.now();
    const run = await runClaude(config, {
      kind: 'execute',
      task: { id, title: `Benchmark note ${id}`, body: 'Summarise the weekly numbers. Nothing else.', type: 'general' },
      notePath: scratch.path('In_Progress', `${id}.md`),
      cwd: scratch.dir,
      logPath: scratch.path('logs', id, '1-execute.log'),
    });
    samples.push(performance.now() - s0);
    if (!run.ok) failures++;
  });
  if (failures > 0) throw new Error(`runClaude: ${failures} of ${n} no-op runs failed`);
  return { wallMs: performance.now() - t0, samples };
}

async function measureEngine(n: number, concurrency: number, config: Config): Promise<Measured> {
  const scratch = new Scratch('dispatch');
  const vault = scratch.path('vault');
  for (let i = 0; i < n; i++) writeNote(vault, `task-${String(i).padStart(5, '0')}`);
  const eut = new EngineUnderTest(vault, { ...config, orchestrator: { ...config.orchestrator, max_concurrent_tasks: concurrency } }, { once: true });
  try {
    await eut.start();
    const done = eut.count('done');
    if (done !== n) {
      const kinds = [...new Set(eut.events.map((e) => e.event.event))].map((k) => `${k} ${eut.count(k)}`).join(', ');
      const failure = eut.events.find((e) => ['failed', 'retry_scheduled', 'cancelled'].includes(e.event.event));
      throw new Error(`Engine finished ${done} of ${n} tasks (${kinds})${failure ? `; first failure: ${failure.event.message}` : ''}`);
    }
    const dispatched = new Map<string, number>();
    const samples: number[] = [];
    let lastAdmitted = eut.startedAt;
    let firstDispatch = Infinity;
    let peak = 0;
    let running = 0;
    for (const { t, event } of eut.events) {
      if (event.event === 'admitted') lastAdmitted = Math.max(lastAdmitted, t);
      if (event.event === 'dispatch' && event.taskId !== undefined) {
        dispatched.set(event.taskId, t);
        firstDispatch = Math.min(firstDispatch, t);
        peak = Math.max(peak, ++running);
      }
      if (event.event === 'done' && event.taskId !== undefined) {
        running--;
        const start = dispatched.get(event.taskId);
        if (start !== undefined) samples.push(t - start);
      }
    }
    const wallMs = eut.endedAt - eut.startedAt;
    return {
      wallMs,
      samples,
      extra: { 'ticks/task': (eut.ticks / n).toFixed(1), peak: String(peak) },
      note:
        `Engine c=${concurrency}: wall ${formatMs(wallMs)} = start-up intake of ${n} notes ${formatMs(lastAdmitted - eut.startedAt)}` +
        ` + first dispatch to exit ${formatMs(eut.endedAt - firstDispatch)}; ${eut.ticks} loop turns, peak ${peak} running.`,
    };
  } finally {
    await eut.stop();
    scratch.cleanup();
  }
}

export async function benchDispatch(options: { quick: boolean }): Promise<Row[]> {
  const n = options.quick ? 30 : 200;
  const trialCount = options.quick ? 1 : 3;
  const scratch = new Scratch('dispatch-agent');
  const command = writeNoopAgent(scratch.dir);
  // max_attempts 1: a failed no-op run must end the benchmark with an error, not wait out a 60 s backoff.
  const config = validateConfig({ orchestrator: { claude_command: command }, retry: { max_attempts: 1 } });
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    // Warm-up: the first spawns pay for loading the shell and the page cache.
    await measureRaw(5, 1, command, scratch.dir);
    for (const concurrency of [1, 10]) {
      // Trials interleave the three levels, so a burst of other work on the machine hits all of them alike; each
      // level reports its trial with the median wall time.
      const trials: Array<[Measured, Measured, Measured]> = [];
      for (let t = 0; t < trialCount; t++) {
        trials.push([
          await measureRaw(n, concurrency, command, scratch.dir),
          await measureRunner(n, concurrency, config, scratch),
          await measureEngine(n, concurrency, config),
        ]);
      }
      const median = (level: 0 | 1 | 2): Measured => {
        const sorted = trials.map((t) => t[level]).sort((a, b) => a.wallMs - b.wallMs);
        return sorted[Math.floor(sorted.length / 2)] as Measured;
      };
      const raw = median(0);
      const runner = median(1);
      const engine = median(2);
      const rawPerTask = raw.wallMs / n;
      const levels: Array<[string, Measured, boolean]> = [
        [`raw spawn, c=${concurrency}`, raw, true],
        [`runClaude, c=${concurrency}`, runner, false],
        [`Engine --once, c=${concurrency}`, engine, false],
      ];
      for (const [name, m, baseline] of levels) {
        const perTask = m.wallMs / n;
        rows.push({
          name,
          n,
          total: m.wallMs,
          perItem: perTask,
          p50: percentile(m.samples, 50),
          p95: percentile(m.samples, 95),
          max: Math.max(...m.samples),
          ratio: perTask / rawPerTask,
          baseline,
          extra: {
            trials: String(trialCount),
            'tasks/s': (n / (m.wallMs / 1000)).toFixed(1),
            'overhead/task': baseline ? '-' : formatMs(perTask - rawPerTask),
            ...m.extra,
          },
        });
      }
      if (engine.note !== undefined) notes.push(engine.note);
    }
  } finally {
    scratch.cleanup();
  }

  printTable(rows, {
    title: 'Dispatch overhead per task, no-op agent',
    ratioLabel: 'per-task wall time ÷ raw spawn per-task wall time at the same concurrency (c)',
    notes: [
      `No-op agent: /bin/sh script printing ${noopResult(config.orchestrator.completion_promise)}`,
      'and exiting 0 (the completion promise in its result ends the execution loop after one run).',
      'total = wall time for all n tasks (median trial), per item = total ÷ n; p50/p95/max are per task, from that trial:',
      'one spawn, one runClaude call, or an Engine task from its `dispatch` event to its `done` event (waiting for a',
      'slot is not counted there, so at c=10 it includes sharing 2 cores with 9 other agents and the loop).',
      ...notes,
    ],
  });
  return rows;
}
