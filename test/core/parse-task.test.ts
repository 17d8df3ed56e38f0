import { describe, expect, it } from 'vitest';
import { DEFAULT_PARSE_LIMITS, parseTaskNote, type ParseResult } from '../../lib/core/parse-task.ts';
import type { TaskDoc } from '../../lib/core/task.ts';

const FALLBACK = new Date('2026-11-20T12:00:00Z');

function parse(content: string | Uint8Array, id = 'note'): ParseResult {
  return parseTaskNote({ id, content, fallbackCreated: FALLBACK });
}

function task(content: string): TaskDoc {
  const result = parse(content);
  if (!result.ok) throw new Error(`expected a task, got ${result.error.reason}: ${result.error.message}`);
  return result.task;
}

function reason(content: string | Uint8Array): string {
  const result = parse(content);
  if (result.ok) throw new Error('expected a parse error');
  expect(result.error.code).toBe('TASK_PARSE_ERROR');
  return result.error.reason;
}

describe('parseTaskNote: frontmatter fields', () => {
  it('reads every documented field', () => {
    const t = task(
      [
        '---',
        'title: Pay ACME invoice',
        'urgency: high',
        'deadline: 2026-12-01',
        'from: Billing <Billing@ACME.com>',
        'type: payment',
        'approval: required',
        'created: 2026-11-24T09:12:00Z',
        'custom: kept',
        '---',
        'Body text.',
      ].join('\n'),
    );
    expect(t).toMatchObject({
      id: 'note',
      title: 'Pay ACME invoice',
      urgency: 4,
      urgencySource: 'frontmatter',
      sender: 'billing@acme.com',
      senderSource: 'frontmatter',
      type: 'payment',
      approval: 'required',
      body: 'Body text.',
    });
    // A date-only deadline is due until the end of that day.
    expect(t.deadline?.toISOString()).toBe('2026-12-01T23:59:59.999Z');
    expect(t.created.toISOString()).toBe('2026-11-24T09:12:00.000Z');
    expect(t.frontmatter.custom).toBe('kept');
  });

  it.each([
    ['critical', 5],
    ['HIGH', 4],
    ['normal', 3],
    ['low', 2],
    ['whenever', 1],
    [5, 5],
    [1, 1],
    ['2', 2],
    ['urgent', 5],
  ] as const)('urgency %s → %i', (value, level) => {
    expect(task(`---\nurgency: ${JSON.stringify(value)}\n---\nx`).urgency).toBe(level);
  });

  it.each([['0'], ['6'], ['2.5'], ['"extreme"'], ['[high]'], ['{a: 1}']])('urgency %s is an invalid field', (value) => {
    const result = parse(`---\nurgency: ${value}\n---\nx`);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.reason).toBe('invalid_field');
      expect(result.error.field).toBe('urgency');
      expect(result.error.message).toContain('critical, high');
    }
  });

  it('accepts `sender` as well as `from`', () => {
    expect(task('---\nsender: ceo@company.com\n---\nx').sender).toBe('ceo@company.com');
  });

  it('reads a deadline with time and offset as that instant', () => {
    expect(task('---\ndeadline: 2026-12-01T17:00:00+02:00\n---\nx').deadline?.toISOString()).toBe('2026-12-01T15:00:00.000Z');
  });

  it.each([
    ['deadline', 'next tuesday'],
    ['deadline', '2026-02-30'],
    ['deadline', '2026-13-01'],
    ['deadline', '99999-01-01'],
    ['deadline', '1969-12-31'],
    ['deadline', '2026-12-01T25:00:00Z'],
    ['created', 'yesterday'],
    ['from', 'not an address'],
    ['type', 'pay ment; rm -rf /'],
    ['approval', 'maybe'],
    ['title', '{a: 1}'],
  ])('%s %s is an invalid field naming the key', (field, value) => {
    const result = parse(`---\n${field}: ${value}\n---\nx`);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.reason).toBe('invalid_field');
      expect(result.error.field).toBe(field);
      expect(result.error.message).toContain(field);
    }
  });

  it('defaults what nothing names: normal urgency, no deadline, no sender, general type, the fallback creation time', () => {
    const t = task('---\ntitle: Plain\n---\nNothing special here.');
    expect(t).toMatchObject({ urgency: 3, urgencySource: 'default', deadline: null, sender: null, type: 'general', approval: null });
    expect(t.created).toEqual(FALLBACK);
  });

  it('treats approval true/false as required/auto', () => {
    expect(task('---\napproval: true\n---\nx').approval).toBe('required');
    expect(task('---\napproval: false\n---\nx').approval).toBe('auto');
  });

  it('accepts an empty frontmatter and a BOM', () => {
    expect(task('\ufeff---\n---\n# Heading title\nbody').title).toBe('Heading title');
  });

  it('accepts CRLF line endings', () => {
    const t = task('---\r\ntitle: Windows note\r\nurgency: low\r\n---\r\nBody\r\n');
    expect(t.title).toBe('Windows note');
    expect(t.urgency).toBe(2);
  });

  it('strips control and bidi characters from titles so they cannot forge terminal output', () => {
    const t = task('---\ntitle: "Pay\\u001b[31m now\\u202e evil"\n---\nx');
    expect(t.title).not.toMatch(/[\u001b\u202e]/);
    expect(t.title).toContain('Pay');
  });
});

