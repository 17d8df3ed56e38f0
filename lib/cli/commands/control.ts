import type { StatusReport } from '../../app/contracts.ts';
import { readStatus } from '../../app/reads.ts';
import { localReadSources } from '../../local/api-backend.ts';
import { actor, withActions, withService, type ActionOptions, type VaultOptions } from '../context.ts';
import { colorEnabled, paint, printJson, EXIT_OK } from '../output.ts';
import { withCliReads, type ReadSourceOptions } from '../read-source.ts';

export interface StopOptions extends ActionOptions {
  now?: boolean;
  reason?: string;
}

export async function stopCommand(options: StopOptions): Promise<number> {
  return withActions(options, async (actions) => {
    const reason = options.reason ?? `${actor()} ran fte orchestrator stop${options.now ? ' --now' : ''}`;
    // The same action the API's POST /stop runs.
    const result = await actions.stop({ now: options.now === true, reason }, { actor: actor() });
    if (options.json) printJson(result);
    else process.stdout.write(`stopped: no new task will start${result.now ? '; running agents are being stopped and their tasks requeued' : ''}.\n`);
    return EXIT_OK;
  });
}

export async function resumeCommand(options: ActionOptions): Promise<number> {
  return withActions(options, async (actions) => {
    const result = await actions.resume({ actor: actor() });
    if (options.json) printJson(result);
    else process.stdout.write(`resumed${result.removedStopFile ? ' (removed the stop file)' : ''}.\n`);
    return EXIT_OK;
  });
}

export type { StatusReport };

/** What runs, what waits for approval, whether dispatch is on: the same report as the API's GET /status. */
export async function statusReport(options: VaultOptions & ReadSourceOptions): Promise<StatusReport> {
  // Another orchestrator's or the cloud's API with --endpoint; else this vault's store (writable, as status always was).
  if (options.endpoint !== undefined) return withCliReads(options, (source) => source.reads.status());
  return withService(options, (service) =>
    readStatus(localReadSources({ vaultDir: service.vault.root, config: service.config, store: service.store })),
  );
}

export async function statusCommand(options: VaultOptions & ReadSourceOptions): Promise<number> {
  const report = await statusReport(options);
  if (options.json) {
    printJson(report);
    return EXIT_OK;
  }
  const c = colorEnabled();
  const o = report.orchestrator;
  const lines = [
    `orchestrator: ${o.running ? paint('green', `running (pid ${o.pid})`, c) : paint('yellow', 'not running', c)}` +
      (o.heartbeatAgeSeconds !== null ? `, last heartbeat ${o.heartbeatAgeSeconds} s ago` : ''),
    `dispatch: ${report.stop.stopped ? paint('red', `stopped (${report.stop.reason ?? 'no reason given'})`, c) : paint('green', 'on', c)}`,
    `tasks: ${Object.entries(report.counts).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`).join(', ') || 'none'}`,
  ];
  for (const r of report.running) lines.push(`  ${paint('green', 'running', c)}  ${r.id} (${r.state}, attempt ${r.attempt}, ${r.elapsedSeconds} s)`);
  for (const p of report.pendingApproval) lines.push(`  ${paint('yellow', 'waiting', c)}  ${p.id} for approval (${p.waitingSeconds} s): ${p.reasons.join('; ')}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT_OK;
}
