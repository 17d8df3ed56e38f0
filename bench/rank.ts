import { performance } from 'node:perf_hooks';
import { validateConfig, type Config } from '../lib/core/config.ts';
import { compareRanked, rankTasks, scoreTask, type ScoringInput } from '../lib/core/scoring.ts';
import type { Level } from '../lib/core/task.ts';
import { percentile, printTable, type Row } from './table.ts';
import { mulberry32 as prng } from '../test/prng.ts';

/**
 * Time to rank a queue with the core scorer (`rankTasks`: score every task, then sort by score, age and id) at 1k, 10k
 * and 100k queued tasks. The ratio column is the time of one ranking against the 1k one; an n·log n sort predicts
 * ×(n log n)/(1000 log 1000), a linear pass ×n/1000.
 */

type Synthetic = ScoringInput & { id: string };

const DAY_MS = 86_400_000;


/** Sender lists of a plausible size, so the sender lookup does real work. */
export function rankConfig(): Config {
  return validateConfig({
    vip_senders: ['ceo@acme.com', 'cfo@acme.com', '@board.acme.com'],
    client_senders: ['@globex.com', '@initech.com', '@umbrella.com', 'buyer@hooli.com', '@stark.io'],
    team_domains: ['@acme.com', 'acme.dev'],
    known_senders: Array.from({ length: 10 }, (_, i) => `contact${i}@partners.example`),
  });
}

const SENDERS: Array<string | null> = [
  null,
  'ceo@acme.com',
  'ops@board.acme.com',
  'alice@globex.com',
  'buyer@hooli.com',
  'dev@acme.com',
  'contact3@partners.example',
  'someone@gmail.com',
  'newsletter@mail.shop.example',
];

export function syntheticQueue(n: number, now: Date, seed = 42): Synthetic[] {
  const random = prng(seed + n);
  const tasks: Synthetic[] = [];
  for (let i = 0; i < n; i++) {
    const hasDeadline = random() < 0.6;
    tasks.push({
      id: `task-${String(i).padStart(7, '0')}`,
      urgency: (1 + Math.floor(random() * 5)) as Level,
      deadline: hasDeadline ? new Date(now.getTime() + (random() * 60 - 10) * DAY_MS) : null,
      sender: SENDERS[Math.floor(random() * SENDERS.length)] ?? null,
      // Up to 30 days of waiting, in whole seconds, so equal scores with equal ages (the id tie-break) happen too.
      created: new Date(now.getTime() - Math.floor(random() * 30 * 86_400) * 1000),
    });
  }
  return tasks;
}

/** Repetitions per size: enough samples for p95 while keeping the whole section to a few seconds. */
function repetitions(n: number, quick: boolean): number {
  if (n <= 1000) return quick ? 50 : 300;
  if (n <= 10_000) return quick ? 10 : 40;
  return quick ? 4 : 12;
}

function measure(reps: number, fn: () => void): number[] {
  fn(); // warm-up: JIT and the first allocation of the arrays
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return samples;
}

function row(name: string, n: number, samples: number[], extra: Record<string, string> = {}, baseline = false): Row {
  const p50 = percentile(samples, 50);
  return {
    name,
    n,
    total: p50,
    perItem: p50 / n,
    p50,
    p95: percentile(samples, 95),
    max: Math.max(...samples),
    baseline,
    extra: { reps: String(samples.length), ...extra },
  };
}

export async function benchRank(options: { quick: boolean }): Promise<Row[]> {
  const config = rankConfig();
  const now = new Date('2026-11-26T12:00:00Z');
  const sizes = [1000, 10_000, 100_000];
  const nlogn = (n: number): number => n * Math.log2(n);
  const rows: Row[] = [];
  let sink = 0;
  for (const n of sizes) {
    const queue = syntheticQueue(n, now);
    const samples = measure(repetitions(n, options.quick), () => {
      const ranked = rankTasks(queue, now, config);
      sink += ranked.length;
    });
    rows.push(
      row(`rankTasks ${n / 1000}k`, n, samples, {
        'n log n predicts': `×${(nlogn(n) / nlogn(sizes[0] as number)).toFixed(1)}`,
        'linear predicts': `×${(n / (sizes[0] as number)).toFixed(0)}`,
      }, n === sizes[0]),
    );
  }
  // Where the 100k time goes: the scoring pass alone, and the sort of already-scored tasks alone.
  const big = syntheticQueue(100_000, now);
  const scoreOnly = measure(repetitions(100_000, options.quick), () => {
    for (const t of big) sink += scoreTask(t, now, config).score;
  });
  rows.push(row('  of which scoreTask pass', 100_000, scoreOnly));
  const scored = big.map((task) => ({ id: task.id, created: task.created, score: scoreTask(task, now, config).score }));
  const sortOnly = measure(repetitions(100_000, options.quick), () => {
    const copy = scored.slice();
    copy.sort(compareRanked);
    sink += copy.length;
  });
  rows.push(row('  of which sort (compareRanked)', 100_000, sortOnly));
  if (sink === -1) console.log(''); // keeps the work observable so it is not optimised away

  printTable(rows, {
    title: 'Ranking the queue (lib/core/scoring.ts rankTasks, synthetic tasks)',
    ratioLabel: 'p50 time of one ranking ÷ p50 of the 1k ranking (total = p50 of one call, per item = total ÷ n)',
    ratioOf: (r) => r.p50,
    notes: [
      'Inputs: urgency 1–5, 60% with a deadline (−10…+50 days), 9 senders against 3 VIP / 5 client / 2 team / 10 known',
      'patterns, created up to 30 days ago. "of which" rows split the 100k ranking into its scoring pass and its sort.',
    ],
  });
  return rows;
}
