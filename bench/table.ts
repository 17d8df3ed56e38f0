/**
 * Small helpers shared by the benchmarks: percentiles, human-readable durations and a plain console table whose
 * `ratio` column compares every row against the row marked as the baseline.
 */

/** Nearest-rank percentile of already-measured samples (milliseconds); NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

export function sum(samples: readonly number[]): number {
  let total = 0;
  for (const s of samples) total += s;
  return total;
}

export function mean(samples: readonly number[]): number {
  return samples.length === 0 ? Number.NaN : sum(samples) / samples.length;
}

/** A duration in milliseconds, in the unit that keeps three or so significant digits. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || Number.isNaN(ms)) return '-';
  const abs = Math.abs(ms);
  if (abs >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (abs >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (abs >= 100) return `${ms.toFixed(0)} ms`;
  if (abs >= 10) return `${ms.toFixed(1)} ms`;
  if (abs >= 1) return `${ms.toFixed(2)} ms`;
  if (abs >= 0.01) return `${(ms * 1000).toFixed(1)} µs`;
  return `${(ms * 1e6).toFixed(0)} ns`;
}

export function formatRatio(r: number | undefined): string {
  if (r === undefined || Number.isNaN(r)) return '-';
  if (r >= 100) return `×${r.toFixed(0)}`;
  if (r >= 10) return `×${r.toFixed(1)}`;
  if (r >= 0.01) return `×${r.toFixed(2)}`;
  return `×1/${(1 / r).toFixed(0)}`;
}

export interface Row {
  name: string;
  n: number | string;
  /** Milliseconds. */
  total?: number;
  perItem?: number;
  p50?: number;
  p95?: number;
  max?: number;
  /** Filled by `printTable` from `ratioOf` unless set. */
  ratio?: number;
  /** The row every other row's ratio is taken against. */
  baseline?: boolean;
  /** Further columns (already formatted), keyed by header. */
  extra?: Record<string, string>;
}

export interface TableOptions {
  title: string;
  /** What the ratio compares (shown under the table); e.g. "per item ÷ baseline per item". */
  ratioLabel: string;
  /** Which number of a row the ratio divides; defaults to `perItem`. */
  ratioOf?: (row: Row) => number | undefined;
  notes?: string[];
}

/** Render rows as a fixed-width table and return its lines (also printed by `printTable`). */
export function renderTable(rows: Row[], options: TableOptions): string[] {
  const ratioOf = options.ratioOf ?? ((row: Row) => row.perItem);
  const base = rows.find((r) => r.baseline === true);
  const baseValue = base === undefined ? undefined : ratioOf(base);
  const extraHeaders = [...new Set(rows.flatMap((r) => Object.keys(r.extra ?? {})))];
  const headers = ['name', 'n', 'total', 'per item', 'p50', 'p95', 'max', 'ratio', ...extraHeaders];
  const body = rows.map((row) => {
    const value = ratioOf(row);
    const ratio = row.ratio ?? (baseValue !== undefined && value !== undefined && baseValue > 0 ? value / baseValue : undefined);
    return [
      row.baseline === true ? `${row.name} (baseline)` : row.name,
      String(row.n),
      formatMs(row.total),
      formatMs(row.perItem),
      formatMs(row.p50),
      formatMs(row.p95),
      formatMs(row.max),
      row.baseline === true ? '×1' : formatRatio(ratio),
      ...extraHeaders.map((h) => row.extra?.[h] ?? '-'),
    ];
  });
  const widths = headers.map((h, i) => Math.max(h.length, ...body.map((cells) => (cells[i] as string).length)));
  const numeric = (i: number): boolean => i > 0;
  const line = (cells: string[]): string =>
    cells.map((c, i) => (numeric(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  const out = [options.title, '='.repeat(options.title.length), line(headers), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const cells of body) out.push(line(cells));
  out.push(`ratio = ${options.ratioLabel}`);
  for (const note of options.notes ?? []) out.push(note);
  return out;
}

export function printTable(rows: Row[], options: TableOptions): void {
  console.log(`${renderTable(rows, options).join('\n')}\n`);
}

/** Run `fn` with the given concurrency over `count` items. */
export async function pool(count: number, concurrency: number, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
