import { stringify } from 'yaml';
import type { AddTaskRequest } from '../app/contracts.ts';
import { newTaskNote } from '../app/new-task.ts';

export { slugFromTitle } from '../app/new-task.ts';

/**
 * A new task written as a note, the way a person would write it: `fte task add` and `POST /tasks` both go through
 * here, so a task added either way is the same file and is admitted by the same code. What the note says is decided
 * in lib/app/new-task.ts, which the cloud's API shares.
 */

export function buildTaskNote(input: AddTaskRequest, now: Date): string {
  const note = newTaskNote(input, now);
  return `---\n${stringify(note.frontmatter)}---\n${note.body}`;
}
