import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HealthReportWire } from '../../app/contracts.ts';
import { DEFAULT_WINDOW_MS, type TimeWindow } from '../../app/reads.ts';
import { healthExitCode } from '../../core/health.ts';
import { parseSince } from '../../core/since.ts';
import { STATE_DIR } from '../../core/vault-layout.ts';
import { loadConfig } from '../../local/config-file.ts';
import { API_TOKEN_FILE, dashboardLink, readApiDiscovery } from '../../local/http-server.ts';
import { formatDashboard, formatHealth, formatMetrics } from '../format.ts';
import { colorEnabled, paint, printJson, reportError, UsageError, EXIT_OK } from '../output.ts';
import { withCliReads, type ReadSourceOptions } from '../read-source.ts';
import { resolveVault } from '../vault-option.ts';
import { watchLoop } from '../watch.ts';

/**
 * `fte orchestrator metrics | health | dashboard`: the observability reports, read from a running orchestrator's API,
 * from `--endpoint`, or from the vault's store (lib/cli/read-source.ts). The JSON printed is the API's JSON, contract
 * for contract.
 */

export interface ObserveOptions extends ReadSourceOptions {
  json?: boolean;
}

function windowFrom(since: string | undefined, now: Date): TimeWindow {
  return { since: since === undefined ? new Date(now.getTime() - DEFAULT_WINDOW_MS) : parseSince(since, now), until: now };
}

export interface MetricsOptions extends ObserveOptions {
  since?: string;
}

export async function metricsCommand(options: MetricsOptions): Promise<number> {
  // Parsed before anything is opened, so a bad --since is a usage error (exit 2) whatever the source.
  const window = windowFrom(options.since, new Date());
  return withCliReads(options, async ({ reads, config }) => {
    const metrics = await reads.metrics(window);
    if (options.json) printJson(metrics);
    else process.stdout.write(formatMetrics(metrics, config, colorEnabled()));
    return EXIT_OK;
  });
}

/**
 * Exit 0 healthy, 1 degraded, 2 unhealthy (the Nagios convention) so cron and monitoring tools can use the command as
 * it is. When health cannot be evaluated at all — no vault, an unreachable endpoint — the exit is 2 as well: for a
 * monitor, an orchestrator whose health nobody can read is not doing its job.
 */
export async function healthCommand(options: ObserveOptions): Promise<number> {
  let report: HealthReportWire;
  try {
    report = await withCliReads(options, ({ reads }) => reads.health());
  } catch (err) {
    reportError(err, options.json === true);
    return 2;
  }
  if (options.json) printJson(report);
  else process.stdout.write(formatHealth(report, colorEnabled()));
  return healthExitCode(report.status);
}

export interface WatchFlags {
  watch?: boolean;
  interval?: string;
  count?: string;
}

/** `--interval` seconds (default `fallback`) and `--count` frames, checked. */
export function watchSettings(flags: WatchFlags, fallbackSeconds: number): { intervalMs: number; count?: number } {
  const seconds = flags.interval === undefined ? fallbackSeconds : Number(flags.interval);
  if (!(Number.isFinite(seconds) && seconds >= 0.2 && seconds <= 86_400)) {
    throw new UsageError(`--interval must be a number of seconds between 0.2 and 86400, got ${JSON.stringify(flags.interval)}`);
  }
  if (flags.count === undefined) return { intervalMs: seconds * 1000 };
  const count = Number(flags.count);
  if (!(Number.isInteger(count) && count >= 1)) throw new UsageError(`--count must be a positive whole number, got ${JSON.stringify(flags.count)}`);
  return { intervalMs: seconds * 1000, count };
}

export function frameError(err: unknown, color: boolean): { text: string; json: unknown } {
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : 'INTERNAL';
  return {
    text: `${paint('red', `cannot refresh: ${message}`, color)}\n(retrying)\n`,
    json: { error: { code, message } },
  };
}

export interface DashboardOptions extends ObserveOptions, WatchFlags {
  since?: string;
  /** Print the web dashboard's link instead of the dashboard. */
  web?: boolean;
}

