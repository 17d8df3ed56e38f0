import { loadConfig } from '../../local/config-file.ts';
import { assertAgentCommand } from '../../local/agent-command.ts';
import { createLocalBackend, liveOrchestratorPid } from '../../local/api-backend.ts';
import { Engine, EngineAlreadyRunningError, type EngineEvent } from '../../local/engine.ts';
import { ApiServerError, startApiServer, type RunningApiServer } from '../../local/http-server.ts';
import { Notifier } from '../../local/notifier.ts';
import { TaskService } from '../../local/task-service.ts';
import type { TaskSummary } from '../../core/webhooks.ts';
import { watchedState, WATCHED_KINDS } from '../../core/webhooks.ts';
import { colorEnabled, paint, printJson, UsageError, EXIT_OK } from '../output.ts';
import { resolveVault } from '../vault-option.ts';
import type { VaultOptions } from '../context.ts';
import { dryRunReport, formatDryRun } from './dry-run.ts';

export interface RunOptions extends VaultOptions {
  once?: boolean;
  dryRun?: boolean;
  /** `--no-api` sets this to false. */
  api?: boolean;
  apiPort?: string;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new UsageError(`--api-port must be 0-65535, got ${JSON.stringify(text)}`);
  return port;
}

const EVENT_COLOR: Record<string, 'green' | 'yellow' | 'red' | 'dim'> = {
  done: 'green',
  approved: 'green',
  dispatch: 'green',
  awaiting_approval: 'yellow',
  retry_scheduled: 'yellow',
  interrupted: 'yellow',
  expired: 'yellow',
  failed: 'red',
  quarantined: 'red',
  rejected: 'red',
  api: 'green',
  api_unavailable: 'red',
  api_error: 'red',
  budget_exhausted: 'red',
  health_degraded: 'red',
  health_recovered: 'green',
  stop_requested: 'yellow',
  crash: 'red',
  webhook_retry: 'yellow',
  webhook_failed: 'red',
  webhook_dropped: 'red',
  notifier_watch_failed: 'red',
};

/**
 * How long an exiting orchestrator waits for undelivered webhooks (its own `orchestrator_stopped` among them). A
 * receiver that is down must not hold the exit for the whole retry schedule.
 */
export const NOTIFY_EXIT_GRACE_MS = 10_000;

/** How often health and the stop flag are looked at for notifications: the poll interval, within 5 s – 1 min. */
function watchIntervalMs(pollSeconds: number): number {
  return Math.min(60, Math.max(5, pollSeconds)) * 1000;
}

async function taskSummary(service: TaskService, id: string): Promise<TaskSummary | null> {
  const record = await service.store.get(id);
  if (record === null) return null;
  return {
    id: record.id,
    title: record.title,
    type: record.type,
    state: record.state,
    attempts: record.attempts,
    approvalReasons: [...record.approvalReasons],
    lastError: record.lastError === null ? null : { class: record.lastError.class, message: record.lastError.message },
  };
}

