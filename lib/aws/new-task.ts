import type { NewTaskFields, NewTaskNote } from '../app/new-task.ts';
import { decodeNote, taskFromFields, type ParseLimits } from '../core/task-fields.ts';
import type { TaskDoc } from '../core/task.ts';

/**
 * The cloud's `POST /tasks` without a YAML library: the API Lambda has the request's fields already as values, so it
 * applies the note rules (lib/core/task-fields.ts) to them directly instead of writing a note and parsing it back, and
 * writes the note for the runner with the small scalar writer below. Bundling the `yaml` package for this would cost
 * the API Lambda about 98 KB. test/aws/new-task.test.ts checks that the note written here parses, with the core
 * parser, to exactly the task built here, and to the task the local API's note gives.
 */

/** The note's markdown, frontmatter and body, as the runner reads it and as the core parser would admit it. */
export function writeTaskNote(note: NewTaskNote): string {
  return `---\n${writeFrontmatter(note.frontmatter)}---\n${note.body}`;
}

/**
 * The task the note describes, under `id`, checked by the same rules as a parsed note: its text (size, NUL bytes) and
 * every field. Throws the parser's TaskParseError (400 TASK_PARSE_ERROR) for a note the parser would refuse. The
 * frontmatter's own size and depth limits need no check: the request's fields are bounded scalars.
 */
export function taskFromNote(note: NewTaskNote, markdown: string, id: string, now: Date, limits: ParseLimits): TaskDoc {
  const text = decodeNote(markdown, limits);
  if (typeof text !== 'string') throw text.error;
  const parsed = taskFromFields({ id, fallbackCreated: now }, { ...note.frontmatter }, note.body);
  if (!parsed.ok) throw parsed.error;
  return parsed.task;
}

const KEY = /^[a-z][a-z0-9_]*$/;

function writeFrontmatter(fields: NewTaskFields): string {
  let yaml = '';
  for (const [key, value] of Object.entries(fields)) {
    if (!KEY.test(key)) throw new RangeError(`frontmatter key ${JSON.stringify(key)} is not a plain word`);
    yaml += `${key}: ${yamlScalar(value)}\n`;
  }
  return yaml;
}

/**
 * A plain scalar only where no YAML reader can take it for anything but that string: it starts with a letter (so it is
 * no number, indicator or timestamp), holds none of the characters that end or comment a value (`:`, `#`), has no
 * surrounding space and is no word a YAML 1.1 or 1.2 reader turns into a boolean, null or special float.
 */
const PLAIN = /^\p{L}[\p{L}\p{N} _.,;()'/+<>@!?&%-]*$/u;
const RESERVED = /^(?:y|n|yes|no|true|false|on|off|null|nan|inf|infinity)$/i;
/**
 * Characters JSON leaves raw that YAML 1.2 calls non-printable (DEL, C1 controls, U+FFFE/U+FFFF) or that YAML 1.1
 * readers and editors take for line breaks or a byte-order mark. The yaml library reads them raw too; the escapes keep
 * the note valid for any reader a person might point at it.
 */
const NOT_RAW_IN_YAML = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;

export function yamlScalar(value: string | number): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`${value} has no YAML number form`);
    return String(value);
  }
  if (PLAIN.test(value) && !value.endsWith(' ') && !RESERVED.test(value)) return value;
  // Every JSON string is a YAML double-quoted scalar with the same value, once the characters above are escaped too.
  return JSON.stringify(value).replace(NOT_RAW_IN_YAML, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
