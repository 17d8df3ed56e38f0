import { pathToFileURL } from 'node:url';
import { mustBeZero, runCrashTrials } from '../test/hardening/crash-trials.ts';

/**
 * Crash trials at the size issue 7 asks for: 200 tasks with random outcomes, kill -9 of the orchestrator 20 times at
 * random moments, restart, then let it finish. `--quick`: 40 tasks × 5 kills (the CI size of
 * test/hardening/crash-trials.test.ts). `--seed N` replays a run. Prints the table; exits 1 when a must-be-zero check
 * is not zero (when run on its own).
 */
export async function benchCrashTrials(options: { quick: boolean; seed?: number }): Promise<boolean> {
  const size = options.quick ? { tasks: 40, kills: 5 } : { tasks: 200, kills: 20 };
  console.log(`\n## crash trials: ${size.tasks} tasks, ${size.kills} × kill -9 (fte orchestrator run as a process, stand-in agent)\n`);
  const report = await runCrashTrials({
    ...size,
    concurrency: 5,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    log: (line) => console.log(`  ${line}`),
  });
  console.log(`\n${report.table}\n`);
  const failures = Object.entries(mustBeZero(report)).filter(([, v]) => v.length > 0);
  for (const [name, items] of failures) console.log(`NOT ZERO: ${name}: ${items.slice(0, 10).join('; ')}`);
  const reexec = report.reexecutions.slice(0, 10).map((r) => `${r.taskId} (${r.cause}${r.endToKillMs === null ? '' : `, ${r.endToKillMs} ms`})`);
  if (reexec.length) console.log(`re-executions (first 10): ${reexec.join('; ')}`);
  if (report.requeuedUnknown.length) console.log(`requeued as unknown (first 10): ${report.requeuedUnknown.slice(0, 10).join('; ')}`);
  return failures.length === 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const seedAt = args.indexOf('--seed');
  const ok = await benchCrashTrials({
    quick: args.includes('--quick'),
    ...(seedAt >= 0 ? { seed: Number(args[seedAt + 1]) } : {}),
  });
  process.exit(ok ? 0 : 1);
}
