import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { addTaskRequestSchema } from '../../lib/app/contracts.ts';
import { newTaskNote } from '../../lib/app/new-task.ts';
import { taskFromNote, writeTaskNote, yamlScalar } from '../../lib/aws/new-task.ts';
import { TaskParseError } from '../../lib/core/errors.ts';
import { parseTaskNote, type ParseResult } from '../../lib/core/parse-task.ts';
import { buildTaskNote } from '../../lib/local/task-note.ts';
import { CLOUD_PARSE_LIMITS } from '../../lambda/admit-task.ts';

/**
 * The cloud's `POST /tasks` builds its task from the request's fields and writes the note for the runner without the
 * YAML library (lib/aws/new-task.ts). Both halves are held to the core parser here: the note it writes must parse to
 * exactly the task it built, and that must be the task the local API's note (written with the YAML library) gives —
 * or, for a request the parser refuses, the same refusal.
 */

const NOW = new Date('2026-03-10T12:00:00.000Z');

const TRICKY_STRINGS = [
  '', ' ', 'lead space', ' lead', 'trail ', 'a: b', 'a:b', 'a #c', 'a#c', '#x', '- x', '-x', '? x', ': x', '123', '1e3',
  '0x1F', '0o17', '+1', '-1.5', '.5', 'true', 'False', 'TRUE', 'yes', 'NO', 'On', 'off', 'y', 'N', 'null', 'Null', '~',
  '.inf', '-.Inf', '.NaN', 'nan', 'Infinity', '2026-12-01', '2026-12-01T10:00:00Z', '2026-12-01 10:00', '12:30:00',
  "it's", "'single'", '"double"', 'back\\slash', 'line\nbreak', 'cr\rlf', 'tab\there', '\u0000nul', 'del\u007f',
  'nel\u0085', 'c1\u009b', 'ls\u2028ps\u2029', 'bom\ufeff', 'nonchar\uffff\ufffe', 'lone \ud800 surrogate',
  'lone low \udc00', '😀 emoji', 'Über Straße', '中文标题', 'a\u200bb', '\u202eevil', '*alias', '&anchor', '!tag',
  '!!str x', '%dir', '@at', '`tick', '|', '|-\n  x', '>', '{a: 1}', '[a, b]', 'a, b', 'a,b', '---', '...', 'x\n---\ny',
  'x\n...\n', 'Dana <dana@company.com>', 'x'.repeat(300), `${'word '.repeat(40)}end`, '<<', '=', '\\u0041',
];

/** Deterministic strings over the characters YAML treats specially, so the set is the same on every run. */
function randomStrings(count: number, seed: number): string[] {
  const pool = [...'abcXYZ019 :#-?&*!|>\'"%@`,[]{}~.\\\t\n\r\u0000\u007f\u0085\u00a0\u2028\ufeff€😀'];
  let state = seed;
  const next = () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state;
  };
  return Array.from({ length: count }, () => Array.from({ length: next() % 24 }, () => pool[next() % pool.length] as string).join(''));
}

describe('yamlScalar', () => {
  it('writes every string so that a YAML reader reads back exactly that string', () => {
    for (const value of [...TRICKY_STRINGS, ...randomStrings(2_000, 7)]) {
      const line = `v: ${yamlScalar(value)}\n`;
      expect(parse(line, { strict: true, uniqueKeys: true }), JSON.stringify(value)).toEqual({ v: value });
    }
  });

  it('writes plain words plainly and quotes what a reader would take for something else', () => {
    expect(yamlScalar('Pay the invoice')).toBe('Pay the invoice');
    expect(yamlScalar('high')).toBe('high');
    expect(yamlScalar('Dana <dana@company.com>')).toBe('Dana <dana@company.com>');
    expect(yamlScalar('yes')).toBe('"yes"');
    expect(yamlScalar('2026-12-01')).toBe('"2026-12-01"');
    expect(yamlScalar('a: b')).toBe('"a: b"');
    expect(yamlScalar(4)).toBe('4');
    expect(() => yamlScalar(Number.NaN)).toThrow(RangeError);
  });
});