/** `--web` on a vault whose orchestrator serves no API: there is no page to link to. */
export class ApiNotRunningError extends Error {
  readonly code = 'API_NOT_RUNNING' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ApiNotRunningError';
  }
}

export interface WebLink {
  /** The page's link, the token in its #fragment. */
  url: string;
  /** The API it reads. */
  api: string;
  refreshSeconds: number;
}

/**
 * The web dashboard's link: the running orchestrator's API (from `.fte/api.json`) with the vault's token, or
 * `--endpoint` with `--token`/`$FTE_API_TOKEN`. The token is put in the #fragment, which the browser never sends.
 */
export function webDashboardLink(options: DashboardOptions, env: NodeJS.ProcessEnv = process.env): WebLink {
  if (options.endpoint !== undefined) {
    const token = options.token ?? env['FTE_API_TOKEN'] ?? null;
    let api: string;
    try {
      api = new URL(options.endpoint).toString();
    } catch {
      throw new UsageError(`--endpoint ${JSON.stringify(options.endpoint)} is not a URL (e.g. http://127.0.0.1:8787)`);
    }
    // As for reads from --endpoint: a vault named (or in $FTE_VAULT) only contributes its settings.
    const vaultValue = options.vault ?? env['FTE_VAULT'];
    const vault = vaultValue !== undefined && vaultValue !== '' && existsSync(vaultValue) ? vaultValue : undefined;
    const { config } = loadConfig({ configPath: options.config, vault, env });
    return { url: dashboardLink(api, token, config.dashboard.refresh_interval), api, refreshSeconds: config.dashboard.refresh_interval };
  }
  const vault = resolveVault(options.vault, env);
  const { config } = loadConfig({ configPath: options.config, vault, env });
  const stateDir = join(vault, STATE_DIR);
  const discovery = readApiDiscovery(stateDir);
  if (discovery === null) {
    throw new ApiNotRunningError(`no orchestrator serves an API for ${vault}; start one with \`fte orchestrator run\` (without --no-api)`);
  }
  let token: string;
  try {
    token = readFileSync(join(stateDir, API_TOKEN_FILE), 'utf8').trim();
  } catch (err) {
    throw new ApiNotRunningError(`the API token ${join(stateDir, API_TOKEN_FILE)} cannot be read: ${(err as Error).message}`);
  }
  const refreshSeconds = config.dashboard.refresh_interval;
  return { url: dashboardLink(discovery.url, token, refreshSeconds), api: discovery.url, refreshSeconds };
}

export async function dashboardCommand(options: DashboardOptions): Promise<number> {
  if (options.since !== undefined) parseSince(options.since, new Date());
  if (options.web) {
    if (options.watch) throw new UsageError('--web prints the web dashboard’s link; it cannot be combined with --watch');
    const link = webDashboardLink(options);
    if (options.json) printJson(link);
    else {
      const color = colorEnabled();
      process.stdout.write(
        `Web dashboard of ${link.api} (refreshes every ${link.refreshSeconds} s).\n` +
          `${paint('yellow', 'The link carries the API token: keep it as private as .fte/api-token.', color)}\n\n${link.url}\n`,
      );
    }
    return EXIT_OK;
  }
  return withCliReads(options, async (source) => {
    const color = colorEnabled();
    const render = async (): Promise<{ text: string; json: unknown }> => {
      const dashboard = await source.reads.dashboard(windowFrom(options.since, new Date()));
      return { text: formatDashboard(dashboard, { color, source: source.describe() }), json: dashboard };
    };
    if (!options.watch) {
      const frame = await render();
      if (options.json) printJson(frame.json);
      else process.stdout.write(frame.text);
      return EXIT_OK;
    }
    const settings = watchSettings(options, source.config.dashboard.refresh_interval);
    await watchLoop({ ...settings, json: options.json === true, frame: render, onError: (err) => frameError(err, color) });
    return EXIT_OK;
  });
}
