import { loadConfig } from '../../local/config-file.ts';
import { assertAgentCommand } from '../../local/agent-command.ts';
import { createLocalBackend, liveOrchestratorPid } from '../../local/api-backend.ts';
import { Engine, EngineAlreadyRunningError, type EngineEvent } from '../../local/engine.ts';
import { ApiServerError, startApiServer, type RunningApiServer } from '../../local/http-server.ts';
import { TaskService } from '../../local/task-service.ts';
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
};

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
  const log = (event: EngineEvent): void => {
    if (options.json) {
      process.stdout.write(`${JSON.stringify(event)}\n`);
      return;
    }
    const c = EVENT_COLOR[event.event] ?? 'dim';
    process.stdout.write(`${paint('dim', event.at.slice(11, 19), color)} ${paint(c, event.event.padEnd(18), color)} ${event.message}\n`);
  };
  const engine = new Engine(service, { once: options.once === true, log });
  const onSignal = (): void => engine.requestShutdown();
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  log({
    at: new Date().toISOString(),
    event: 'start',
    message: `orchestrator on ${vault} (config ${path ?? 'defaults'}, agent ${config.orchestrator.claude_command}, up to ${config.orchestrator.max_concurrent_tasks} at once)`,
  });
  let api: RunningApiServer | null = null;
  try {
    if (options.api !== false) api = await serveApi(service, engine, apiPort, log);
    await engine.run();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await api?.close();
    await service.close();
  }
  log({ at: new Date().toISOString(), event: 'exit', message: 'orchestrator stopped' });
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
    event('api', `API on ${server.url} (bearer token in ${service.vault.stateDir}/api-token)`);
    return server;
  } catch (err) {
    if (!(err instanceof ApiServerError)) throw err;
    event('api_unavailable', `${err.message}; running without the HTTP API`);
    return null;
  }
}
