import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TASK_STATES, RUNNING_STATES, type TaskState } from '../../core/state-machine.ts';
import { requestStopNow } from '../../local/engine.ts';
import { actor, withService, type VaultOptions } from '../context.ts';
import { colorEnabled, paint, printJson, EXIT_OK } from '../output.ts';

export interface StopOptions extends VaultOptions {
  now?: boolean;
  reason?: string;
}

export async function stopCommand(options: StopOptions): Promise<number> {
  return withService(options, async (service) => {
    const reason = options.reason ?? `${actor()} ran fte orchestrator stop${options.now ? ' --now' : ''}`;
    const control = await service.store.setStop(true, reason, new Date());
    // The running orchestrator polls the flag every turn; the marker tells it to stop its agents too.
    if (options.now) requestStopNow(service.vault.stateDir);
    if (options.json) printJson({ stopped: true, now: options.now === true, reason: control.stopReason });
    else process.stdout.write(`stopped: no new task will start${options.now ? '; running agents are being stopped and their tasks requeued' : ''}.\n`);
    return EXIT_OK;
  });
}

export async function resumeCommand(options: VaultOptions): Promise<number> {
  return withService(options, async (service) => {
    await service.store.setStop(false, null, new Date());
    const stopFile = join(service.vault.root, service.config.orchestrator.stop_hook_file);
    const hadFile = existsSync(stopFile);
    // Resuming means resuming: a stop file left behind would keep the queue stopped with the flag cleared.
    if (hadFile) rmSync(stopFile, { force: true });
    if (options.json) printJson({ stopped: false, removedStopFile: hadFile });
    else process.stdout.write(`resumed${hadFile ? ` (removed ${service.config.orchestrator.stop_hook_file})` : ''}.\n`);
    return EXIT_OK;
  });
}

export interface StatusReport {
  vault: string;
  orchestrator: { running: boolean; pid: number | null; heartbeatAt: string | null; heartbeatAgeSeconds: number | null };
  stop: { stopped: boolean; reason: string | null; stopFile: boolean };
  counts: Record<TaskState, number>;
  running: Array<{ id: string; title: string; state: TaskState; attempt: number; elapsedSeconds: number }>;
  pendingApproval: Array<{ id: string; title: string; waitingSeconds: number; reasons: readonly string[] }>;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function statusReport(options: VaultOptions): Promise<StatusReport> {
  return withService(options, async (service) => {
    const now = Date.now();
    const control = await service.store.control();
    const tasks = await service.store.list();
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const t of tasks) counts[t.state] += 1;
    let pid: number | null = null;
    try {
      pid = Number(readFileSync(join(service.vault.stateDir, 'orchestrator.pid'), 'utf8').split('\n')[0]) || null;
    } catch {
      pid = null;
    }
    const alive = pid !== null && pidAlive(pid);
    const stopFile = existsSync(join(service.vault.root, service.config.orchestrator.stop_hook_file));
    return {
      vault: service.vault.root,
      orchestrator: {
        running: alive,
        pid: alive ? pid : null,
        heartbeatAt: control.heartbeatAt?.toISOString() ?? null,
        heartbeatAgeSeconds: control.heartbeatAt ? Math.round((now - control.heartbeatAt.getTime()) / 1000) : null,
      },
      stop: {
        stopped: control.stopRequested || stopFile,
        reason: stopFile ? `stop file ${service.config.orchestrator.stop_hook_file}` : control.stopReason,
        stopFile,
      },
      counts,
      running: tasks
        .filter((t) => RUNNING_STATES.has(t.state))
        .map((t) => ({ id: t.id, title: t.title, state: t.state, attempt: t.attempts, elapsedSeconds: Math.round((now - t.stateSince.getTime()) / 1000) })),
      pendingApproval: tasks
        .filter((t) => t.state === 'pending_approval')
        .map((t) => ({ id: t.id, title: t.title, waitingSeconds: Math.round((now - t.stateSince.getTime()) / 1000), reasons: t.approvalReasons })),
    };
  });
}

export async function statusCommand(options: VaultOptions): Promise<number> {
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
