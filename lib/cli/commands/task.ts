import { stringify } from 'yaml';
import { parseIsoDate } from '../../core/signals.ts';
import { TASK_STATES, type TaskState } from '../../core/state-machine.ts';
import type { TaskRecord } from '../../core/store.ts';
import { URGENCY_NAMES } from '../../core/task.ts';
import { folderOf } from '../../core/vault-layout.ts';
import { actor, withService, type VaultOptions } from '../context.ts';
import { colorEnabled, paint, printJson, UsageError, EXIT_OK, EXIT_FAILURE } from '../output.ts';

export interface AddOptions extends VaultOptions {
  urgency?: string;
  deadline?: string;
  from?: string;
  type?: string;
  body?: string;
  approval?: string;
}

function slug(title: string): string {
  const s = title
    .normalize('NFKD')
    .replace(/[^\p{L}\p{N}]+/gu, '-')
    .replace(/^-+|-+$/g, '')
    .toLowerCase()
    .slice(0, 60)
    .replace(/-+$/, '');
  return s.length > 0 ? s : 'task';
}

/** Write a task note into Needs_Action/ and admit it, exactly as if a person had dropped the file there. */
export async function taskAddCommand(title: string, options: AddOptions): Promise<number> {
  if (title.trim().length === 0) throw new UsageError('the title is empty');
  if (options.urgency !== undefined && !(URGENCY_NAMES as readonly string[]).includes(options.urgency) && !/^[1-5]$/.test(options.urgency)) {
    throw new UsageError(`--urgency must be one of ${[...URGENCY_NAMES].reverse().join(', ')} or 1-5`);
  }
  if (options.deadline !== undefined && parseIsoDate(options.deadline, { end: true }) === null) {
    throw new UsageError(`--deadline ${JSON.stringify(options.deadline)} is not an ISO date (2026-12-01 or 2026-12-01T17:00:00Z)`);
  }
  if (options.approval !== undefined && options.approval !== 'required' && options.approval !== 'auto') {
    throw new UsageError('--approval must be required or auto');
  }
  return withService(options, async (service) => {
    const frontmatter: Record<string, unknown> = { title };
    if (options.urgency !== undefined) frontmatter['urgency'] = /^[1-5]$/.test(options.urgency) ? Number(options.urgency) : options.urgency;
    if (options.deadline !== undefined) frontmatter['deadline'] = options.deadline;
    if (options.from !== undefined) frontmatter['from'] = options.from;
    if (options.type !== undefined) frontmatter['type'] = options.type;
    if (options.approval !== undefined) frontmatter['approval'] = options.approval;
    frontmatter['created'] = new Date().toISOString();
    const content = `---\n${stringify(frontmatter)}---\n${options.body ?? ''}\n`;
    const id = service.vault.freeName(slug(title), () => false);
    service.vault.create('Needs_Action', id, content);
    const result = await service.admit(id);
    if (result.kind === 'quarantined') {
      if (options.json) printJson({ id, quarantined: true, error: result.error.message });
      else process.stderr.write(`fte: the task could not be queued and was moved to Failed/: ${result.error.message}\n`);
      return EXIT_FAILURE;
    }
    const record = await service.mustGet(result.id);
    if (options.json) printJson({ id: record.id, task: record });
    else {
      const approval = record.approvalRequired ? ` — needs approval: ${record.approvalReasons.join('; ')}` : '';
      process.stdout.write(`queued ${record.id}${approval}\n`);
    }
    return EXIT_OK;
  });
}

export interface ListOptions extends VaultOptions {
  state?: string;
}

