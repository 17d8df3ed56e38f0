import type {
  DashboardReport,
  HealthReportWire,
  MetricsReport,
  QueueReport,
  RecentCompletion,
  ResourceUsage,
  StatusReport,
} from '../app/contracts.ts';
import type { Config } from '../core/config.ts';
import { formatSeconds } from '../core/duration.ts';
import { formatQueueTable, truncate } from '../core/queue-view.ts';
import type { TaskState } from '../core/state-machine.ts';
import { paint, type Color } from './output.ts';

/**
 * Human renderings of the observability reports. Colour says one thing throughout: green is running or healthy,
 * yellow is waiting on someone or degraded, red is an error or unhealthy. `color: false` gives the same text without
 * escape codes (NO_COLOR, pipes).
 */

export const HEALTH_COLOR: Readonly<Record<HealthReportWire['status'], Color>> = {
  healthy: 'green',
  degraded: 'yellow',
  unhealthy: 'red',
};

export function stateColor(state: TaskState): Color {
  switch (state) {
    case 'planning':
    case 'executing':
    case 'done':
      return 'green';
    case 'failed':
    case 'rejected':
    case 'expired':
      return 'red';
    case 'cancelled':
      return 'dim';
    default:
      return 'yellow';
  }
}

export function percent(x: number): string {
  return `${(Math.round(x * 1000) / 10).toFixed(1)}%`;
}

export function usd(x: number): string {
  return `$${x.toFixed(x !== 0 && Math.abs(x) < 0.01 ? 4 : 2)}`;
}

