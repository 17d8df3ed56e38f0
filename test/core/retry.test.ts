import { describe, expect, it } from 'vitest';
import { validateConfig, defaultConfig } from '../../lib/core/config.ts';
import { ERROR_CLASSES, RETRYABLE, backoffCeilingMs, decideRetry, isRetryable } from '../../lib/core/retry.ts';
import { retrySettingsFor } from '../../lib/core/config.ts';

const config = defaultConfig();
const seq = (values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length] as number;
};

describe('backoff ceiling', () => {
  it('follows the seed defaults: 60 s doubling, capped at 3600 s', () => {
    const s = retrySettingsFor(config, 'general');
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((a) => backoffCeilingMs(s, a) / 1000)).toEqual([
      60, 120, 240, 480, 960, 1920, 3600, 3600,
    ]);
  });
});

describe('decideRetry', () => {
  it('delays uniformly within [0, ceiling) with full jitter', () => {
    const random = seq([0, 0.5, 0.999999]);
    const delays = [0, 1, 2].map(() => decideRetry(config, { attempt: 2, taskType: 'code', errorClass: 'crash', random }));
    expect(delays.map((d) => (d.retry ? d.delayMs : -1))).toEqual([0, 60_000, 119_999]);
    for (const d of delays) if (d.retry) expect(d.ceilingMs).toBe(120_000);
  });

  it('stays within bounds for any random source, including out-of-range values', () => {
    for (const r of [-1, 0, 0.3, 0.999, 1, 2, Number.NaN]) {
      for (let attempt = 1; attempt < 5; attempt++) {
        const d = decideRetry(config, { attempt, taskType: 'code', errorClass: 'timeout', random: () => r });
        expect(d.retry).toBe(true);
        if (!d.retry) continue;
        expect(Number.isFinite(d.delayMs)).toBe(true);
        expect(d.delayMs).toBeGreaterThanOrEqual(0);
        expect(d.delayMs).toBeLessThan(d.ceilingMs);
        expect(d.nextAttempt).toBe(attempt + 1);
      }
    }
  });

  it('uses the full ceiling without jitter', () => {
    const cfg = validateConfig({ retry: { jitter: 'none' } });
    const d = decideRetry(cfg, { attempt: 3, taskType: 'code', errorClass: 'crash', random: () => 0.1 });
    expect(d).toEqual({ retry: true, delayMs: 240_000, ceilingMs: 240_000, nextAttempt: 4 });
  });

  it('stops after max_attempts', () => {
    const decide = (attempt: number) =>
      decideRetry(config, { attempt, taskType: 'code', errorClass: 'crash', random: () => 0.5 });
    expect(decide(4).retry).toBe(true);
    expect(decide(5)).toEqual({ retry: false, reason: 'attempts_exhausted' });
    expect(decide(9)).toEqual({ retry: false, reason: 'attempts_exhausted' });
  });

  it('never retries a non-retryable class, even on the first attempt', () => {
    for (const cls of ['invalid_task', 'rejected', 'budget_exceeded', 'approval_expired', 'cancelled'] as const) {
      expect(isRetryable(cls)).toBe(false);
      expect(decideRetry(config, { attempt: 1, taskType: 'code', errorClass: cls, random: () => 0 })).toEqual({
        retry: false,
        reason: 'non_retryable',
      });
    }
  });

  it('retries timeouts, crashes and rate limits', () => {
    for (const cls of ['timeout', 'crash', 'rate_limit', 'signal', 'agent_error', 'bad_output'] as const) {
      expect(isRetryable(cls)).toBe(true);
    }
    expect([...RETRYABLE].every((c) => (ERROR_CLASSES as readonly string[]).includes(c))).toBe(true);
  });

  it('applies per-type overrides over the defaults', () => {
    const cfg = validateConfig({
      retry: { per_type: { payment: { max_attempts: 1 }, research: { initial_backoff: '5m', max_backoff: '10m' } } },
    });
    expect(decideRetry(cfg, { attempt: 1, taskType: 'payment', errorClass: 'crash', random: () => 0 })).toEqual({
      retry: false,
      reason: 'attempts_exhausted',
    });
    const research = retrySettingsFor(cfg, 'research');
    expect(research).toMatchObject({ max_attempts: 5, initial_backoff: 300, max_backoff: 600, backoff_multiplier: 2 });
    expect([1, 2, 3].map((a) => backoffCeilingMs(research, a) / 1000)).toEqual([300, 600, 600]);
    expect(retrySettingsFor(cfg, 'code').initial_backoff).toBe(60);
  });
});
