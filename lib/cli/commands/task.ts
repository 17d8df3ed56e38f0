import { join } from 'node:path';
import { IterationJournal } from '../../local/iteration-journal.ts';
import { parseIsoDate } from '../../core/signals.ts';
import { TASK_STATES, type TaskState } from '../../core/state-machine.ts';
import type { TaskRecord } from '../../core/store.ts';
import { URGENCY_NAMES, type UrgencyName } from '../../core/task.ts';
import { folderOf } from '../../core/vault-layout.ts';
import { readTaskDetail } from '../../app/reads.ts';
import { localReadSources } from '../../local/api-backend.ts';
import { buildTaskNote, slugFromTitle } from '../../local/task-note.ts';
import type { TaskActionResponse } from '../../app/contracts.ts';
import { actor, withActions, withService, type ActionOptions, type VaultOptions } from '../context.ts';
import { colorEnabled, paint, printJson, UsageError, EXIT_OK, EXIT_FAILURE } from '../output.ts';

export interface AddOptions extends ActionOptions {
  urgency?: string;
  deadline?: string;
  from?: string;
  type?: string;
  body?: string;
  approval?: string;
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
  const urgency = options.urgency === undefined ? undefined : /^[1-5]$/.test(options.urgency) ? Number(options.urgency) : (options.urgency as UrgencyName);
  const request = {
    title,
    ...(urgency !== undefined ? { urgency } : {}),
    ...(options.deadline !== undefined ? { deadline: options.deadline } : {}),
    ...(options.from !== undefined ? { from: options.from } : {}),
    ...(options.type !== undefined ? { type: options.type } : {}),
    ...(options.approval !== undefined ? { approval: options.approval as 'required' | 'auto' } : {}),
    ...(options.body !== undefined ? { body: options.body } : {}),
  };
  if (options.endpoint !== undefined) {
    // Another orchestrator, or the cloud: POST /tasks writes the same note there.
    return withActions(options, async (actions) => {
      const added = await actions.addTask(request, { actor: actor() });
      if (options.json) printJson(added);
      else process.stdout.write(`queued ${added.id}${added.task.approvalRequired ? ` — needs approval: ${added.task.approvalReasons.join('; ')}` : ''}\n`);
      return EXIT_OK;
    });
  }
  return withService(options, async (service) => {
    // The same note POST /tasks writes.
    const content = buildTaskNote(request, new Date());
    const id = service.vault.freeName(slugFromTitle(title), () => false);
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
    // The same report as the API's GET /tasks/:id.
    const detail = await readTaskDetail(localReadSources({ vaultDir: service.vault.root, config: service.config, store: service.store }), id);
    // The persistence loop's iterations: number, cost, turns, duration, and whether the completion promise was seen.
    const iterations = new IterationJournal(join(service.vault.stateDir, 'iterations')).list(id);
    const report = { ...detail, iterations };
    if (options.json) {
      printJson(report);
      return EXIT_OK;
    }
    const { task, runs } = report;
    const c = colorEnabled();
    const lines = [
      `${task.id}: ${task.title}`,
      `state: ${stateLabel(task.state, c).trim()} since ${task.stateSince} (note in ${report.folder ?? '?'}/)`,
      `type ${task.type}, urgency ${task.urgency}, sender ${task.sender ?? '—'}, deadline ${task.deadline ?? '—'}`,
      `attempts ${task.attempts}, cost $${task.costUsd.toFixed(4)}${task.approvalRequired ? `, needs approval: ${task.approvalReasons.join('; ')}` : ''}`,
    ];
    if (task.approval) lines.push(`approved by ${task.approval.by} at ${task.approval.at}`);
    if (task.lastError) lines.push(`last error: ${task.lastError.class}: ${task.lastError.message}`);
    if (task.reason) lines.push(`reason: ${task.reason}`);
    if (runs.length > 0) lines.push('runs:');
    for (const r of runs) lines.push(`  #${r.attempt} ${r.kind} ${r.ok ? 'ok' : `failed (${r.errorClass})`} ${r.durationMs} ms $${r.costUsd.toFixed(4)} ${r.logPath ?? ''}`);
    if (iterations.length > 0) lines.push('iterations:');
    for (const it of iterations) {
      lines.push(`  attempt ${it.attempt} iteration ${it.iteration}: ${it.ok ? (it.promiseSeen ? 'promise seen' : 'no promise') : `failed (${it.errorClass})`}, ${it.durationMs} ms, $${it.costUsd.toFixed(4)}, ${it.numTurns ?? '?'} turns`);
    }
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

function answered(result: TaskActionResponse, verb: string, options: VaultOptions): number {
  if (options.json) printJson(result);
  else process.stdout.write(`${verb} ${result.id}: now ${result.state} (note in ${folderOf(result.state)}/)\n`);
  return EXIT_OK;
}

export async function approveCommand(id: string, options: ActionOptions): Promise<number> {
  return withActions(options, async (actions) => answered(await actions.approve(id, { actor: actor() }), 'approved', options));
}

export async function rejectCommand(id: string, options: ActionOptions & { reason?: string }): Promise<number> {
  return withActions(options, async (actions) => answered(await actions.reject(id, { actor: actor() }, options.reason), 'rejected', options));
}
