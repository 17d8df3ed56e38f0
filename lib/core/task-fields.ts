import { TaskParseError, type TaskParseReason } from './errors.ts';
import {
  deadlineFromText,
  emailIn,
  parseIsoDate,
  receivedFromText,
  senderFromText,
  subjectFromText,
  urgencyFromText,
} from './signals.ts';
import { URGENCY_NAMES, type ApprovalSetting, type FieldSource, type Level, type TaskDoc } from './task.ts';

/*
 * What a task note must satisfy apart from its YAML: the checks on its text (size, NUL bytes, UTF-8) and the reading
 * of every field. parse-task.ts applies them to a note it has split and parsed; the cloud's `POST /tasks` applies them
 * to the fields of a structured request directly (lib/aws/new-task.ts), so one definition holds for both and the API
 * Lambda bundles no YAML parser.
 */

/** Bounds on a note, checked before the parser does the work they bound. */
export interface ParseLimits {
  /** Largest note accepted, in bytes. */
  maxBytes: number;
  /** Largest frontmatter block, in bytes. */
  maxFrontmatterBytes: number;
  /** Alias expansions allowed while building values (defuses "billion laughs"). */
  maxAliasCount: number;
  /** Deepest nesting of maps and lists allowed in the frontmatter. */
  maxDepth: number;
}

export const DEFAULT_PARSE_LIMITS: Readonly<ParseLimits> = Object.freeze({
  maxBytes: 1024 * 1024,
  maxFrontmatterBytes: 64 * 1024,
  maxAliasCount: 50,
  maxDepth: 16,
});

/** Where a task's fields came from: the note's name, and its creation time when the fields do not say. */
export interface TaskOrigin {
  /** The file name without `.md`. */
  id: string;
  /** When the note says nothing about its creation (usually the file's mtime). */
  fallbackCreated: Date;
}

export type ParseResult = { ok: true; task: TaskDoc } | ParseFailure;
export type ParseFailure = { ok: false; error: TaskParseError };

const MAX_TITLE_LENGTH = 300;
const TYPE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** A failed parse, for the reason and field given. */
export function parseFailure(reason: TaskParseReason, message: string, field?: string): ParseFailure {
  return { ok: false, error: new TaskParseError(reason, message, field) };
}

