import { parseDurationMs } from './duration.ts';
import { SinceParseError } from './errors.ts';

/**
 * The start of a reporting window as users write it after `--since`: a look-back duration (`30m`, `24h`, `7d`, `2w`,
 * `90s`) or an absolute ISO 8601 date or date-time.
 *
 * A date-time without an offset is read as UTC, not local time: the core has no time zone of its own to assume, and
 * the same command must mean the same window on a laptop and in a Lambda.
 */

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

export function parseSince(input: string, now: Date): Date {
  const text = input.trim();
  const nowMs = now.getTime();
  if (text === '' || Number.isNaN(nowMs)) throw new SinceParseError(input);

  const durationMs = parseDurationMs(text);
  if (durationMs !== null) {
    if (!(durationMs > 0)) throw new SinceParseError(input);
    return checked(nowMs - durationMs, nowMs, input);
  }

  const instant = parseIsoMs(text);
  if (instant === null) throw new SinceParseError(input);
  return checked(instant, nowMs, input);
}

function checked(ms: number, nowMs: number, input: string): Date {
  const date = new Date(ms);
  // A look-back longer than the Date range yields an invalid Date; a start after now would be an empty, reversed window.
  if (Number.isNaN(date.getTime()) || ms > nowMs) throw new SinceParseError(input);
  return date;
}

function parseIsoMs(text: string): number | null {
  const m = ISO.exec(text);
  if (m === null) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  // Only millisecond precision survives in a Date; extra digits are truncated rather than rounded into the next ms.
  const millis = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return null;

  const utc = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  // Date.UTC rolls 2024-02-30 over into March; a date that does not round-trip was never a calendar date.
  const check = new Date(utc);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return null;

  const offset = m[8];
  if (offset === undefined || offset.toUpperCase() === 'Z') return utc;
  const sign = offset.startsWith('-') ? -1 : 1;
  const digits = offset.slice(1).replace(':', '');
  const offsetHours = Number(digits.slice(0, 2));
  const offsetMinutes = Number(digits.slice(2, 4));
  if (offsetHours > 23 || offsetMinutes > 59) return null;
  return utc - sign * (offsetHours * 60 + offsetMinutes) * 60_000;
}