export async function taskListCommand(options: ListOptions): Promise<number> {
  let states: TaskState[] | undefined;
  if (options.state !== undefined) {
    const wanted = options.state.split(',').map((s) => s.trim());
    for (const s of wanted) {
      if (!(TASK_STATES as readonly string[]).includes(s)) throw new UsageError(`unknown state ${JSON.stringify(s)}; states are ${TASK_STATES.join(', ')}`);
    }
    states = wanted as TaskState[];
  }
  return withService(options, async (service) => {
    const tasks = await service.store.list(states ? { states } : {});
    if (options.json) {
      printJson({ tasks });
      return EXIT_OK;
    }
    const c = colorEnabled();
    if (tasks.length === 0) process.stdout.write('no tasks.\n');
    for (const t of tasks) process.stdout.write(`${stateLabel(t.state, c)}  ${t.id}  ${paint('dim', t.title, c)}\n`);
    return EXIT_OK;
  });
}

function stateLabel(state: TaskState, color: boolean): string {
  const c = state === 'done' || state === 'executing' || state === 'planning' ? 'green' : state === 'failed' || state === 'rejected' ? 'red' : 'yellow';
  return paint(c, state.padEnd(16), color);
}

export async function taskShowCommand(id: string, options: VaultOptions): Promise<number> {
  return withService(options, async (service) => {
    const task = await service.mustGet(id);
    const runs = await service.store.runs(id);
    const history = (await service.store.history({ since: new Date(0), until: new Date(8.64e15) })).filter((e) => e.taskId === id);
    const folder = folderOf(task.state);
    const report = { task, folder, notePath: service.vault.notePath(folder, id), runs, history: history.map((e) => ({ ...e, at: new Date(e.at).toISOString() })) };
    if (options.json) {
      printJson(report);
      return EXIT_OK;
    }
    const c = colorEnabled();
    const lines = [
      `${task.id}: ${task.title}`,
      `state: ${stateLabel(task.state, c).trim()} since ${task.stateSince.toISOString()} (note in ${folder}/)`,
      `type ${task.type}, urgency ${task.urgency}, sender ${task.sender ?? '—'}, deadline ${task.deadline?.toISOString() ?? '—'}`,
      `attempts ${task.attempts}, cost $${task.costUsd.toFixed(4)}${task.approvalRequired ? `, needs approval: ${task.approvalReasons.join('; ')}` : ''}`,
    ];
    if (task.approval) lines.push(`approved by ${task.approval.by} at ${task.approval.at.toISOString()}`);
    if (task.lastError) lines.push(`last error: ${task.lastError.class}: ${task.lastError.message}`);
    if (task.reason) lines.push(`reason: ${task.reason}`);
    if (runs.length > 0) lines.push('runs:');
    for (const r of runs) lines.push(`  #${r.attempt} ${r.kind} ${r.ok ? 'ok' : `failed (${r.errorClass})`} ${r.durationMs} ms $${r.costUsd.toFixed(4)} ${r.logPath ?? ''}`);
    lines.push('history:');
    for (const e of report.history) lines.push(`  ${e.at} ${e.from} → ${e.to} (${e.event})`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return EXIT_OK;
  });
}

function done(record: TaskRecord, verb: string, options: VaultOptions): number {
  if (options.json) printJson({ id: record.id, state: record.state, task: record });
  else process.stdout.write(`${verb} ${record.id}: now ${record.state} (note in ${folderOf(record.state)}/)\n`);
  return EXIT_OK;
}

export async function taskRetryCommand(id: string, options: VaultOptions): Promise<number> {
  return withService(options, async (service) => done(await service.requeue(id, actor()), 'requeued', options));
}

export async function taskCancelCommand(id: string, options: VaultOptions & { reason?: string }): Promise<number> {
  return withService(options, async (service) => done(await service.cancel(id, actor(), options.reason), 'cancelled', options));
}

export async function approveCommand(id: string, options: VaultOptions): Promise<number> {
  return withService(options, async (service) => done(await service.approve(id, actor()), 'approved', options));
}

export async function rejectCommand(id: string, options: VaultOptions & { reason?: string }): Promise<number> {
  return withService(options, async (service) => done(await service.reject(id, actor(), options.reason), 'rejected', options));
}
