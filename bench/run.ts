import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { benchCrashTrials } from './crash-trials.ts';
import { benchDiscovery } from './discovery.ts';
import { benchDispatch } from './dispatch.ts';
import { benchLoad } from './load.ts';
import { benchObservability } from './observability.ts';
import { benchRank } from './rank.ts';

/**
 * `npm run bench [-- --quick] [-- --only discovery,rank,dispatch,observability]`: the benchmarks issue 3 asks for —
 * discovery latency of a dropped file, time to rank 100k queued tasks, dispatch overhead per task with a no-op agent —
 * and issue 4's observability figures (metrics over 1M events; dashboard, queue and status API latency and the
 * Prometheus scrape at 10k tasks). Each prints a table whose ratio column compares its rows against a baseline row
 * (observability: against its target). `--quick` runs small sizes (under a minute).
 * Benchmarks, not tests: nothing here asserts a time.
 */

const SECTIONS = {
  discovery: benchDiscovery,
  rank: benchRank,
  dispatch: benchDispatch,
  observability: benchObservability,
  // Issue 7: kill -9 crash trials (200 tasks × 20 kills) and the load/scale runs; the scale run takes tens of minutes.
  crash: benchCrashTrials,
  load: benchLoad,
} as const;
type Section = keyof typeof SECTIONS;

function usage(): never {
  console.error('usage: npm run bench -- [--quick] [--only discovery,rank,dispatch,observability,crash,load]');
  process.exit(2);
}

function parseArgs(argv: string[]): { quick: boolean; only: Section[] } {
  let quick = false;
  let only = Object.keys(SECTIONS) as Section[];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--quick') quick = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      if (value === undefined) usage();
      const names = value.split(',').map((s) => s.trim()).filter(Boolean);
      if (names.length === 0 || names.some((s) => !(s in SECTIONS))) usage();
      only = names as Section[];
    } else if (arg === '--help' || arg === '-h') usage();
    else usage();
  }
  return { quick, only };
}

function tmpFilesystem(): string {
  try {
    return execFileSync('df', ['-T', tmpdir()], { encoding: 'utf8' }).trim().split('\n').at(-1)?.split(/\s+/)[1] ?? '?';
  } catch {
    return '?';
  }
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
}

async function main(): Promise<void> {
  const { quick, only } = parseArgs(process.argv.slice(2));
  const cpu = cpus();
  console.log(`fte benchmarks${quick ? ' (--quick)' : ''}: ${only.join(', ')}`);
  console.log(
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
      `${process.platform} ${release()}, Node ${process.version}, temp dir ${tmpdir()} on ${tmpFilesystem()}`,
  );
  console.log(`date: ${new Date().toISOString()}, load average ${loadAverage()} (other work on the machine skews the figures)\n`);
  const t0 = performance.now();
  for (const name of only) {
    await SECTIONS[name]({ quick });
  }
  console.log(`all benchmarks: ${((performance.now() - t0) / 1000).toFixed(1)} s; load average at the end ${loadAverage()}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
