import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isTerminal, TERMINAL_STATES } from '../../lib/core/state-machine.ts';
import { fteEnv, OrchestratorProcess, readStandInLog, readStore, sleep, table, type EventLine } from './support.ts';

/**
 * Load runs (issue 7): `fte orchestrator run` as its own process, its HTTP API on, over a vault of N notes with the cap
 * at C. Measured from outside, as an operator would: the event stream (admission, dispatch, completion times), the
 * orchestrator's resident memory (/proc/<pid>/status) sampled as tasks complete, and the latency of the API's
 * `GET /dashboard` and `GET /status` polled throughout. Checked: every task ends in exactly one terminal state, no task
 * runs twice, the cap is never exceeded (counted from the agents' own start and end records).
 */

export interface LoadOptions {
  tasks: number;
  concurrency: number;
  /** The stand-in agent (with `delay` ms of work per run), or a no-op shell agent (for the 10,000-task scale run). */
  agent: { kind: 'stand-in'; delayMs: number } | { kind: 'noop'; delayMs?: number };
  /** Poll the API this often (ms); 0 disables polling. */
  pollMs?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface LoadReport {
  tasks: number;
  concurrency: number;
  wallMs: number;
  /** From the first event to the last admission. */
  intakeMs: number;
  done: number;
  terminalOnce: boolean;
  notExactlyOneTerminal: string[];
  ranTwice: string[];
  peakConcurrency: number;
  /** Admission → dispatch, per task (ms, event clock). */
  admissionToDispatch: number[];
  /** For dispatches that waited for a free slot: the last completion before it → the dispatch (ms). */
  slotToDispatch: number[];
  api: {
    samples: number;
    failures: number;
    /** The first few failed requests: path, status and body, or the error. */
    failureSamples: string[];
    dashboardMs: number[];
    statusMs: number[];
    byDecile: Array<{ decile: number; p50: number; p99: number }>;
  };
  memory: { firstTaskKiB: number; lastTaskKiB: number; minKiB: number; maxKiB: number; samples: Array<{ done: number; rssKiB: number }> };
  table: string;
}

const NOOP_RESULT =
  '{"type":"result","subtype":"success","is_error":false,"result":"ok <promise>DONE</promise>","session_id":"s","total_cost_usd":0,"num_turns":1,"duration_ms":1}';

/**
 * A no-op agent that records its start and end (one atomic append each) so concurrency can be counted afterwards.
 * With `delayMs` it stays that long, so runs overlap and the cap is actually reached.
 */
function writeCountingNoop(dir: string, log: string, delayMs = 0): string {
  const path = join(dir, 'noop-claude');
  const pause = delayMs > 0 ? `sleep ${(delayMs / 1000).toFixed(3)}\n` : '';
  writeFileSync(path, `#!/bin/sh\necho "s $$" >> '${log}'\n${pause}printf '%s\\n' '${NOOP_RESULT}'\necho "e $$" >> '${log}'\nexit 0\n`);
  chmodSync(path, 0o755);
  return path;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number;
}

function rssKiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const log = options.log ?? (() => {});
  const scratch = mkdtempSync(join(tmpdir(), 'fte-load-'));
  try {
    const vault = join(scratch, 'vault');
    mkdirSync(join(vault, '.fte'), { recursive: true });
    mkdirSync(join(vault, 'Needs_Action'), { recursive: true });
    const standInDir = join(scratch, 'stand-in');
    mkdirSync(standInDir);
    const countLog = join(scratch, 'noop.log');
    const env = fteEnv(standInDir, options.agent.kind === 'noop' ? { FTE_CLAUDE_COMMAND: writeCountingNoop(scratch, countLog, options.agent.delayMs) } : {});
    writeFileSync(
      join(vault, '.fte', 'orchestrator.yaml'),
      `orchestrator:\n  max_concurrent_tasks: ${options.concurrency}\n  poll_interval: 1\n  heartbeat_interval: 1\n  claude_timeout: 60\n  kill_grace_period: 1\n` +
        `retry:\n  max_attempts: 1\nhealth_check:\n  max_backlog: ${options.tasks + 1}\n`,
    );
    const ids: string[] = [];
    const body = options.agent.kind === 'stand-in' ? `stand-in: succeed\nstand-in: delay ${options.agent.delayMs}` : 'Nothing to do.';
    for (let i = 0; i < options.tasks; i++) {
      const id = `load-${String(i).padStart(5, '0')}`;
      ids.push(id);
      writeFileSync(join(vault, 'Needs_Action', `${id}.md`), `---\ntitle: "Load task ${i}"\nurgency: ${1 + (i % 5)}\n---\nSummarise the figures.\n${body}\n`);
    }

    const t0 = performance.now();
    const o = new OrchestratorProcess(vault, env, ['--api-port', '0'], { api: true });
    const memory: Array<{ done: number; rssKiB: number }> = [];
    const dashboardMs: number[] = [];
    const statusMs: number[] = [];
    const apiAt: number[] = [];
    let failures = 0;
    const failureSamples: string[] = [];
    const doneCount = (): number => o.lines.reduce((n, l) => n + (l.event === 'done' || l.event === 'failed' ? 1 : 0), 0);
    let finished = false;
    const sampler = (async () => {
      let api: { url: string; token: string } | null = null;
      while (!finished) {
        const rss = rssKiB(o.pid);
        if (rss !== null) memory.push({ done: doneCount(), rssKiB: rss });
        if ((options.pollMs ?? 100) > 0) {
          if (api === null && existsSync(join(vault, '.fte', 'api.json'))) {
            try {
              const d = JSON.parse(readFileSync(join(vault, '.fte', 'api.json'), 'utf8')) as { url: string };
              api = { url: d.url, token: readFileSync(join(vault, '.fte', 'api-token'), 'utf8').trim() };
            } catch {
              api = null;
            }
          }
          if (api !== null) {
            for (const [path, into] of [['/dashboard', dashboardMs], ['/status', statusMs]] as const) {
              const s = performance.now();
              try {
                const r = await fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${api.token}` } });
                const text = await r.text();
                if (r.status !== 200) {
                  failures++;
                  if (failureSamples.length < 5) failureSamples.push(`${path} ${r.status} ${text.slice(0, 300)}`);
                } else {
                  into.push(performance.now() - s);
                  if (path === '/dashboard') apiAt.push(doneCount());
                }
              } catch (err) {
                if (!finished) {
                  failures++;
                  if (failureSamples.length < 5) failureSamples.push(`${path} ${String((err as Error).cause ?? err)}`);
                }
              }
            }
          }
        }
        await sleep(options.pollMs && options.pollMs > 0 ? options.pollMs : 100);
      }
    })();

    const deadline = Date.now() + (options.timeoutMs ?? 600_000);
    let lastReport = 0;
    while (doneCount() < options.tasks && Date.now() < deadline && o.child.exitCode === null) {
      await sleep(100);
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        log(`${doneCount()} of ${options.tasks} finished after ${((performance.now() - t0) / 1000).toFixed(0)} s, RSS ${memory.at(-1)?.rssKiB ?? '?'} KiB`);
      }
    }
    const wallMs = performance.now() - t0;
    finished = true;
    await sampler;
    o.child.kill('SIGTERM');
    const exit = await o.exited;
    if (exit.code !== 0) throw new Error(`the orchestrator exited ${exit.code} ${exit.signal}: ${o.stderr.slice(-2000)}`);

    // ---- Exactly one terminal state per task, one run per task, the cap.
    const dump = await readStore(vault);
    const terminalEvents = new Map<string, number>();
    for (const e of dump.history) if (TERMINAL_STATES.has(e.to)) terminalEvents.set(e.taskId, (terminalEvents.get(e.taskId) ?? 0) + 1);
    const notExactlyOneTerminal = ids.filter((id) => {
      const r = dump.tasks.find((t) => t.id === id);
      return r === undefined || !isTerminal(r.state) || terminalEvents.get(id) !== 1;
    });
    const executes = new Map<string, number>();
    for (const e of dump.history) if (e.event === 'execute') executes.set(e.taskId, (executes.get(e.taskId) ?? 0) + 1);
    const ranTwice = [...executes].filter(([, n]) => n > 1).map(([id]) => id);

    let peak = 0;
    if (options.agent.kind === 'noop') {
      let running = 0;
      for (const line of readFileSync(countLog, 'utf8').split('\n')) {
        if (line.startsWith('s ')) peak = Math.max(peak, ++running);
        else if (line.startsWith('e ')) running--;
      }
    } else {
      const calls = readStandInLog(env['FTE_STAND_IN_LOG'] as string);
      const points = calls.flatMap((c) => [[c.startMs, 1], [c.endMs ?? c.startMs, -1]] as Array<[number, number]>);
      points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let running = 0;
      for (const [, d] of points) peak = Math.max(peak, (running += d));
      for (const id of new Set(calls.map((c) => c.taskId))) if (calls.filter((c) => c.taskId === id).length > 1) ranTwice.push(`${id} (agent)`);
    }

    // ---- Latencies from the event stream.
    const at = (l: EventLine): number => Date.parse(l.at);
    const admitted = new Map<string, number>();
    const admissionToDispatch: number[] = [];
    const slotToDispatch: number[] = [];
    let lastCompletion: number | null = null;
    let running = 0;
    let firstEvent: number | null = null;
    let lastAdmission = 0;
    for (const l of o.lines) {
      firstEvent ??= at(l);
      if (l.event === 'admitted' && l.taskId) {
        admitted.set(l.taskId, at(l));
        lastAdmission = at(l);
      } else if (l.event === 'dispatch' && l.taskId) {
        const a = admitted.get(l.taskId);
        if (a !== undefined) admissionToDispatch.push(at(l) - a);
        if (running >= options.concurrency - 1 && lastCompletion !== null) slotToDispatch.push(Math.max(0, at(l) - lastCompletion));
        running++;
      } else if (l.event === 'done' || l.event === 'failed') {
        running--;
        lastCompletion = at(l);
      }
    }

    const byDecile: Array<{ decile: number; p50: number; p99: number }> = [];
    for (let d = 0; d < 10; d++) {
      const lo = (d * options.tasks) / 10;
      const hi = ((d + 1) * options.tasks) / 10;
      const s = dashboardMs.filter((_, i) => (apiAt[i] as number) >= lo && (apiAt[i] as number) < hi);
      byDecile.push({ decile: d + 1, p50: percentile(s, 50), p99: percentile(s, 99) });
    }
    const firstTask = memory.find((m) => m.done >= 1) ?? memory[0];
    const lastTask = [...memory].reverse().find((m) => m.done >= options.tasks) ?? memory.at(-1);
    const rss = memory.map((m) => m.rssKiB).filter((k) => k > 0);
    const report: LoadReport = {
      tasks: options.tasks,
      concurrency: options.concurrency,
      wallMs,
      intakeMs: lastAdmission - (firstEvent ?? lastAdmission),
      done: dump.tasks.filter((t) => t.state === 'done').length,
      terminalOnce: notExactlyOneTerminal.length === 0,
      notExactlyOneTerminal,
      ranTwice,
      peakConcurrency: peak,
      admissionToDispatch,
      slotToDispatch,
      api: { samples: dashboardMs.length, failures, failureSamples, dashboardMs, statusMs, byDecile },
      memory: { firstTaskKiB: firstTask?.rssKiB ?? 0, lastTaskKiB: lastTask?.rssKiB ?? 0, minKiB: Math.min(...rss), maxKiB: Math.max(...rss), samples: memory },
      table: '',
    };
    report.table = render(report, options);
    return report;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function fmt(ms: number): string {
  return Number.isNaN(ms) ? '-' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

function deciles(values: number[]): string[] {
  const out: string[] = [];
  for (let d = 0; d < 10; d++) {
    const part = values.slice(Math.floor((d * values.length) / 10), Math.floor(((d + 1) * values.length) / 10));
    out.push(part.length ? `${fmt(percentile(part, 50))}/${fmt(Math.max(...part))}` : '-');
  }
  return out;
}

function render(r: LoadReport, options: LoadOptions): string {
  const agent = options.agent.kind === 'noop' ? `no-op shell agent${options.agent.delayMs ? ` (${options.agent.delayMs} ms)` : ''}` : `stand-in agent, ${options.agent.delayMs} ms of work per run`;
  const mem = (deciles: number[]): string[] =>
    deciles.map((d) => {
      const s = r.memory.samples.filter((m) => m.done >= (d * r.tasks) / 10);
      return s.length ? `${Math.round((s[0] as { rssKiB: number }).rssKiB / 1024)} MiB` : '-';
    });
  const head = ['', ...Array.from({ length: 10 }, (_, i) => `${(i + 1) * 10}%`)];
  return [
    `load: ${r.tasks} tasks, ${r.concurrency} concurrent, ${agent}: ${(r.wallMs / 1000).toFixed(1)} s wall (intake of the notes ${fmt(r.intakeMs)}), ` +
      `${r.done} done, peak ${r.peakConcurrency} running (cap ${r.concurrency}), ${r.notExactlyOneTerminal.length} tasks not in exactly one terminal state, ` +
      `${r.ranTwice.length} run twice`,
    `API: ${r.api.samples} GET /dashboard, p50 ${fmt(percentile(r.api.dashboardMs, 50))}, p99 ${fmt(percentile(r.api.dashboardMs, 99))}, max ${fmt(Math.max(...r.api.dashboardMs))}; ` +
      `GET /status p50 ${fmt(percentile(r.api.statusMs, 50))}, p99 ${fmt(percentile(r.api.statusMs, 99))}; ${r.api.failures} failed requests` +
      (r.api.failureSamples.length ? ` (first: ${r.api.failureSamples.join(' | ')})` : ''),
    `memory (orchestrator RSS): at the first completion ${Math.round(r.memory.firstTaskKiB / 1024)} MiB, at the last ${Math.round(r.memory.lastTaskKiB / 1024)} MiB, ` +
      `range ${Math.round(r.memory.minKiB / 1024)}–${Math.round(r.memory.maxKiB / 1024)} MiB`,
    table(head, [
      ['admission→dispatch p50/max (by dispatch order)', ...deciles(r.admissionToDispatch)],
      ['free slot→dispatch p50/max', ...deciles(r.slotToDispatch)],
      ['GET /dashboard p50', ...r.api.byDecile.map((d) => fmt(d.p50))],
      ['GET /dashboard p99', ...r.api.byDecile.map((d) => fmt(d.p99))],
      ['RSS when this share was done', ...mem([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])],
    ]),
  ].join('\n');
}