describe('parseTaskNote: body signals fill only what frontmatter leaves silent', () => {
  const email = [
    '# Email: Shipment delay for order 88213',
    '',
    '**From**: Dana Weiss <Dana@Northwind-Logistics.com>',
    '**Subject**: Shipment delay for order 88213',
    '**Received**: 2026-11-25T08:02:00Z',
    '',
    'Please confirm ASAP whether we should split the shipment, otherwise it ships next week.',
  ].join('\n');

  it('reads a watcher e-mail with no frontmatter', () => {
    const t = task(email);
    expect(t).toMatchObject({
      title: 'Shipment delay for order 88213',
      urgency: 4,
      urgencySource: 'body',
      sender: 'dana@northwind-logistics.com',
      senderSource: 'body',
      deadlineSource: 'body',
    });
    expect(t.created.toISOString()).toBe('2026-11-25T08:02:00.000Z');
    // "next week" is seven days after the message arrived, end of day.
    expect(t.deadline?.toISOString()).toBe('2026-12-02T23:59:59.999Z');
  });

  it('never overrides the frontmatter with a body signal', () => {
    const t = task(`---\nurgency: low\nfrom: me@company.com\ndeadline: 2027-01-10\n---\n${email}`);
    expect(t).toMatchObject({ urgency: 2, urgencySource: 'frontmatter', sender: 'me@company.com' });
    expect(t.deadline?.toISOString()).toBe('2027-01-10T23:59:59.999Z');
  });

  it('matches whole words only: "highlight", "urgently-needed"? no — "highlight" is not "high"', () => {
    const t = task('---\ntitle: Deck\n---\nPlease highlight the changes, and the wireframe, and the asapish thing.');
    expect(t.urgency).toBe(3);
    expect(t.urgencySource).toBe('default');
  });

  it('reads "not urgent" as low, never as urgent', () => {
    expect(task('---\ntitle: x\n---\nThis is not urgent.').urgency).toBe(2);
    expect(task('---\ntitle: x\n---\nA non-urgent cleanup.').urgency).toBe(2);
  });

  it.each([
    ['URGENT: the board moved', 5],
    ['Please do this asap.', 4],
    ['This is high priority for us', 4],
    ['Low priority, really.', 2],
    ['No rush on this one.', 1],
    ['**Priority**: critical', 5],
    ['**Priority:** low', 2],
  ] as const)('%j → urgency %i', (body, level) => {
    const t = task(`---\ntitle: x\n---\n${body}`);
    expect(t.urgency).toBe(level);
    expect(t.urgencySource).toBe('body');
  });

  // Created on Wednesday 2026-11-25.
  it.each([
    ['Need it by EOD', '2026-11-25T23:59:59.999Z'],
    ['Send it tomorrow', '2026-11-26T23:59:59.999Z'],
    ['They would like it by Friday.', '2026-11-27T23:59:59.999Z'],
    ['by Wednesday', '2026-11-25T23:59:59.999Z'],
    ['by Monday', '2026-11-30T23:59:59.999Z'],
    ['sometime next week', '2026-12-02T23:59:59.999Z'],
    ['before EOM', '2026-11-30T23:59:59.999Z'],
    ['within 3 days', '2026-11-28T23:59:59.999Z'],
    ['**Due**: 2026-12-24', '2026-12-24T23:59:59.999Z'],
    ['due 2026-12-24 please', '2026-12-24T23:59:59.999Z'],
    ['by Friday, at the latest by EOD tomorrow', '2026-11-26T23:59:59.999Z'],
  ])('%j → deadline %s', (body, iso) => {
    const t = task(`---\ntitle: x\ncreated: 2026-11-25T10:00:00Z\n---\n${body}`);
    expect(t.deadline?.toISOString()).toBe(iso);
    expect(t.deadlineSource).toBe('body');
  });

  it('does not read weekday names inside other words or without "by"', () => {
    const t = task('---\ntitle: x\ncreated: 2026-11-25T10:00:00Z\n---\nThe Friday meeting notes are attached. Fridays are busy.');
    expect(t.deadline).toBeNull();
  });

  it('titles fall back to Subject, then the first heading, then the first line, then the id', () => {
    expect(task('**Subject**: Re: Lunch\n\nhi').title).toBe('Re: Lunch');
    expect(task('# A heading\n\ntext').title).toBe('A heading');
    expect(task('just some text here\nmore').title).toBe('just some text here');
    expect(task('---\ntype: code\n---\n\n   \n---').title).toBe('note');
  });
});

