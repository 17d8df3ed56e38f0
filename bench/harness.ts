import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { defaultConfig, type Config } from '../lib/core/config.ts';
import { Engine, type EngineEvent } from '../lib/local/engine.ts';
import { TaskService } from '../lib/local/task-service.ts';

/** A scratch directory under the OS temp dir, removed by `cleanup`. */
export class Scratch {
  readonly dir: string;

  constructor(label: string) {
    this.dir = mkdtempSync(join(tmpdir(), `fte-bench-${label}-`));
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The result a successful headless Claude run prints. Its text carries the completion promise: an execute run whose
 * reply lacks `orchestrator.completion_promise` is resumed (up to `max_iterations` times) and then failed, so a no-op
 * agent that should finish in one run has to say it.
 */
export function noopResult(completionPromise: string): string {
  return JSON.stringify({
    type: 'result',
    subtype: 'success',
    is_error: false,
    result: `ok ${completionPromise}`,
    session_id: 's',
    total_cost_usd: 0,
    num_turns: 1,
    duration_ms: 1,
  });
}

/**
 * A no-op agent: a POSIX shell script that ignores its arguments, prints one successful Claude result and exits 0.
 * A shell script rather than a Node one, so the agent's own start-up (~40 ms for Node) does not hide fte's overhead.
 */
export function writeNoopAgent(dir: string, completionPromise = defaultConfig().orchestrator.completion_promise): string {
  const path = join(dir, 'noop-claude');
  const result = noopResult(completionPromise);
  if (result.includes("'")) throw new Error('the no-op result must not contain a single quote');
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' '${result}'\nexit 0\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A task note that needs no approval under the default policy (no approval keywords, type `general`). */
export function noteText(id: string): string {
  return `---\ntitle: "Benchmark note ${id}"\nurgency: 3\n---\nSummarise the weekly numbers for ${id}. Nothing else.\n`;
}

export function writeNote(vault: string, id: string): void {
  mkdirSync(join(vault, 'Needs_Action'), { recursive: true });
  writeFileSync(join(vault, 'Needs_Action', `${id}.md`), noteText(id));
}

export interface TimedEvent {
  /** performance.now() when the engine logged it. */
  t: number;
  event: EngineEvent;
}

type Waiter = { event: string; taskId: string; resolve: (e: TimedEvent) => void };

/**
 * An in-process Engine on a vault, with every log event time-stamped by performance.now() as it is emitted, and the
 * number of loop turns counted (by wrapping `tick` on the instance; lib/ is not changed).
 */
export class EngineUnderTest {
  readonly service: TaskService;
  readonly engine: Engine;
  readonly events: TimedEvent[] = [];
  ticks = 0;
  startedAt = 0;
  endedAt = 0;
  private runPromise: Promise<void> | null = null;
  private waiters: Waiter[] = [];

  constructor(vault: string, config: Config, options: { once?: boolean } = {}) {
    this.service = TaskService.open(vault, config);
    this.engine = new Engine(this.service, {
      ...(options.once === undefined ? {} : { once: options.once }),
      log: (event) => this.onEvent(event),
    });
    const tick = this.engine.tick.bind(this.engine);
    this.engine.tick = async () => {
      this.ticks++;
      await tick();
    };
  }

  private onEvent(event: EngineEvent): void {
    const timed = { t: performance.now(), event };
    this.events.push(timed);
    if (event.taskId === undefined) return;
    const matched = this.waiters.filter((w) => w.event === event.event && w.taskId === event.taskId);
    if (matched.length === 0) return;
    this.waiters = this.waiters.filter((w) => !matched.includes(w));
    for (const w of matched) w.resolve(timed);
  }

  /** Start `engine.run()` in the background; `finished` resolves when it returns. */
  start(): Promise<void> {
    this.startedAt = performance.now();
    this.runPromise = this.engine.run().finally(() => {
      this.endedAt = performance.now();
    });
    return this.runPromise;
  }

  /** Resolve with the first `event` for `taskId` logged after this call, or null after `timeoutMs`. */
  waitFor(event: string, taskId: string, timeoutMs: number): Promise<TimedEvent | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(null);
      }, timeoutMs);
      const waiter: Waiter = {
        event,
        taskId,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  count(event: string): number {
    return this.events.filter((e) => e.event.event === event).length;
  }

  /** Graceful shutdown (what SIGTERM does), then close the store. */
  async stop(): Promise<void> {
    if (this.runPromise !== null) {
      if (this.endedAt === 0) this.engine.requestShutdown();
      await this.runPromise;
    }
    await this.service.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