function outcome(run: () => ParseResult): ParseResult {
  try {
    return run();
  } catch (error) {
    if (error instanceof TaskParseError) return { ok: false, error };
    throw error;
  }
}

function summary(result: ParseResult): unknown {
  return result.ok ? { ok: true, task: result.task } : { ok: false, reason: result.error.reason, field: result.error.field, message: result.error.message };
}

const REQUESTS: unknown[] = [
  { title: 'Pay the invoice', type: 'payment', urgency: 'high', body: 'Invoice 42.' },
  { title: 'Send the Q1 report', urgency: 'high', type: 'email', from: 'Dana <dana@company.com>', body: 'Please send email to the board.' },
  { title: 'Fix it', urgency: 5, deadline: '2026-12-01', approval: 'required' },
  { title: 'Deploy by Friday', deadline: '2026-12-01T17:00:00+02:00', approval: 'auto', type: '  Code  ' },
  { title: 'Urgent: the server is down!', body: 'ASAP please, from ops@example.com' },
  { title: 'true' },
  { title: '2026' },
  { title: 'a: b # not a comment' },
  { title: "Dana's \"quoted\" task" },
  { title: 'multi\nline\ntitle' },
  { title: 'x\n---\ny' },
  { title: '\u200b' },
  { title: '\u202eevil title' },
  { title: 'pаyment to Bob', body: 'wire the money' },
  { title: 'Über Straße 😀' },
  { title: 't'.repeat(300), body: 'b'.repeat(60_000) },
  { title: 'Body with frontmatter-looking lines', body: '---\ntitle: not this\n---\nSubject: nor this' },
  { title: 'Bad deadline', deadline: '2026-02-30' },
  { title: 'Bad sender', from: 'not an address' },
  { title: 'NUL in the body', body: 'a\u0000b' },
  { title: 'Stray controls', body: 'del\u007f nel\u0085 ls\u2028' },
];

describe('a task added through the cloud API', () => {
  it('is the task its note parses to, and the task the local API’s note parses to — or the same refusal', () => {
    const reasons = new Set<string>();
    for (const raw of REQUESTS) {
      const input = addTaskRequestSchema.parse(raw);
      const note = newTaskNote(input, NOW);
      const markdown = writeTaskNote(note);
      const id = 'the-task';
      const direct = outcome(() => ({ ok: true, task: taskFromNote(note, markdown, id, NOW, CLOUD_PARSE_LIMITS) }));
      const cloudNote = parseTaskNote({ id, content: markdown, fallbackCreated: NOW }, CLOUD_PARSE_LIMITS);
      const localNote = parseTaskNote({ id, content: buildTaskNote(input, NOW), fallbackCreated: NOW }, CLOUD_PARSE_LIMITS);
      const label = JSON.stringify(raw).slice(0, 80);
      expect(summary(direct), label).toEqual(summary(cloudNote));
      expect(summary(direct), label).toEqual(summary(localNote));
      reasons.add(direct.ok ? 'ok' : `${direct.error.reason}:${direct.error.field ?? ''}`);
    }
    // The corpus reaches each way a request can be refused after the schema, not only the happy path.
    expect([...reasons].sort()).toEqual(['binary:', 'invalid_field:deadline', 'invalid_field:from', 'ok']);
  });

  it('falls back to the id for a title that cleans to nothing, as a parsed note does', () => {
    const note = newTaskNote(addTaskRequestSchema.parse({ title: '\u200b\u200b' }), NOW);
    const task = taskFromNote(note, writeTaskNote(note), 'task-7', NOW, CLOUD_PARSE_LIMITS);
    expect(task.title).toBe('task-7');
  });

  it('refuses a note over the size limit as too_large', () => {
    const note = newTaskNote(addTaskRequestSchema.parse({ title: 'Big', body: '€'.repeat(60_000) }), NOW);
    const markdown = writeTaskNote(note);
    expect(() => taskFromNote(note, markdown, 'big', NOW, { ...CLOUD_PARSE_LIMITS, maxBytes: 100_000 })).toThrow(
      expect.objectContaining({ reason: 'too_large' }),
    );
  });
});
