import { loadConfig } from '../../local/config-file.ts';
import { assertAgentCommand } from '../../local/agent-command.ts';
import { Engine, type EngineEvent } from '../../local/engine.ts';
import { TaskService } from '../../local/task-service.ts';
import { colorEnabled, paint, printJson, EXIT_OK } from '../output.ts';
import { resolveVault } from '../vault-option.ts';
import type { VaultOptions } from '../context.ts';
import { dryRunReport, formatDryRun } from './dry-run.ts';

export interface RunOptions extends VaultOptions {
  once?: boolean;
  dryRun?: boolean;
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
  try {
    await engine.run();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await service.close();
  }
  log({ at: new Date().toISOString(), event: 'exit', message: 'orchestrator stopped' });
  return EXIT_OK;
}