class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** The note as text, or why it is not text fte will read: too large, NUL bytes (binary), not UTF-8. */
export function decodeNote(content: string | Uint8Array, limits: ParseLimits): string | ParseFailure {
  if (typeof content === 'string') {
    // UTF-16 length bounds the UTF-8 size from below by 1× and above by 3×; only encode when it could be close.
    if (content.length > limits.maxBytes || (content.length * 3 > limits.maxBytes && new TextEncoder().encode(content).length > limits.maxBytes)) {
      return parseFailure('too_large', `the note is larger than ${limits.maxBytes} bytes`);
    }
    if (content.includes('\u0000')) return parseFailure('binary', 'the note contains NUL characters, so it is not text');
    return content;
  }
  if (content.length > limits.maxBytes) return parseFailure('too_large', `the note is larger than ${limits.maxBytes} bytes`);
  if (content.includes(0)) {
    return parseFailure('binary', 'the note contains NUL bytes, so it is not text');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(content);
  } catch {
    return parseFailure('not_utf8', 'the note is not valid UTF-8 text');
  }
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function cleanLine(text: string): string {
  // Control and bidi-override characters would let a title forge table rows or hide text in a terminal. Invisible
  // ones are dropped rather than made spaces, so the title reads as it looks: "wi\u200bre" is "wire", not "wi re".
  return text
    .replace(/[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g, '')
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

function readUrgency(raw: unknown): Level {
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 1 && raw <= 5) return raw as Level;
  if (typeof raw === 'string') {
    const word = raw.trim().toLowerCase();
    const index = (URGENCY_NAMES as readonly string[]).indexOf(word);
    if (index >= 0) return (index + 1) as Level;
    if (word === 'urgent') return 5;
    if (/^[1-5]$/.test(word)) return Number(word) as Level;
  }
  throw new FieldError('urgency', `urgency ${describe(raw)} is not one of ${[...URGENCY_NAMES].reverse().join(', ')} or 1-5 (5 = critical)`);
}

function readDate(field: string, raw: unknown, end: boolean): Date {
  const text = raw instanceof Date ? raw.toISOString() : typeof raw === 'string' ? raw : null;
  const date = text === null ? null : parseIsoDate(text, { end });
  if (date === null) {
    throw new FieldError(field, `${field} ${describe(raw)} is not an ISO 8601 date or date-time (e.g. 2026-12-01 or 2026-12-01T17:00:00Z) between 1970 and 9999`);
  }
  return date;
}

function readSender(field: string, raw: unknown): string {
  const email = typeof raw === 'string' ? emailIn(raw) : null;
  if (email === null) throw new FieldError(field, `${field} ${describe(raw)} is not an e-mail address`);
  return email;
}

function readType(raw: unknown): string {
  const type = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
  if (!TYPE_PATTERN.test(type)) {
    throw new FieldError('type', `type ${describe(raw)} must be a word of letters, digits, - or _ (e.g. email, payment, code)`);
  }
  return type;
}

function readApproval(raw: unknown): ApprovalSetting {
  if (raw === true) return 'required';
  if (raw === false) return 'auto';
  if (typeof raw === 'string') {
    const word = raw.trim().toLowerCase();
    if (word === 'required' || word === 'auto') return word;
  }
  throw new FieldError('approval', `approval ${describe(raw)} is not one of required, auto`);
}

function readTitle(raw: unknown): string | null {
  if (typeof raw !== 'string' && typeof raw !== 'number') {
    throw new FieldError('title', `title ${describe(raw)} must be text`);
  }
  const title = cleanLine(String(raw));
  if (title.length === 0) return null;
  return title.length > MAX_TITLE_LENGTH ? `${title.slice(0, MAX_TITLE_LENGTH - 1)}…` : title;
}

function present(fm: Record<string, unknown>, key: string): boolean {
  return Object.hasOwn(fm, key) && fm[key] !== null && fm[key] !== undefined && fm[key] !== '';
}

function firstTextLine(body: string): string | null {
  for (const line of body.split('\n')) {
    const text = cleanLine(line.replace(/^[#>*\-\s]+/, ''));
    if (text.length > 0) return text.length > 80 ? `${text.slice(0, 79)}…` : text;
  }
  return null;
}

function buildTask(input: TaskOrigin, fm: Record<string, unknown>, body: string): TaskDoc {
  const created = present(fm, 'created')
    ? readDate('created', fm.created, false)
    : (receivedFromText(body)?.value ?? input.fallbackCreated);

  let title = present(fm, 'title') ? readTitle(fm.title) : null;
  title ??= (() => {
    const subject = subjectFromText(body);
    return subject === null ? null : cleanLine(subject.value).slice(0, MAX_TITLE_LENGTH) || null;
  })();
  title ??= firstTextLine(body) ?? input.id;

  let urgency: Level = 3;
  let urgencySource: FieldSource = 'default';
  if (present(fm, 'urgency')) {
    urgency = readUrgency(fm.urgency);
    urgencySource = 'frontmatter';
  } else if (present(fm, 'priority')) {
    urgency = readUrgency(fm.priority);
    urgencySource = 'frontmatter';
  } else {
    const signal = urgencyFromText(`${title}\n${body}`);
    if (signal !== null) {
      urgency = signal.value;
      urgencySource = 'body';
    }
  }

  let deadline: Date | null = null;
  let deadlineSource: FieldSource = 'default';
  if (present(fm, 'deadline')) {
    deadline = readDate('deadline', fm.deadline, true);
    deadlineSource = 'frontmatter';
  } else {
    const signal = deadlineFromText(`${title}\n${body}`, created);
    if (signal !== null) {
      deadline = signal.value;
      deadlineSource = 'body';
    }
  }

  let sender: string | null = null;
  let senderSource: FieldSource = 'default';
  const senderKey = present(fm, 'from') ? 'from' : present(fm, 'sender') ? 'sender' : null;
  if (senderKey !== null) {
    sender = readSender(senderKey, fm[senderKey]);
    senderSource = 'frontmatter';
  } else {
    const signal = senderFromText(body);
    if (signal !== null) {
      sender = signal.value;
      senderSource = 'body';
    }
  }

  return {
    id: input.id,
    title,
    body,
    urgency,
    urgencySource,
    deadline,
    deadlineSource,
    sender,
    senderSource,
    type: present(fm, 'type') ? readType(fm.type) : 'general',
    approval: present(fm, 'approval') ? readApproval(fm.approval) : null,
    created,
    frontmatter: Object.freeze({ ...fm }),
  };
}

/**
 * The task that a note's frontmatter (already parsed to values) and body describe: frontmatter wins, body signals fill
 * only what it leaves silent. A field that cannot be read is an `invalid_field` failure naming it.
 */
export function taskFromFields(origin: TaskOrigin, frontmatter: Record<string, unknown>, body: string): ParseResult {
  try {
    return { ok: true, task: buildTask(origin, frontmatter, body) };
  } catch (error) {
    if (error instanceof FieldError) return parseFailure('invalid_field', error.message, error.field);
    throw error;
  }
}
