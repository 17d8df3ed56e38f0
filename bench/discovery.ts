import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { validateConfig, type Config } from '../lib/core/config.ts';
import { EngineUnderTest, Scratch, sleep, writeNoopAgent, writeNote } from './harness.ts';
import { formatMs, mean, percentile, printTable, sum, type Row } from './table.ts';

/**
 * Discovery latency of a dropped file: a running in-process Engine on a temporary vault; notes are written into
 * Needs_Action/ one at a time (each after a random pause, so drops land at random phases of the loop's timers), and
 * the latency is the time from the write to the engine logging `admitted` for that note. The stop file is present,
 * so nothing is dispatched and the measurement is discovery and admission only (parse, snapshot, store insert).
 * The baseline is the safety-net sweep: discovery by polling alone, every poll_interval, has a latency uniform on
 * [0, poll_interval] (p50 = poll_interval/2); those rows are analytic, not measured.
 */

interface Variant {
  name: string;
  backlog: number;
}

interface VariantResult {
  latencies: number[];
  missed: number;
  ticksPerDrop: number;
  bulkIntakeMs: number | null;
  idle: { seconds: number; ticks: number; cpuPercent: number };
}

async function runVariant(variant: Variant, drops: number, idleMs: number, config: Config, seed: number): Promise<VariantResult> {
  const scratch = new Scratch('discovery');
  const vault = scratch.path('vault');
  const eut = new EngineUnderTest(vault, config);
  try {
    // The stop file keeps the queue from being worked on: this measures discovery, not dispatch.
    writeFileSync(scratch.path('vault', config.orchestrator.stop_hook_file), '');
    for (let i = 0; i < variant.backlog; i++) writeNote(vault, `backlog-${String(i).padStart(6, '0')}`);
    void eut.start();

    let bulkIntakeMs: number | null = null;
    if (variant.backlog > 0) {
      const deadline = performance.now() + 120_000;
      while (eut.count('admitted') < variant.backlog && performance.now() < deadline) await sleep(5);
      const last = eut.events.filter((e) => e.event.event === 'admitted').at(-1);
      bulkIntakeMs = last === undefined ? null : last.t - eut.startedAt;
    }
    await sleep(200);

    // Longer than the loop's own timers: a drop the watch missed is still found by the sweep, and shows up as such.
    const timeoutMs = config.orchestrator.poll_interval * 1000 + 5000;
    let random = seed;
    const next = (): number => {
      random = (random * 1103515245 + 12345) % 2147483648;
      return random / 2147483648;
    };
    const latencies: number[] = [];
    let missed = 0;
    const ticksBefore = eut.ticks;
    for (let i = 0; i < drops; i++) {
      await sleep(20 + next() * 100);
      const id = `drop-${String(i).padStart(5, '0')}`;
      const admitted = eut.waitFor('admitted', id, timeoutMs);
      const t0 = performance.now();
      writeNote(vault, id);
      const event = await admitted;
      if (event === null) missed++;
      else latencies.push(event.t - t0);
    }
    const ticksPerDrop = (eut.ticks - ticksBefore) / drops;

    // An idle engine should sleep: count its loop turns and CPU while nothing happens.
    await sleep(300);
    const idleTicks0 = eut.ticks;
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    await sleep(idleMs);
    const cpu = process.cpuUsage(cpu0);
    const wall = performance.now() - wall0;
    const idle = {
      seconds: wall / 1000,
      ticks: eut.ticks - idleTicks0,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100,
    };
    return { latencies, missed, ticksPerDrop, bulkIntakeMs, idle };
  } finally {
    await eut.stop();
    scratch.cleanup();
  }
}

export async function benchDiscovery(options: { quick: boolean }): Promise<Row[]> {
  const drops = options.quick ? 20 : 100;
  const backlog = options.quick ? 200 : 2000;
  const idleMs = options.quick ? 1000 : 10_000;
  const scratch = new Scratch('agent');
  // The default loop timers (poll_interval 30 s, heartbeat_interval 5 s): what a user gets.
  const config = validateConfig({ orchestrator: { claude_command: writeNoopAgent(scratch.dir) } });
  const poll = config.orchestrator.poll_interval * 1000;
  const wakeEvery = Math.min(poll, config.orchestrator.heartbeat_interval * 1000);

  const variants: Variant[] = [
    { name: 'watch, empty queue', backlog: 0 },
    { name: `watch, ${backlog} already queued`, backlog },
  ];
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    for (const [i, variant] of variants.entries()) {
      const r = await runVariant(variant, drops, idleMs, config, 7 + i);
      rows.push({
        name: variant.name,
        n: r.latencies.length,
        total: sum(r.latencies),
        perItem: mean(r.latencies),
        p50: percentile(r.latencies, 50),
        p95: percentile(r.latencies, 95),
        max: r.latencies.length > 0 ? Math.max(...r.latencies) : undefined,
        extra: { missed: String(r.missed), 'ticks/drop': r.ticksPerDrop.toFixed(1) },
      });
      if (r.bulkIntakeMs !== null) {
        notes.push(
          `Start-up intake of the ${variant.backlog} queued notes: ${formatMs(r.bulkIntakeMs)} ` +
            `(${formatMs(r.bulkIntakeMs / variant.backlog)} per note, ${(variant.backlog / (r.bulkIntakeMs / 1000)).toFixed(0)} notes/s).`,
        );
      }
      notes.push(
        `Idle engine (${variant.name}): ${r.idle.ticks} loop turns in ${r.idle.seconds.toFixed(1)} s, ` +
          `process CPU ${r.idle.cpuPercent.toFixed(1)}% of one core.`,
      );
    }
  } finally {
    scratch.cleanup();
  }
  const uniform = (period: number): Partial<Row> => ({ perItem: period / 2, p50: period / 2, p95: period * 0.95, max: period });
  rows.push({ name: `sweep only, loop wake ${wakeEvery / 1000} s (analytic)`, n: '-', ...uniform(wakeEvery) });
  rows.push({ name: `sweep only, poll_interval ${poll / 1000} s (analytic)`, n: '-', baseline: true, ...uniform(poll) });

  printTable(rows, {
    title: 'Discovery latency of a dropped note (write to Needs_Action/ → engine logs `admitted`)',
    ratioLabel: 'p50 ÷ p50 of discovery by the poll_interval sweep alone (total = sum of latencies, per item = mean)',
    ratioOf: (r) => r.p50,
    notes: [
      `${drops} notes dropped one at a time, 20–120 ms apart, stop file present (nothing dispatched), default loop timers.`,
      `"ticks/drop" = loop turns per dropped note. The loop also wakes every min(poll_interval, heartbeat_interval) =`,
      `${wakeEvery / 1000} s and every turn sweeps Needs_Action/, so without the watch the effective sweep is ${wakeEvery / 1000} s, not ${poll / 1000} s.`,
      ...notes,
    ],
  });
  return rows;
}
