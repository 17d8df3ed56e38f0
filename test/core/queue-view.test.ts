import { describe, expect, it } from 'vitest';
import type { QueueCandidate, QueueRow } from '../../lib/core/queue-view.ts';
import { buildQueueView, etaSeconds, formatQueueTable, medianMs, truncate } from '../../lib/core/queue-view.ts';

const NOW = Date.parse('2025-03-10T12:00:00.000Z');
const now = new Date(NOW);
const ESC = '\u001b';

function candidate(i: number, overrides: Partial<QueueCandidate> = {}): QueueCandidate {
  return {
    id: `task-${i}`,
    title: `Task number ${i}`,
    type: 'general',
    score: 5 - i / 10,
    breakdown: { urgency: 3, deadline: 2, sender: 4, ageBoost: 0.1 },
    queuedAt: new Date(NOW - 60_000 * i),
    approvalRequired: false,
    approvalReasons: [],
    ...overrides,
  };
}

const candidates = (n: number) => Array.from({ length: n }, (_, i) => candidate(i + 1));

function etas(n: number, running: number, concurrency: number, recentDurationsMs: number[]): Array<number | null> {
  return buildQueueView({ ranked: candidates(n), now, running, concurrency, recentDurationsMs }).map((r) => r.etaSeconds);
}

// The median of these is 600 000 ms = 600 s (D); "half done" running tasks free their slots at 300 s.
const TEN_MINUTES = [900_000, 300_000, 600_000];

describe('ETA', () => {
  it('concurrency 1, nothing running: one run after another', () => {
    expect(etas(3, 0, 1, TEN_MINUTES)).toEqual([600, 1200, 1800]);
  });

  it('concurrency 1, one running: the first waits for the half-done run', () => {
    // p1: starts at 300 when the running task ends, finishes at 900; p2 at 1500; p3 at 2100.
    expect(etas(3, 1, 1, TEN_MINUTES)).toEqual([900, 1500, 2100]);
  });

  it('concurrency 1, two running (cap lowered mid-flight): both end at 300, then one at a time', () => {
    expect(etas(2, 2, 1, TEN_MINUTES)).toEqual([900, 1500]);
  });

  it('concurrency 3, nothing running: waves of three', () => {
    expect(etas(7, 0, 3, TEN_MINUTES)).toEqual([600, 600, 600, 1200, 1200, 1200, 1800]);
  });

  it('concurrency 3, two running', () => {
    // Slots free at [300, 300, 0]. p1 takes the free slot → 600; p2, p3 start at 300 → 900;
    // p4 starts at 600 → 1200; p5, p6 start at 900 → 1500; p7 starts at 1200 → 1800.
    expect(etas(7, 2, 3, TEN_MINUTES)).toEqual([600, 900, 900, 1200, 1500, 1500, 1800]);
  });

  it('matches the closed form directly', () => {
    expect(etaSeconds(1, 0, 1, 600_000)).toBe(600);
    expect(etaSeconds(5, 2, 3, 600_000)).toBe(1500);
    // D = 1001 ms, one running, one slot: 2·1001 − 500.5 = 1501.5 ms → 2 s.
    expect(etaSeconds(1, 1, 1, 1001)).toBe(2);
  });

  it('uses the median, the mean of the middle two for an even count', () => {
    expect(medianMs([500_000, 700_000])).toBe(600_000);
    expect(medianMs([1, 100, 5])).toBe(5);
    expect(etas(1, 0, 1, [500_000, 700_000])).toEqual([600]);
  });

  it('is null without recent durations, never a made-up number', () => {
    expect(etas(3, 0, 2, [])).toEqual([null, null, null]);
    expect(etas(1, 0, 2, [Number.NaN, -5])).toEqual([null]);
    expect(medianMs([])).toBeNull();
  });

  it('rejects a concurrency that is not a positive integer', () => {
    expect(() => etas(1, 0, 0, TEN_MINUTES)).toThrow(RangeError);
    expect(() => etas(1, 0, 1.5, TEN_MINUTES)).toThrow(RangeError);
  });
});

