/**
 * The Prometheus text exposition format (version 0.0.4), written by hand rather than with a client library: the
 * figures come from the store on every scrape, not from in-process counters, so a library's registry would only be an
 * extra copy. Pure: families in, text out.
 *
 * The rules enforced here are the ones a scraper rejects a page for, or silently mangles:
 * - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and never start with `__`
 *   (reserved for Prometheus itself); a family appears once;
 * - each family is introduced by `# HELP` (backslash and newline escaped) and `# TYPE`;
 * - label values escape backslash, double quote and newline;
 * - values are Go floats: `NaN`, `+Inf`, `-Inf` spelled that way;
 * - a histogram has cumulative `_bucket{le="…"}` series with strictly increasing bounds, ending in `le="+Inf"` whose
 *   count equals `_count`, plus `_sum` and `_count`; `le` is not a user label;
 * - counters are named `…_total` (required by OpenMetrics, the convention in the text format) and never negative.
 */

export type PromLabels = Readonly<Record<string, string>>;

export interface ScalarSample {
  readonly labels?: PromLabels;
  readonly value: number;
}

export interface HistogramSample {
  readonly labels?: PromLabels;
  /** Upper bounds (without +Inf), strictly increasing, and the cumulative count of observations ≤ each bound. */
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>;
  readonly sum: number;
  /** Every observation; the +Inf bucket. */
  readonly count: number;
}

export type MetricFamily =
  | {
      readonly name: string;
      readonly help: string;
      readonly type: 'counter' | 'gauge' | 'untyped';
      readonly samples: readonly ScalarSample[];
    }
  | {
      readonly name: string;
      readonly help: string;
      readonly type: 'histogram';
      readonly samples: readonly HistogramSample[];
    };

/** The Content-Type a scraper expects for this format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class PrometheusFormatError extends Error {
  readonly code = 'PROMETHEUS_FORMAT' as const;
}

export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A sample value as Go's ParseFloat reads it back. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  // Negative zero would print as "0" anyway; String() gives the shortest round-tripping form ("1e+21" parses in Go).
  return String(value);
}

function formatLabels(labels: PromLabels | undefined, extra?: readonly [string, string]): string {
  const pairs: Array<[string, string]> = labels === undefined ? [] : Object.entries(labels);
  if (extra !== undefined) pairs.push([extra[0], extra[1]]);
  if (pairs.length === 0) return '';
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

function checkLabels(family: string, labels: PromLabels | undefined, reserved: readonly string[]): void {
  if (labels === undefined) return;
  for (const name of Object.keys(labels)) {
    if (!LABEL_NAME.test(name)) throw new PrometheusFormatError(`${family}: invalid label name ${JSON.stringify(name)}`);
    if (name.startsWith('__')) throw new PrometheusFormatError(`${family}: label name ${name} is reserved (starts with __)`);
    if (reserved.includes(name)) throw new PrometheusFormatError(`${family}: label name ${name} is reserved for ${family}'s type`);
  }
}

/** Two samples of one family with the same label set would be one series scraped twice: Prometheus rejects the page. */
function checkUniqueSeries(family: string, samples: ReadonlyArray<{ labels?: PromLabels }>): void {
  const seen = new Set<string>();
  for (const s of samples) {
    const key = JSON.stringify(Object.entries(s.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    if (seen.has(key)) throw new PrometheusFormatError(`${family}: duplicate series ${formatLabels(s.labels) || '{}'}`);
    seen.add(key);
  }
}

function histogramLines(name: string, sample: HistogramSample): string[] {
  const lines: string[] = [];
  let previousLe = -Infinity;
  let previousCount = 0;
  for (const bucket of sample.buckets) {
    if (!(bucket.le > previousLe) || !Number.isFinite(bucket.le)) {
      throw new PrometheusFormatError(`${name}: bucket bounds must be finite and strictly increasing (got ${bucket.le})`);
    }
    if (!(bucket.count >= previousCount)) {
      throw new PrometheusFormatError(`${name}: bucket counts must be cumulative (le=${bucket.le} has ${bucket.count} < ${previousCount})`);
    }
    previousLe = bucket.le;
    previousCount = bucket.count;
    lines.push(`${name}_bucket${formatLabels(sample.labels, ['le', formatValue(bucket.le)])} ${formatValue(bucket.count)}`);
  }
  if (!(sample.count >= previousCount)) {
    throw new PrometheusFormatError(`${name}: _count ${sample.count} is below the last bucket's ${previousCount}`);
  }
  lines.push(`${name}_bucket${formatLabels(sample.labels, ['le', '+Inf'])} ${formatValue(sample.count)}`);
  lines.push(`${name}_sum${formatLabels(sample.labels)} ${formatValue(sample.sum)}`);
  lines.push(`${name}_count${formatLabels(sample.labels)} ${formatValue(sample.count)}`);
  return lines;
}

/** Render families as one exposition page. Throws PrometheusFormatError on anything a scraper would reject. */
export function formatExposition(families: readonly MetricFamily[]): string {
  const names = new Set<string>();
  const out: string[] = [];
  for (const family of families) {
    const { name } = family;
    if (!METRIC_NAME.test(name)) throw new PrometheusFormatError(`invalid metric name ${JSON.stringify(name)}`);
    if (names.has(name)) throw new PrometheusFormatError(`metric family ${name} appears twice`);
    names.add(name);
    out.push(`# HELP ${name} ${escapeHelp(family.help)}`);
    out.push(`# TYPE ${name} ${family.type}`);
    checkUniqueSeries(name, family.samples);
    if (family.type === 'histogram') {
      for (const sample of family.samples) {
        checkLabels(name, sample.labels, ['le']);
        out.push(...histogramLines(name, sample));
      }
      continue;
    }
    if (family.type === 'counter' && !name.endsWith('_total')) {
      throw new PrometheusFormatError(`counter ${name} must be named …_total`);
    }
    for (const sample of family.samples) {
      checkLabels(name, sample.labels, []);
      if (family.type === 'counter' && !(sample.value >= 0)) {
        throw new PrometheusFormatError(`counter ${name} has a negative or NaN value ${sample.value}`);
      }
      out.push(`${name}${formatLabels(sample.labels)} ${formatValue(sample.value)}`);
    }
  }
  // The format requires the last line to end with a line feed.
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** Observation counts per bucket (not cumulative), the last slot being the overflow above the highest bound. */
export interface BucketCounts {
  readonly bounds: readonly number[];
  readonly counts: number[];
  sum: number;
  count: number;
}

export function emptyBuckets(bounds: readonly number[]): BucketCounts {
  return { bounds, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
}

/** Count one observation into the first bucket whose bound is ≥ it (Prometheus buckets are `le`, inclusive). */
export function observe(acc: BucketCounts, value: number): void {
  if (!Number.isFinite(value)) return;
  let i = 0;
  while (i < acc.bounds.length && value > (acc.bounds[i] as number)) i++;
  acc.counts[i] = (acc.counts[i] as number) + 1;
  acc.sum += value;
  acc.count += 1;
}

export function addBuckets(into: BucketCounts, from: BucketCounts): void {
  for (let i = 0; i < into.counts.length; i++) into.counts[i] = (into.counts[i] as number) + (from.counts[i] ?? 0);
  into.sum += from.sum;
  into.count += from.count;
}

export function toHistogramSample(acc: BucketCounts, labels?: PromLabels): HistogramSample {
  let running = 0;
  const buckets = acc.bounds.map((le, i) => {
    running += acc.counts[i] as number;
    return { le, count: running };
  });
  return { ...(labels !== undefined ? { labels } : {}), buckets, sum: acc.sum, count: acc.count };
}