describe('parseTaskNote: malformed input is a typed error, never a crash', () => {
  it('unterminated frontmatter', () => {
    expect(reason('---\ntitle: x\nbody without a closing line')).toBe('frontmatter_unterminated');
  });

  it('bad YAML (an unclosed quote)', () => {
    expect(reason('---\ntitle: "Quarterly tax filing\nurgency: high\n---\nbody')).toBe('bad_yaml');
  });

  it('duplicate keys are bad YAML', () => {
    expect(reason('---\ntitle: a\ntitle: b\n---\nbody')).toBe('bad_yaml');
  });

  it('frontmatter that is a list or a scalar', () => {
    expect(reason('---\n- a\n- b\n---\nbody')).toBe('frontmatter_not_mapping');
    expect(reason('---\njust text\n---\nbody')).toBe('frontmatter_not_mapping');
  });

  it('a billion-laughs alias bomb', () => {
    const lines = ['---', 'a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      const next = String.fromCharCode(97 + i);
      lines.push(`${next}: &${next} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    lines.push('---', 'body');
    expect(reason(lines.join('\n'))).toBe('yaml_alias_limit');
  });

  it('deep nesting in flow and block style', () => {
    expect(reason(`---\nx: ${'['.repeat(5000)}${']'.repeat(5000)}\n---\nbody`)).toBe('frontmatter_too_deep');
    const block = Array.from({ length: 40 }, (_, i) => `${'  '.repeat(i)}k${i}:`).join('\n');
    expect(reason(`---\n${block} 1\n---\nbody`)).toBe('frontmatter_too_deep');
  });

  it('a frontmatter larger than the limit', () => {
    expect(reason(`---\nnote: "${'a'.repeat(70 * 1024)}"\n---\nbody`)).toBe('frontmatter_too_large');
  });

  it('a 10 MB file, as text and as bytes', () => {
    const big = `---\ntitle: big\n---\n${'x'.repeat(10 * 1024 * 1024)}`;
    expect(reason(big)).toBe('too_large');
    expect(reason(new TextEncoder().encode(big))).toBe('too_large');
  });

  it('a string whose UTF-8 size exceeds the limit though its length does not', () => {
    const emoji = '😀'.repeat(DEFAULT_PARSE_LIMITS.maxBytes / 3); // 4 bytes each in UTF-8, 2 UTF-16 units
    expect(reason(emoji)).toBe('too_large');
  });

  it('binary junk and invalid UTF-8', () => {
    expect(reason(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]))).toBe('binary');
    expect(reason(new Uint8Array([0x2d, 0x2d, 0x2d, 0x0a, 0xc3, 0x28, 0x0a]))).toBe('not_utf8');
    expect(reason('text with a \u0000 NUL')).toBe('binary');
  });

  it('an empty or whitespace-only note', () => {
    expect(reason('')).toBe('empty');
    expect(reason('  \n\t\n')).toBe('empty');
    expect(reason(new Uint8Array())).toBe('empty');
  });

  it('never throws on random bytes', () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const alphabet = '---\n:[]{}&*!|>\'"#%@`-?,\\ abcxyz0123\u00e9\u202e';
    for (let i = 0; i < 2000; i++) {
      const length = Math.floor(random() * 200);
      let text = random() < 0.5 ? '---\n' : '';
      for (let j = 0; j < length; j++) text += alphabet[Math.floor(random() * alphabet.length)];
      if (random() < 0.5) text += '\n---\nbody';
      const result = parse(text);
      expect(typeof result.ok).toBe('boolean');
      if (!result.ok) expect(result.error.reason).toMatch(/^[a-z_]+$/);
    }
  });
});