export function ms(x: number): string {
  return x < 1000 ? `${Math.round(x)}ms` : x < 60_000 ? `${(x / 1000).toFixed(1)}s` : formatSeconds(x / 1000);
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const SPARKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/** A trend in one line of block characters, scaled to the largest value; blank-free so it always reads as a line. */
export function sparkline(values: readonly number[]): string {
  const max = values.reduce((m, v) => Math.max(m, v), 0);
  return values.map((v) => (max <= 0 ? SPARKS[0] : SPARKS[Math.min(7, Math.floor((v / max) * 7.999))])).join('');
}

/** Aligned columns; the first row is the header. */
export function table(rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number> = new Set()): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, Array.from(cell).length)));
  return rows.map((row) =>
    row
      .map((cell, i) => {
        const pad = ' '.repeat((widths[i] as number) - Array.from(cell).length);
        return rightAligned.has(i) ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd(),
  );
}

function windowLabel(since: string, until: string): string {
  const seconds = (Date.parse(until) - Date.parse(since)) / 1000;
  return `${since.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} → ${until.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} (${formatSeconds(seconds)})`;
}

function errorRateColor(rate: number, config: Config): Color {
  return rate > config.health_check.max_error_rate ? 'red' : rate > 0 ? 'yellow' : 'green';
}

export function resourceLines(r: ResourceUsage, color: boolean): string[] {
  if (!r.available) return ['resources: not visible from here'];
  const lines: string[] = [];
  const o = r.orchestrator;
  lines.push(
    o === null
      ? `orchestrator: ${paint('yellow', 'not running', color)}`
      : `orchestrator: pid ${o.pid}, cpu ${o.cpuSeconds.toFixed(1)}s${o.cpuPercent === null ? '' : ` (${o.cpuPercent}% avg)`}, rss ${bytes(o.rssBytes)}`,
  );
  for (const a of r.agents) {
    lines.push(
      `agent ${a.taskId}: pgid ${a.pid}, ${a.processes} process${a.processes === 1 ? '' : 'es'}, cpu ${a.cpuSeconds === null ? '?' : `${a.cpuSeconds.toFixed(1)}s`}, rss ${a.rssBytes === null ? '?' : bytes(a.rssBytes)}`,
    );
  }
  lines.push(`total: cpu ${r.totalCpuSeconds.toFixed(1)}s, rss ${bytes(r.totalRssBytes)}`);
  return lines;
}

export function formatMetrics(m: MetricsReport, config: Config, color: boolean): string {
  const lines: string[] = [];
  lines.push(paint('bold', `metrics ${windowLabel(m.since, m.until)}`, color));
  lines.push(
    `completed ${paint('green', String(m.completed), color)}  failed ${paint(m.failed > 0 ? 'red' : 'green', String(m.failed), color)}` +
      `  retried ${paint(m.retried > 0 ? 'yellow' : 'green', String(m.retried), color)}` +
      `  error rate ${paint(errorRateColor(m.errorRate, config), percent(m.errorRate), color)}` +
      `  throughput ${m.throughputPerHour.toFixed(2)}/h  cost ${usd(m.costUsd)}`,
  );
  lines.push(`latency avg ${ms(m.latencyMs.avg)}  p50 ${ms(m.latencyMs.p50)}  p95 ${ms(m.latencyMs.p95)}  max ${ms(m.latencyMs.max)}`);
  const types = Object.entries(m.byType);
  if (types.length > 0) {
    lines.push('', 'by type:');
    const rows = [['TYPE', 'DONE', 'FAILED', 'ERR', 'P50', 'P95', 'COST']];
    for (const [type, t] of types) {
      rows.push([type, String(t.completed), String(t.failed), percent(t.errorRate), ms(t.latencyMs.p50), ms(t.latencyMs.p95), usd(t.costUsd)]);
    }
    lines.push(...table(rows, new Set([1, 2, 3, 4, 5, 6])).map((l) => `  ${l}`));
  }
  if (m.series.length > 0) {
    lines.push('', `trend (${formatSeconds(m.bucketSeconds)} buckets, oldest first):`);
    lines.push(`  completed ${paint('green', sparkline(m.series.map((b) => b.completed)), color)}`);
    lines.push(`  failed    ${paint('red', sparkline(m.series.map((b) => b.failed)), color)}`);
    lines.push(`  latency   ${sparkline(m.series.map((b) => b.latencyMsAvg))}`);
  }
  lines.push('', ...resourceLines(m.resources, color));
  return `${lines.join('\n')}\n`;
}

const HEALTH_MARK: Readonly<Record<HealthReportWire['status'], string>> = { healthy: '✓', degraded: '!', unhealthy: '✗' };

function checkValue(name: string, value: number | null): string {
  if (value === null) return '—';
  if (name === 'error_rate') return percent(value);
  if (name === 'backlog' || name === 'stop_flag') return String(value);
  return formatSeconds(value);
}

export function formatHealth(h: HealthReportWire, color: boolean): string {
  const lines = [`health: ${paint(HEALTH_COLOR[h.status], h.status.toUpperCase(), color)}`];
  const rows = [['', 'CHECK', 'STATUS', 'VALUE', 'LIMIT', '']];
  for (const c of h.checks) rows.push([HEALTH_MARK[c.status], c.name, c.status, checkValue(c.name, c.value), checkValue(c.name, c.threshold), c.message]);
  const rendered = table(rows, new Set([3, 4]));
  lines.push(rendered[0] as string);
  h.checks.forEach((c, i) => lines.push(paint(HEALTH_COLOR[c.status], rendered[i + 1] as string, color)));
  return `${lines.join('\n')}\n`;
}

export function formatQueueReport(q: QueueReport, options: { verbose: boolean; color: boolean }): string {
  const lines = [formatQueueTable(q.tasks, options)];
  if (q.retrying.length > 0) {
    lines.push('', `${q.retrying.length} waiting out a retry backoff:`);
    for (const r of q.retrying) lines.push(`  ${paint('yellow', r.id, options.color)} (attempt ${r.attempts}) back in the queue at ${r.retryAt ?? 'once its backoff ends'}`);
  }
  if (q.invalid.length > 0) {
    lines.push('', `${q.invalid.length} malformed note(s), not ranked:`);
    for (const bad of q.invalid) lines.push(`  ${paint('red', bad.id, options.color)}: ${bad.error}`);
  }
  return `${lines.join('\n')}\n`;
}

function statusLine(s: StatusReport, health: HealthReportWire, color: boolean): string {
  const o = s.orchestrator;
  const orch = o.running ? paint('green', `running${o.pid !== null ? ` (pid ${o.pid})` : ''}`, color) : paint('red', 'not running', color);
  const beat = o.heartbeatAgeSeconds === null ? 'no heartbeat' : `heartbeat ${formatSeconds(o.heartbeatAgeSeconds)} ago`;
  const dispatch = s.stop.stopped ? paint('red', `stopped (${s.stop.reason ?? 'no reason given'})`, color) : paint('green', 'on', color);
  return `orchestrator ${orch}, ${beat} · dispatch ${dispatch} · health ${paint(HEALTH_COLOR[health.status], health.status, color)}`;
}

function recentRow(r: RecentCompletion, now: number, color: boolean): string[] {
  return [
    paint(stateColor(r.state), r.state, color),
    r.id,
    truncate(r.title, 36),
    `${formatSeconds((now - Date.parse(r.finishedAt)) / 1000)} ago`,
    r.durationMs === null ? '—' : ms(r.durationMs),
    usd(r.costUsd),
    r.detail === null ? '' : truncate(r.detail, 40),
  ];
}

export function formatDashboard(d: DashboardReport, options: { color: boolean; source: string }): string {
  const { color } = options;
  const now = Date.parse(d.generatedAt);
  const m = d.metrics;
  const lines: string[] = [];
  lines.push(paint('bold', `fte dashboard · ${options.source} · ${d.generatedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}`, color));
  lines.push(statusLine(d.status, d.health, color));
  const counts = Object.entries(d.status.counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => paint(stateColor(state as TaskState), `${state} ${n}`, color));
  lines.push(`tasks: ${counts.join(', ') || 'none'}`);
  for (const c of d.health.checks.filter((c) => c.status !== 'healthy')) {
    lines.push(`  ${paint(HEALTH_COLOR[c.status], `${c.name}: ${c.message}`, color)}`);
  }

  lines.push('', paint('bold', `RUNNING (${d.status.running.length})`, color));
  if (d.status.running.length === 0) lines.push('  nothing is running');
  const runRows = d.status.running.map((r) => [paint('green', r.state, color), r.id, truncate(r.title, 40), `attempt ${r.attempt}`, formatSeconds(r.elapsedSeconds)]);
  if (runRows.length > 0) lines.push(...table(runRows, new Set([4])).map((l) => `  ${l}`));
  for (const p of d.status.pendingApproval) {
    lines.push(`  ${paint('yellow', 'awaiting approval', color)} ${p.id} for ${formatSeconds(p.waitingSeconds)}: ${truncate(p.title, 40)}`);
  }

  const waiting = d.queue.total;
  lines.push('', paint('bold', `QUEUE (${waiting} waiting${d.queue.retrying > 0 ? `, ${d.queue.retrying} retrying` : ''}${d.queue.invalid > 0 ? `, ${d.queue.invalid} malformed` : ''})`, color));
  lines.push(...formatQueueTable(d.queue.head, { verbose: false, color }).split('\n').map((l) => `  ${l}`));
  if (waiting > d.queue.head.length) lines.push(`  … and ${waiting - d.queue.head.length} more`);

  lines.push('', paint('bold', `RECENT (${d.recent.length})`, color));
  if (d.recent.length === 0) lines.push('  nothing has finished yet');
  else lines.push(...table(d.recent.map((r) => recentRow(r, now, color))).map((l) => `  ${l}`));

  lines.push('', paint('bold', `METRICS ${windowLabel(m.since, m.until)}`, color));
  lines.push(
    `  completed ${m.completed}  failed ${paint(m.failed > 0 ? 'red' : 'green', String(m.failed), color)}  error rate ${percent(m.errorRate)}` +
      `  throughput ${m.throughputPerHour.toFixed(2)}/h  p50 ${ms(m.latencyMs.p50)}  p95 ${ms(m.latencyMs.p95)}  cost ${usd(m.costUsd)}`,
  );
  if (m.series.length > 0) lines.push(`  completed ${paint('green', sparkline(m.series.map((b) => b.completed)), color)}  failed ${paint('red', sparkline(m.series.map((b) => b.failed)), color)}`);
  const r = m.resources;
  if (r.available) lines.push(`  cpu ${r.totalCpuSeconds.toFixed(1)}s · rss ${bytes(r.totalRssBytes)} (orchestrator + ${r.agents.length} agent${r.agents.length === 1 ? '' : 's'})`);
  return `${lines.join('\n')}\n`;
}
