import { pathToFileURL } from 'node:url';
import { runLoad } from '../test/hardening/load.ts';

/**
 * Load runs of issue 7, `fte orchestrator run` as its own process with its HTTP API on:
 *   seed load  — 100 tasks, 10 concurrent, stand-in agent (300 ms of work per run): dispatch latency, /dashboard
 *                latency and orchestrator memory from the first task to the last;
 *   scale run  — 10,000 tasks, 50 concurrent, a no-op agent that stays 200 ms: every task ends in exactly one terminal state, the cap is
 *                never exceeded, API p99 and memory printed.
 * `--quick`: the seed load and a 1,000-task scale run. `--scale-tasks N` sets the scale run's size.
 * Benchmarks, not tests: nothing here asserts a time; the behavioural checks fail the run (exit 1 when run alone).
 */
export async function benchLoad(options: { quick: boolean; scaleTasks?: number }): Promise<boolean> {
  let ok = true;
  console.log('\n## load: 100 tasks, 10 concurrent, stand-in agent\n');
  const seed = await runLoad({ tasks: 100, concurrency: 10, agent: { kind: 'stand-in', delayMs: 300 }, pollMs: 100, log: (l) => console.log(`  ${l}`) });
  console.log(seed.table);
  ok &&= seed.done === 100 && seed.terminalOnce && seed.ranTwice.length === 0 && seed.peakConcurrency <= 10 && seed.api.failures === 0;

  const n = options.scaleTasks ?? (options.quick ? 1000 : 10_000);
  // The agent stays 200 ms, so 50 runs overlap and the cap is reached; an instant one never fills the slots.
  console.log(`\n## scale run: ${n} tasks, 50 concurrent, no-op agent (200 ms)\n`);
  const scale = await runLoad({ tasks: n, concurrency: 50, agent: { kind: 'noop', delayMs: 200 }, pollMs: 250, timeoutMs: 4 * 3600_000, log: (l) => console.log(`  ${l}`) });
  console.log(scale.table);
  ok &&= scale.done === n && scale.terminalOnce && scale.ranTwice.length === 0 && scale.peakConcurrency <= 50 && scale.api.failures === 0;
  if (!ok) console.log('NOT OK: a behavioural check failed (see the lines above)');
  return ok;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--scale-tasks');
  const ok = await benchLoad({ quick: args.includes('--quick'), ...(at >= 0 ? { scaleTasks: Number(args[at + 1]) } : {}) });
  process.exit(ok ? 0 : 1);
}
