import type { Level } from './task.ts';
import { phraseRegExp } from './text-match.ts';

/**
 * Text signals in a note's body. Watchers (e-mail, chat) write notes with no frontmatter; the sender, the urgency and the
 * deadline are in the prose. These are read only where the frontmatter is silent, and every phrase is matched as whole
 * words: the earlier system read "high" inside "highlight" as high urgency.
 */

export interface Signal<T> {
  value: T;
  /** The text that produced the value, for the queue's explanation and for tests. */
  evidence: string;
}

/** `**Key**: value` or `**Key:** value` lines, the badge format watchers write. */
function badge(text: string, key: string): string | null {
  const re = new RegExp(`^[ \\t>*-]*\\*\\*${key}\\*\\*[ \\t]*:[ \\t]*(.+)$|^[ \\t>*-]*\\*\\*${key}:\\*\\*[ \\t]*(.+)$`, 'imu');
  const m = re.exec(text);
  const value = m?.[1] ?? m?.[2];
  return value === undefined ? null : value.trim();
}

// Checked from the most to the least urgent; the first level with a match wins, so "URGENT … no rush" reads as urgent.
const URGENCY_PHRASES: ReadonlyArray<readonly [Level, readonly string[]]> = [
  [5, ['urgent', 'urgently', 'critical', 'emergency', 'immediately', 'right away', 'top priority']],
  [4, ['asap', 'as soon as possible', 'high priority', 'high-priority', 'important', 'priority: high']],
  [2, ['low priority', 'low-priority', 'not urgent', 'non-urgent', 'nonurgent', 'no hurry']],
  [1, ['whenever', 'no rush', 'when you have time', 'when you get a chance']],
];

// Negated forms are removed before the positive phrases are looked for, so "not urgent" never reads as urgent.
const NEGATIONS = ['not urgent', 'non-urgent', 'nonurgent', 'not critical', 'not important', 'not a priority'];

const BADGE_LEVELS: Readonly<Record<string, Level>> = {
  critical: 5,
  urgent: 5,
  high: 4,
  asap: 4,
  normal: 3,
  medium: 3,
  low: 2,
  whenever: 1,
  none: 1,
};

export function urgencyFromText(text: string): Signal<Level> | null {
  const badgeValue = badge(text, 'Priority') ?? badge(text, 'Urgency');
  if (badgeValue !== null) {
    const word = badgeValue.toLowerCase().replace(/[^a-z0-9]/g, '');
    const level = BADGE_LEVELS[word] ?? (/^[1-5]$/.test(word) ? (Number(word) as Level) : undefined);
    if (level !== undefined) return { value: level, evidence: badgeValue };
  }
  let cleared = text;
  for (const negation of NEGATIONS) cleared = cleared.replace(new RegExp(phraseRegExp(negation).source, 'giu'), ' ');
  for (const [level, phrases] of URGENCY_PHRASES) {
    const source = level >= 4 ? cleared : text;
    for (const phrase of phrases) {
      const m = phraseRegExp(phrase).exec(source);
      if (m !== null) return { value: level, evidence: m[0] };
    }
  }
  return null;
}

const EMAIL = /[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;

/** The address in a `From` value: `Dana <dana@x.com>`, `dana@x.com`, `mailto:dana@x.com`. */
export function emailIn(value: string): string | null {
  const angled = /<([^<>\s]+@[^<>\s]+)>/.exec(value);
  const candidate = angled?.[1] ?? EMAIL.exec(value)?.[0];
  if (candidate === undefined) return null;
  const m = EMAIL.exec(candidate);
  return m === null || m[0] !== candidate ? null : candidate.toLowerCase();
}

export function senderFromText(text: string): Signal<string> | null {
  const value = badge(text, 'From') ?? /^From:[ \t]*(.+)$/imu.exec(text)?.[1]?.trim() ?? null;
  if (value === null) return null;
  const email = emailIn(value);
  return email === null ? null : { value: email, evidence: value };
}

export function subjectFromText(text: string): Signal<string> | null {
  const value = badge(text, 'Subject');
  if (value !== null && value.length > 0) return { value, evidence: value };
  const heading = /^#[ \t]+(.+?)[ \t#]*$/mu.exec(text)?.[1];
  return heading === undefined ? null : { value: heading, evidence: heading };
}

const DAY_MS = 86_400_000;
const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;

/** The last millisecond of the UTC day `days` after `from`'s day. Body deadlines are day-precise; UTC keeps it pure. */
function endOfUtcDay(from: Date, days: number): Date {
  const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate() + days));
  return new Date(d.getTime() + DAY_MS - 1);
}

