import { formatSeconds } from './duration.ts';

/** A waiting task as the ranking produced it, already in rank order. */
export interface QueueCandidate {
  id: string;
  title: string;
  type: string;
  score: number;
  breakdown: { urgency: number; deadline: number; sender: number; ageBoost: number };
  queuedAt: Date;
  approvalRequired: boolean;
  approvalReasons: readonly string[];
}

export interface QueueRow {
  /** 1-based rank. */
  position: number;
  id: string;
  title: string;
  type: string;
  score: number;
  breakdown: { urgency: number; deadline: number; sender: number; ageBoost: number };
  waitSeconds: number;
  /** Estimated seconds until the task finishes; null when there is no recent run to estimate from. */
  etaSeconds: number | null;
  approvalRequired: boolean;
  approvalReasons: readonly string[];
}

export interface QueueViewInput {
  ranked: readonly QueueCandidate[];
  now: Date;
  running: number;
  concurrency: number;
  recentDurationsMs: readonly number[];
}

/** Median of the usable values (finite, ≥ 0), mean of the middle two for an even count; null when none. */
export function medianMs(values: readonly number[]): number | null {
  const usable = Float64Array.from(values.filter((v) => Number.isFinite(v) && v >= 0)).sort();
  const n = usable.length;
  if (n === 0) return null;
  const mid = n >> 1;
  return n % 2 === 1 ? (usable[mid] as number) : ((usable[mid - 1] as number) + (usable[mid] as number)) / 2;
}

/**
 * Estimated time until the task at queue position p (1-based) finishes.
 *
 * Model: c = concurrency slots; every run takes D = the median recent duration; r = min(running, c) runs hold slots
 * now and are on average half done, so each frees its slot after D/2. Occupants fill slots round-robin, running tasks
 * first: the task at position p is occupant k = p − 1 + r, in slot s = k mod c and wave w = ⌊k / c⌋. The slot's first
 * occupant ends at D/2 if it is a running task (s < r) or at D if it is a queued one, and every later wave adds D:
 *
 *   eta(p) = (w + 1)·D − (s < r ? D/2 : 0)
 *
 * e.g. c = 3, r = 2, D = 600 s: p = 1 → 600 (the free slot), p = 2, 3 → 900 (after a running task), p = 4 → 1200,
 * p = 5 → 1500. With equal durations this is exactly what a greedy "earliest free slot" dispatcher does. Running
 * counts above c (concurrency lowered while runs were in flight) are capped at c: those runs all end at D/2 anyway.
 * The estimate ignores time spent waiting for a human's approval, which nothing in the history predicts.
 */
export function etaSeconds(position: number, running: number, concurrency: number, durationMs: number): number {
  const c = concurrency;
  const r = Math.min(Math.max(0, Math.floor(running)), c);
  const k = position - 1 + r;
  const wave = Math.floor(k / c);
  const slot = k % c;
  const etaMs = (wave + 1) * durationMs - (slot < r ? durationMs / 2 : 0);
  return Math.round(etaMs / 1000);
}

export function buildQueueView(input: QueueViewInput): QueueRow[] {
  const { ranked, now, running, concurrency } = input;
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  const nowMs = now.getTime();
  const durationMs = medianMs(input.recentDurationsMs);
  return ranked.map((task, i) => {
    const waitedMs = nowMs - task.queuedAt.getTime();
    return {
      position: i + 1,
      id: task.id,
      title: task.title,
      type: task.type,
      score: task.score,
      breakdown: task.breakdown,
      waitSeconds: Number.isFinite(waitedMs) ? Math.max(0, Math.floor(waitedMs / 1000)) : 0,
      etaSeconds: durationMs === null ? null : etaSeconds(i + 1, running, concurrency, durationMs),
      approvalRequired: task.approvalRequired,
      approvalReasons: task.approvalReasons,
    };
  });
}

export interface QueueTableOptions {
  verbose: boolean;
  color: boolean;
}

export const TITLE_MAX_CHARS = 40;
const NONE = '—';
const YELLOW = '\u001b[33m';
const RESET_FG = '\u001b[39m';

/** Cut to `max` code points, the last one an ellipsis, so a surrogate pair is never split in half. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text.replace(/\s+/g, ' ').trim());
  return chars.length <= max ? chars.join('') : `${chars.slice(0, max - 1).join('')}…`;
}

function level(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}

function width(text: string): number {
  return Array.from(text).length;
}

interface Column {
  header: string;
  align: 'left' | 'right';
  cell: (row: QueueRow) => string;
}

function columns(verbose: boolean): Column[] {
  const base: Column[] = [
    { header: '#', align: 'right', cell: (r) => String(r.position) },
    { header: 'ID', align: 'left', cell: (r) => r.id },
    { header: 'TITLE', align: 'left', cell: (r) => truncate(r.title, TITLE_MAX_CHARS) },
    { header: 'SCORE', align: 'right', cell: (r) => r.score.toFixed(2) },
    { header: 'WAIT', align: 'right', cell: (r) => formatSeconds(r.waitSeconds) },
    { header: 'ETA', align: 'right', cell: (r) => (r.etaSeconds === null ? NONE : formatSeconds(r.etaSeconds)) },
  ];
  if (!verbose) return base;
  return [
    ...base,
    { header: 'U', align: 'right', cell: (r) => level(r.breakdown.urgency) },
    { header: 'D', align: 'right', cell: (r) => level(r.breakdown.deadline) },
    { header: 'S', align: 'right', cell: (r) => level(r.breakdown.sender) },
    { header: 'AGE', align: 'right', cell: (r) => `+${r.breakdown.ageBoost.toFixed(2)}` },
    {
      header: 'APPROVAL',
      align: 'left',
      cell: (r) => (r.approvalRequired ? (r.approvalReasons.length > 0 ? r.approvalReasons.join('; ') : 'required') : NONE),
    },
  ];
}

/** An aligned plain-text table of the queue; colour only marks rows that will stop for a human's approval. */
export function formatQueueTable(rows: readonly QueueRow[], options: QueueTableOptions): string {
  if (rows.length === 0) return 'Queue is empty.';
  const cols = columns(options.verbose);
  const cells = rows.map((row) => cols.map((col) => col.cell(row)));
  // A reduce, not Math.max(...spread): a queue of a few hundred thousand rows would overflow the argument limit.
  const widths = cols.map((col, i) => cells.reduce((w, line) => Math.max(w, width(line[i] as string)), width(col.header)));
  const render = (line: readonly string[]): string =>
    line
      .map((text, i) => {
        const pad = ' '.repeat((widths[i] as number) - width(text));
        return cols[i]?.align === 'right' ? pad + text : text + pad;
      })
      .join('  ')
      .trimEnd();

  const lines = [render(cols.map((c) => c.header))];
  rows.forEach((row, i) => {
    const line = render(cells[i] as string[]);
    lines.push(options.color && row.approvalRequired ? `${YELLOW}${line}${RESET_FG}` : line);
  });
  return lines.join('\n');
}
