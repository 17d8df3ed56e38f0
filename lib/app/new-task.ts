import type { AddTaskRequest } from './contracts.ts';

/**
 * A task added through an API or `fte task add`, as the note it becomes: its name and its frontmatter fields and body.
 * How the note is then written is the runtime's business — lib/local/task-note.ts with the YAML library, the cloud's
 * API (lib/aws/new-task.ts) without one — but what it says is decided here once, so a task added anywhere reads alike.
 */

/** Frontmatter values of a new task: all scalars, in the order they are written. */
export type NewTaskFields = Readonly<Record<string, string | number>>;

export interface NewTaskNote {
  readonly frontmatter: NewTaskFields;
  /** The markdown after the frontmatter's closing line. */
  readonly body: string;
}

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

export function newTaskNote(input: AddTaskRequest, now: Date): NewTaskNote {
  const frontmatter: Record<string, string | number> = { title: input.title };
  if (input.urgency !== undefined) frontmatter['urgency'] = input.urgency;
  if (input.deadline !== undefined) frontmatter['deadline'] = input.deadline;
  if (input.from !== undefined) frontmatter['from'] = input.from;
  if (input.type !== undefined) frontmatter['type'] = input.type;
  if (input.approval !== undefined) frontmatter['approval'] = input.approval;
  frontmatter['created'] = now.toISOString();
  return { frontmatter, body: `${input.body ?? ''}\n` };
}
