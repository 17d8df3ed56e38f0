import { parseDocument } from 'yaml';
import { DEFAULT_PARSE_LIMITS, decodeNote, parseFailure as fail, taskFromFields, type ParseLimits, type ParseResult, type TaskOrigin } from './task-fields.ts';

export { DEFAULT_PARSE_LIMITS, decodeNote, taskFromFields } from './task-fields.ts';
export type { ParseFailure, ParseLimits, ParseResult, TaskOrigin } from './task-fields.ts';

/**
 * The task note parser: text checks, frontmatter split and YAML here; the field rules in task-fields.ts. Notes come from
 * people and from watchers that copy untrusted e-mail into the vault, so every byte is hostile: sizes are bounded
 * before anything is decoded, YAML aliases and nesting are bounded, and every failure is a TaskParseError with a
 * reason the quarantine note can show. It never throws.
 */

export interface ParseInput extends TaskOrigin {
  content: string | Uint8Array;
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

/** Parse one task note. Frontmatter wins; body signals fill only what it leaves silent. */
export function parseTaskNote(input: ParseInput, limits: ParseLimits = DEFAULT_PARSE_LIMITS): ParseResult {
  try {
    const decoded = decodeNote(input.content, limits);
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
    return taskFromFields(input, fm, split.body);
  } catch (error) {
    // A parser must not take the loop down with it, whatever the input did.
    const message = error instanceof Error ? error.message : String(error);
    return fail('bad_yaml', `the note could not be read: ${message}`);
  }
}
