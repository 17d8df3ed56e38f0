import { describe, expect, it } from 'vitest';
import { SinceParseError } from '../../lib/core/errors.ts';
import { parseSince } from '../../lib/core/since.ts';

const now = new Date('2025-03-10T12:00:00.000Z');
const iso = (input: string) => parseSince(input, now).toISOString();

describe('parseSince: durations', () => {
  it.each([
    ['90s', '2025-03-10T11:58:30.000Z'],
    ['30m', '2025-03-10T11:30:00.000Z'],
    ['24h', '2025-03-09T12:00:00.000Z'],
    ['7d', '2025-03-03T12:00:00.000Z'],
    ['2w', '2025-02-24T12:00:00.000Z'],
    ['1.5h', '2025-03-10T10:30:00.000Z'],
    [' 24h ', '2025-03-09T12:00:00.000Z'],
  ])('%s is now minus that', (input, expected) => {
    expect(iso(input)).toBe(expected);
  });
});

describe('parseSince: ISO 8601', () => {
  it.each([
    ['2025-03-01', '2025-03-01T00:00:00.000Z'],
    ['2025-03-01T08:15:00Z', '2025-03-01T08:15:00.000Z'],
    ['2025-03-01T08:15Z', '2025-03-01T08:15:00.000Z'],
    ['2025-03-01T08:15:30.250Z', '2025-03-01T08:15:30.250Z'],
    ['2025-03-01T08:15:00+02:00', '2025-03-01T06:15:00.000Z'],
    ['2025-03-01T08:15:00-0130', '2025-03-01T09:45:00.000Z'],
    ['2025-03-01T08:15:00', '2025-03-01T08:15:00.000Z'],
    ['2025-03-01 08:15:00Z', '2025-03-01T08:15:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
  ])('%s is that instant', (input, expected) => {
    expect(iso(input)).toBe(expected);
  });

  it('accepts exactly now', () => {
    expect(iso('2025-03-10T12:00:00Z')).toBe(now.toISOString());
  });
});

describe('parseSince: errors', () => {
  it.each([
    ['empty', ''],
    ['blank', '   '],
    ['a word', 'yesterday'],
    ['a bare number', '24'],
    ['an unknown unit', '3y'],
    ['a negative duration', '-5m'],
    ['a zero duration', '0m'],
    ['a zero duration in ms', '0ms'],
    ['a duration beyond the Date range', '99999999999999w'],
    ['an impossible date', '2025-02-30'],
    ['a non-leap 29 February', '2023-02-29'],
    ['month 13', '2025-13-01'],
    ['hour 24', '2025-03-01T24:00:00Z'],
    ['a bad offset', '2025-03-01T08:00:00+25:00'],
    ['a future date', '2025-03-11'],
    ['a future instant by one ms', '2025-03-10T12:00:00.001Z'],
    ['a date with trailing text', '2025-03-01junk'],
  ])('rejects %s', (_label, input) => {
    expect(() => parseSince(input, now)).toThrow(SinceParseError);
  });

  it('carries the SINCE_INVALID code and the input', () => {
    try {
      parseSince('soon', now);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SinceParseError);
      expect((err as SinceParseError).code).toBe('SINCE_INVALID');
      expect((err as SinceParseError).input).toBe('soon');
    }
  });
});