describe('buildQueueView', () => {
  it('numbers rows from 1 and carries the candidate fields', () => {
    const rows = buildQueueView({ ranked: candidates(2), now, running: 0, concurrency: 1, recentDurationsMs: [] });
    expect(rows.map((r) => r.position)).toEqual([1, 2]);
    expect(rows[0]).toMatchObject({
      id: 'task-1',
      title: 'Task number 1',
      type: 'general',
      score: 4.9,
      breakdown: { urgency: 3, deadline: 2, sender: 4, ageBoost: 0.1 },
      approvalRequired: false,
      approvalReasons: [],
    });
  });

  it('wait is whole seconds since queued, never negative', () => {
    const rows = buildQueueView({
      ranked: [
        candidate(1, { queuedAt: new Date(NOW - 3_725_900) }),
        candidate(2, { queuedAt: new Date(NOW + 5_000) }),
        candidate(3, { queuedAt: new Date(NOW) }),
      ],
      now,
      running: 0,
      concurrency: 1,
      recentDurationsMs: [],
    });
    expect(rows.map((r) => r.waitSeconds)).toEqual([3725, 0, 0]);
  });

  it('returns no rows for an empty queue', () => {
    expect(buildQueueView({ ranked: [], now, running: 3, concurrency: 2, recentDurationsMs: [1] })).toEqual([]);
  });
});

function sampleRows(): QueueRow[] {
  return buildQueueView({
    ranked: [
      candidate(1, {
        id: 'wire-acme',
        title: 'Wire the Q1 payment to ACME Corp before the end of the quarter please',
        score: 5.5,
        breakdown: { urgency: 5, deadline: 5, sender: 5, ageBoost: 0.5 },
        queuedAt: new Date(NOW - 12_000_000),
        approvalRequired: true,
        approvalReasons: ['tasks of type "payment" always need approval', 'mentions "wire"'],
      }),
      candidate(2, {
        id: 'weekly-report',
        title: 'Weekly report',
        score: 3.25,
        breakdown: { urgency: 3, deadline: 1, sender: 3, ageBoost: 0.25 },
        queuedAt: new Date(NOW - 300_000),
      }),
    ],
    now,
    running: 0,
    concurrency: 1,
    recentDurationsMs: [600_000],
  });
}

describe('formatQueueTable', () => {
  it('renders an aligned table with ids, scores, waits and ETAs', () => {
    const text = formatQueueTable(sampleRows(), { verbose: false, color: false });
    expect(text).toBe(
      [
        '#  ID             TITLE                                     SCORE    WAIT  ETA',
        '1  wire-acme      Wire the Q1 payment to ACME Corp before…   5.50  3h 20m  10m',
        '2  weekly-report  Weekly report                              3.25      5m  20m',
      ].join('\n'),
    );
  });

  it('truncates titles to 40 characters with an ellipsis', () => {
    const title = truncate('Wire the Q1 payment to ACME Corp before the end of the quarter please', 40);
    expect(Array.from(title)).toHaveLength(40);
    expect(title.endsWith('…')).toBe(true);
    expect(truncate('short', 40)).toBe('short');
    expect(truncate('x'.repeat(40), 40)).toBe('x'.repeat(40));
    expect(truncate('😀'.repeat(41), 40)).toBe(`${'😀'.repeat(39)}…`);
  });

  it('shows — for an unknown ETA', () => {
    const rows = buildQueueView({ ranked: candidates(1), now, running: 0, concurrency: 1, recentDurationsMs: [] });
    const [, line] = formatQueueTable(rows, { verbose: false, color: false }).split('\n');
    expect(line?.endsWith('—')).toBe(true);
  });

  it('has no escape codes at all when color is off, even for approval rows', () => {
    for (const verbose of [false, true]) {
      expect(formatQueueTable(sampleRows(), { verbose, color: false })).not.toContain(ESC);
    }
  });

  it('paints only approval rows yellow when color is on', () => {
    const lines = formatQueueTable(sampleRows(), { verbose: false, color: true }).split('\n');
    expect(lines[0]).not.toContain(ESC);
    expect(lines[1]?.startsWith(`${ESC}[33m1  wire-acme`)).toBe(true);
    expect(lines[1]?.endsWith(`10m${ESC}[39m`)).toBe(true);
    expect(lines[2]).not.toContain(ESC);
  });

  it('adds breakdown and approval columns when verbose', () => {
    const lines = formatQueueTable(sampleRows(), { verbose: true, color: false }).split('\n');
    expect(lines[0]).toMatch(/SCORE +WAIT +ETA +U +D +S +AGE +APPROVAL$/);
    expect(lines[1]).toMatch(
      / 5\.50 +3h 20m +10m +5 +5 +5 +\+0\.50 +tasks of type "payment" always need approval; mentions "wire"$/,
    );
    expect(lines[2]).toMatch(/ 3\.25 +5m +20m +3 +1 +3 +\+0\.25 +—$/);
    // Every row's APPROVAL cell starts under the header.
    const column = lines[0]?.indexOf('APPROVAL');
    expect(lines[1]?.indexOf('tasks of type')).toBe(column);
    expect(lines[2]?.indexOf('—', 60)).toBe(column);
  });

  it('says so when the queue is empty', () => {
    expect(formatQueueTable([], { verbose: false, color: true })).toBe('Queue is empty.');
  });
});
