import { parseDocument } from 'yaml';
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

/**
 * Task notes come from people and from watchers that copy untrusted e-mail into the vault, so the parser treats every
 * byte as hostile: sizes are bounded before anything is decoded, YAML aliases and nesting are bounded, and every
 * failure is a TaskParseError with a reason the quarantine note can show. It never throws.
 */
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

export interface ParseInput {
  /** The file name without `.md`. */
  id: string;
  content: string | Uint8Array;
  /** When the note says nothing about its creation (usually the file's mtime). */
  fallbackCreated: Date;
}

export type ParseResult = { ok: true; task: TaskDoc } | { ok: false; error: TaskParseError };

const MAX_TITLE_LENGTH = 300;
const TYPE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

function fail(reason: TaskParseReason, message: string, field?: string): ParseResult {
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

function decode(content: string | Uint8Array, limits: ParseLimits): string | ParseResult {
  if (typeof content === 'string') {
    // UTF-16 length bounds the UTF-8 size from below by 1× and above by 3×; only encode when it could be close.
    if (content.length > limits.maxBytes || (content.length * 3 > limits.maxBytes && new TextEncoder().encode(content).length > limits.maxBytes)) {
      return fail('too_large', `the note is larger than ${limits.maxBytes} bytes`);
    }
    if (content.includes('\u0000')) return fail('binary', 'the note contains NUL characters, so it is not text');
    return content;
  }
  if (content.length > limits.maxBytes) return fail('too_large', `the note is larger than ${limits.maxBytes} bytes`);
  if (content.includes(0)) {
    return fail('binary', 'the note contains NUL bytes, so it is not text');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(content);
  } catch {
    return fail('not_utf8', 'the note is not valid UTF-8 text');
  }
}

interface Split {
  frontmatter: string | null;
  body: string;
}

const OPENING = /^---[ \t]*\r?\n/;
const CLOSING = /^(?:---|\.\.\.)[ \t]*$/m;

function splitFrontmatter(text: string, limits: ParseLimits): Split | ParseResult {
  if (!OPENING.test(text)) return { frontmatter: null, body: text };
  const afterOpening = text.replace(OPENING, '');
  // An empty frontmatter closes on the very next line.
  const close = /^(?:---|\.\.\.)[ \t]*(?:\r?\n|$)/.exec(afterOpening) ?? CLOSING.exec(afterOpening);
  if (close === null) {
    return fail('frontmatter_unterminated', 'the frontmatter opened with --- is never closed by a --- line');
  }
  const yamlText = afterOpening.slice(0, close.index);
  if (new TextEncoder().encode(yamlText).length > limits.maxFrontmatterBytes) {
    return fail('frontmatter_too_large', `the frontmatter is larger than ${limits.maxFrontmatterBytes} bytes`);
  }
  const body = afterOpening.slice(close.index + close[0].length).replace(/^\r?\n/, '');
  return { frontmatter: yamlText, body };
}

/** Deepest nesting of brackets/indentation a YAML text can produce, measured before the parser recurses into it. */
function flowDepth(yamlText: string): number {
  let depth = 0;
  let max = 0;
  for (const ch of yamlText) {
    if (ch === '[' || ch === '{') max = Math.max(max, ++depth);
    else if (ch === ']' || ch === '}') depth = Math.max(0, depth - 1);
  }
  return max;
}

function valueDepth(value: unknown, limit: number, depth = 0): boolean {
  if (depth > limit) return false;
  if (Array.isArray(value)) return value.every((v) => valueDepth(v, limit, depth + 1));
  if (value !== null && typeof value === 'object') {
    return Object.values(value).every((v) => valueDepth(v, limit, depth + 1));
  }
  return true;
}

function parseFrontmatter(yamlText: string, limits: ParseLimits): Record<string, unknown> | ParseResult {
  if (flowDepth(yamlText) > limits.maxDepth) {
    return fail('frontmatter_too_deep', `the frontmatter nests deeper than ${limits.maxDepth} levels`);
  }
  let value: unknown;
  try {
    const doc = parseDocument(yamlText, { uniqueKeys: true, prettyErrors: false, strict: true });
    const firstError = doc.errors[0];
    if (firstError !== undefined) {
      return fail('bad_yaml', `the frontmatter is not valid YAML: ${firstError.message.split('\n')[0]}`);
    }
    value = doc.toJS({ maxAliasCount: limits.maxAliasCount });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // The yaml library's own words for maxAliasCount; an alias to an undefined anchor is plain bad YAML.
    if (/excessive alias count/i.test(message)) {
      return fail('yaml_alias_limit', `the frontmatter expands more than ${limits.maxAliasCount} YAML aliases`);
    }
    if (error instanceof RangeError) {
      return fail('frontmatter_too_deep', `the frontmatter nests too deeply to read`);
    }
    return fail('bad_yaml', `the frontmatter is not valid YAML: ${message.split('\n')[0]}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    return fail('frontmatter_not_mapping', 'the frontmatter must be a mapping of keys to values');
  }
  if (!valueDepth(value, limits.maxDepth)) {
    return fail('frontmatter_too_deep', `the frontmatter nests deeper than ${limits.maxDepth} levels`);
  }
  return value as Record<string, unknown>;
}

function isResult(value: unknown): value is ParseResult {
  return typeof value === 'object' && value !== null && 'ok' in value && (value as { ok: unknown }).ok === false;
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

function buildTask(input: ParseInput, fm: Record<string, unknown>, body: string): TaskDoc {
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

/** Parse one task note. Frontmatter wins; body signals fill only what it leaves silent. */
export function parseTaskNote(input: ParseInput, limits: ParseLimits = DEFAULT_PARSE_LIMITS): ParseResult {
  try {
    const decoded = decode(input.content, limits);
    if (typeof decoded !== 'string') return decoded;
    const text = decoded.replace(/^\ufeff/, '');
    if (text.trim().length === 0) return fail('empty', 'the note is empty');
    const split = splitFrontmatter(text, limits);
    if (isResult(split)) return split;
    let fm: Record<string, unknown> = {};
    if (split.frontmatter !== null) {
      const parsed = parseFrontmatter(split.frontmatter, limits);
      if (isResult(parsed)) return parsed;
      fm = parsed;
    }
    return { ok: true, task: buildTask(input, fm, split.body) };
  } catch (error) {
    if (error instanceof FieldError) return fail('invalid_field', error.message, error.field);
    // A parser must not take the loop down with it, whatever the input did.
    const message = error instanceof Error ? error.message : String(error);
    return fail('bad_yaml', `the note could not be read: ${message}`);
  }
}
