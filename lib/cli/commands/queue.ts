import { join } from 'node:path';
import { DEFAULT_PARSE_LIMITS, parseTaskNote } from '../../core/parse-task.ts';
import { rankQueue } from '../../core/queue.ts';
import { formatQueueTable, type QueueRow } from '../../core/queue-view.ts';
import type { TaskDoc } from '../../core/task.ts';
import { loadConfig } from '../../local/config-file.ts';
import { listNoteIds, readNote } from '../../local/notes.ts';
import { colorEnabled, printJson, EXIT_OK } from '../output.ts';
import { resolveVault } from '../vault-option.ts';

export interface QueueCommandOptions {
  vault?: string;
  config?: string;
  json?: boolean;
  verbose?: boolean;
}

export interface QueueReport {
  tasks: QueueRow[];
  invalid: Array<{ id: string; error: string; reason: string }>;
}

/** Parse and rank the notes waiting in `<vault>/Needs_Action/`, read-only. */
export function readQueue(vault: string, configPath: string | undefined, now: Date): QueueReport {
  const { config } = loadConfig({ configPath, vault });
  const folder = join(vault, 'Needs_Action');
  const docs: TaskDoc[] = [];
  const invalid: QueueReport['invalid'] = [];
  for (const id of listNoteIds(folder)) {
    const note = readNote(folder, id, DEFAULT_PARSE_LIMITS.maxBytes);
    if (note === null) continue;
    const parsed = parseTaskNote({ id, content: note.content, fallbackCreated: note.mtime });
    if (parsed.ok) docs.push(parsed.task);
    else invalid.push({ id, error: parsed.error.message, reason: parsed.error.reason });
  }
  const tasks = rankQueue(docs, now, config, { running: 0, recentDurationsMs: [] });
  return { tasks, invalid };
}

export function queueCommand(options: QueueCommandOptions): number {
  const vault = resolveVault(options.vault);
  const report = readQueue(vault, options.config, new Date());
  if (options.json) {
    printJson(report);
    return EXIT_OK;
  }
  const color = colorEnabled();
  process.stdout.write(`${formatQueueTable(report.tasks, { verbose: options.verbose === true, color })}\n`);
  if (report.invalid.length > 0) {
    process.stdout.write(`\n${report.invalid.length} malformed note(s), not ranked:\n`);
    for (const bad of report.invalid) process.stdout.write(`  ${bad.id}: ${bad.error}\n`);
  }
  return EXIT_OK;
}