export async function runCommand(options: RunOptions): Promise<number> {
  const vault = resolveVault(options.vault);
  const { config, path } = loadConfig({ configPath: options.config, vault });
  if (options.dryRun) {
    const report = await dryRunReport(vault, config);
    if (options.json) printJson(report);
    else process.stdout.write(formatDryRun(report, colorEnabled()));
    return EXIT_OK;
  }
  assertAgentCommand(config.orchestrator.claude_command);
  const apiPort = options.apiPort === undefined ? config.api.port : parsePort(options.apiPort);
  const service = TaskService.open(vault, config);
  const color = colorEnabled();
  const print = (event: EngineEvent): void => {
    if (options.json) {
      process.stdout.write(`${JSON.stringify(event)}\n`);
      return;
    }
    const c = EVENT_COLOR[event.event] ?? 'dim';
    process.stdout.write(`${paint('dim', event.at.slice(11, 19), color)} ${paint(c, event.event.padEnd(18), color)} ${event.message}\n`);
  };
  // Webhooks see the engine's events by wrapping its log: the engine itself knows nothing of them, and the wrapper
  // only queues (lib/local/notifier.ts), so a slow receiver never slows the loop. Outcomes go to the plain log.
  const notifier = new Notifier({ notifications: config.notifications, log: print, vault, lookupTask: (id) => taskSummary(service, id) });
  const log = notifier.enabled ? notifier.wrap(print) : print;
  const engine = new Engine(service, { once: options.once === true, log });
  const onSignal = (): void => engine.requestShutdown();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  log({
    at: new Date().toISOString(),
    event: 'start',
    message: `orchestrator on ${vault} (config ${path ?? 'defaults'}, agent ${config.orchestrator.claude_command}, up to ${config.orchestrator.max_concurrent_tasks} at once)`,
  });
  if (notifier.enabled) {
    print({ at: new Date().toISOString(), event: 'notifications', message: `webhooks to ${notifier.targetLabels.join(', ')}` });
    if ([...WATCHED_KINDS].some((kind) => notifier.wants(kind))) {
      // Health and the stop flag are not engine events: they are looked at on a timer, off the loop.
      const reads = createLocalBackend(service, { orchestratorPid: process.pid });
      const stopFile = config.orchestrator.stop_hook_file;
      const probe = async () => {
        const [health, control] = await Promise.all([reads.health(), service.store.control()]);
        // The stop as /status reports it, without the 24 h budget read a whole status report would cost.
        const fileStop = service.vault.stopFilePresent(stopFile);
        return watchedState(health, { stopped: control.stopRequested || fileStop, reason: fileStop ? `stop file ${stopFile}` : control.stopReason });
      };
      notifier.watch(probe, watchIntervalMs(config.orchestrator.poll_interval), log);
    }
  }
  let api: RunningApiServer | null = null;
  let failure: { error: unknown } | null = null;
  try {
    if (options.api !== false) api = await serveApi(service, engine, apiPort, log);
    await engine.run();
  } catch (err) {
    failure = { error: err };
    throw err;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await api?.close();
    // Logged before the store closes, so the orchestrator_stopped webhook goes out with the others below.
    if (failure === null) log({ at: new Date().toISOString(), event: 'exit', message: 'orchestrator stopped' });
    else if (!(failure.error instanceof EngineAlreadyRunningError)) {
      // Another orchestrator holding the vault is not this one stopping; anything else is, and people should know.
      const message = failure.error instanceof Error ? failure.error.message : String(failure.error);
      log({ at: new Date().toISOString(), event: 'crash', message: `orchestrator stopped on an error: ${message}` });
    }
    await notifier.close(NOTIFY_EXIT_GRACE_MS);
    await service.close();
  }
  return EXIT_OK;
}

/**
 * Serve the HTTP API for the length of the run (`--once` included). It is started before the loop so the first tasks
 * can be watched, but never over another orchestrator: that one's `.fte/api.json` must not be overwritten, and the
 * engine is about to refuse the vault anyway. A port already taken does not stop the orchestrator — the loop is the
 * job, the API a window on it — it is reported and the run goes on without one.
 */
async function serveApi(service: TaskService, engine: Engine, port: number, log: (event: EngineEvent) => void): Promise<RunningApiServer | null> {
  const holder = liveOrchestratorPid(service.vault.stateDir);
  if (holder !== null && holder !== process.pid) {
    throw new EngineAlreadyRunningError(`an orchestrator (pid ${holder}) is already running on ${service.vault.root}`);
  }
  const event = (name: string, message: string): void => log({ at: new Date().toISOString(), event: name, message });
  try {
    const server = await startApiServer({
      backend: createLocalBackend(service, { orchestratorPid: process.pid, onChange: () => engine.poke() }),
      stateDir: service.vault.stateDir,
      port,
      onInternalError: (err) => event('api_error', `API request failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
    });
    // The dashboard's link carries the token, so it is not printed here (run logs end up in journals and CI output):
    // `fte orchestrator dashboard --web` prints it for whoever can read the token file anyway.
    log({
      at: new Date().toISOString(),
      event: 'api',
      message: `API on ${server.url} (bearer token in ${service.vault.stateDir}/api-token); web dashboard at ${server.url}/ — \`fte orchestrator dashboard --web\` prints its link`,
      url: server.url,
      ...(server.dashboardUrl !== null ? { dashboard: `${server.url}/` } : {}),
    });
    return server;
  } catch (err) {
    if (!(err instanceof ApiServerError)) throw err;
    event('api_unavailable', `${err.message}; running without the HTTP API`);
    return null;
  }
}
