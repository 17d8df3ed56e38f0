import { stringify } from 'yaml';
import type { AddTaskRequest } from '../app/contracts.ts';

/**
 * A new task written as a note, the way a person would write it: `fte task add` and `POST /tasks` both go through
 * here, so a task added either way is the same file and is admitted by the same code.
 */

/** A file-name-safe id from the title: letters and digits joined by dashes, at most 60 characters. */
export function slugFromTitle(title: string): string {
  const s = title
    .normalize('NFKD')
    .replace(/[^\p{L}\p{N}]+/gu, '-')
    .replace(/^-+|-+$/g, '')
    .toLowerCase()
    .slice(0, 60)
    .replace(/-+$/, '');
  return s.length > 0 ? s : 'task';
}

export function buildTaskNote(input: AddTaskRequest, now: Date): string {
  const frontmatter: Record<string, unknown> = { title: input.title };
  if (input.urgency !== undefined) frontmatter['urgency'] = input.urgency;
  if (input.deadline !== undefined) frontmatter['deadline'] = input.deadline;
  if (input.from !== undefined) frontmatter['from'] = input.from;
  if (input.type !== undefined) frontmatter['type'] = input.type;
  if (input.approval !== undefined) frontmatter['approval'] = input.approval;
  frontmatter['created'] = now.toISOString();
  return `---\n${stringify(frontmatter)}---\n${input.body ?? ''}\n`;
}