function daysUntilWeekday(from: Date, weekday: number): number {
  return (weekday - from.getUTCDay() + 7) % 7;
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * A strict ISO 8601 date or date-time. A time without an offset is read as UTC so that the same note means the same
 * instant on every machine. A date alone means the start of that day (`end: false`) or its last millisecond
 * (`end: true`, for deadlines: "due 1 December" is still on time during 1 December).
 */
export function parseIsoDate(value: string, options: { end: boolean }): Date | null {
  const m = ISO_DATE.exec(value.trim());
  if (m === null) return null;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (year < 1970 || year > 9999 || month < 1 || month > 12 || day < 1 || day > 31) return null;
  const probe = new Date(Date.UTC(year, month - 1, day));
  if (probe.getUTCMonth() !== month - 1) return null; // 2026-02-30
  if (h === undefined) return options.end ? new Date(probe.getTime() + DAY_MS - 1) : probe;
  const hours = Number(h);
  const minutes = Number(mi);
  const seconds = s === undefined ? 0 : Number(s);
  if (hours > 23 || minutes > 59 || seconds > 59) return null;
  const ms = frac === undefined ? 0 : Number(frac.slice(0, 3).padEnd(3, '0'));
  let offsetMinutes = 0;
  if (zone !== undefined && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2, 4));
    // Real offsets run from -12:00 to +14:00; anything beyond ±14:00 is not a time zone.
    if (oh > 14 || om > 59 || (oh === 14 && om > 0)) return null;
    offsetMinutes = sign * (oh * 60 + om);
  }
  const utc = Date.UTC(year, month - 1, day, hours, minutes, seconds, ms) - offsetMinutes * 60_000;
  return new Date(utc);
}

const RELATIVE_DEADLINES: ReadonlyArray<readonly [string, (ref: Date) => Date]> = [
  ['eod', (ref) => endOfUtcDay(ref, 0)],
  ['end of day', (ref) => endOfUtcDay(ref, 0)],
  ['end of the day', (ref) => endOfUtcDay(ref, 0)],
  ['by today', (ref) => endOfUtcDay(ref, 0)],
  ['by tonight', (ref) => endOfUtcDay(ref, 0)],
  ['tomorrow', (ref) => endOfUtcDay(ref, 1)],
  ['eow', (ref) => endOfUtcDay(ref, daysUntilWeekday(ref, 5))],
  ['end of week', (ref) => endOfUtcDay(ref, daysUntilWeekday(ref, 5))],
  ['end of the week', (ref) => endOfUtcDay(ref, daysUntilWeekday(ref, 5))],
  ['next week', (ref) => endOfUtcDay(ref, 7)],
  [
    'eom',
    (ref) => new Date(Date.UTC(ref.getUTCFullYear(), ref.getUTCMonth() + 1, 1) - 1),
  ],
  [
    'end of month',
    (ref) => new Date(Date.UTC(ref.getUTCFullYear(), ref.getUTCMonth() + 1, 1) - 1),
  ],
  [
    'end of the month',
    (ref) => new Date(Date.UTC(ref.getUTCFullYear(), ref.getUTCMonth() + 1, 1) - 1),
  ],
];

/**
 * A deadline named in the body, relative to `reference` (when the note was written, so "tomorrow" keeps meaning the
 * day after the e-mail arrived). The earliest of all the deadlines named wins: a note that says "by EOD, at the latest
 * next week" is due today.
 */
export function deadlineFromText(text: string, reference: Date): Signal<Date> | null {
  const explicit = badge(text, 'Deadline') ?? badge(text, 'Due') ?? badge(text, 'Due date');
  if (explicit !== null) {
    const date = parseIsoDate(explicit, { end: true });
    if (date !== null) return { value: date, evidence: explicit };
  }
  const found: Array<Signal<Date>> = [];
  // "EOD tomorrow" is one deadline, not "EOD" (today) and "tomorrow"; read it first and blank it out.
  let rest = text;
  for (const phrase of ['eod tomorrow', 'end of day tomorrow', 'end of the day tomorrow', 'tomorrow eod']) {
    const re = new RegExp(phraseRegExp(phrase).source, 'giu');
    const m = re.exec(rest);
    if (m !== null) {
      found.push({ value: endOfUtcDay(reference, 1), evidence: m[0] });
      rest = rest.replace(re, ' ');
    }
  }
  for (const [phrase, resolve] of RELATIVE_DEADLINES) {
    const m = phraseRegExp(phrase).exec(rest);
    if (m !== null) found.push({ value: resolve(reference), evidence: m[0] });
  }
  for (const [index, name] of WEEKDAYS.entries()) {
    const m = phraseRegExp(`by ${name}`).exec(rest) ?? phraseRegExp(`on ${name}`).exec(rest);
    if (m !== null) found.push({ value: endOfUtcDay(reference, daysUntilWeekday(reference, index)), evidence: m[0] });
  }
  const inDays = /(?<![\p{L}\p{N}_])(?:in|within)\s+(\d{1,3})\s+days?(?![\p{L}\p{N}_])/iu.exec(text);
  if (inDays?.[1] !== undefined) found.push({ value: endOfUtcDay(reference, Number(inDays[1])), evidence: inDays[0] });
  const byDate = /(?<![\p{L}\p{N}_])(?:by|before|due|until)\s+(\d{4}-\d{2}-\d{2})(?![\p{N}])/iu.exec(text);
  if (byDate?.[1] !== undefined) {
    const date = parseIsoDate(byDate[1], { end: true });
    if (date !== null) found.push({ value: date, evidence: byDate[0] });
  }
  if (found.length === 0) return null;
  return found.reduce((a, b) => (b.value.getTime() < a.value.getTime() ? b : a));
}

/** When a watcher says the message arrived (`**Received**: <ISO>`), which is when the work was asked for. */
export function receivedFromText(text: string): Signal<Date> | null {
  const value = badge(text, 'Received') ?? badge(text, 'Date');
  if (value === null) return null;
  const date = parseIsoDate(value, { end: false });
  return date === null ? null : { value: date, evidence: value };
}
