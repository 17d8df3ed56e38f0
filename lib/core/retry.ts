import type { Config, RetrySettings } from './config.ts';
import { retrySettingsFor } from './config.ts';

/**
 * Why a run failed, as a class the retry policy can decide on. The runner maps every way an agent run can end badly to
 * exactly one of these.
 */
export const ERROR_CLASSES = [
  'timeout',
  'crash',
  'signal',
  'rate_limit',
  'agent_error',
  'bad_output',
  'iterations_exhausted',
  'interrupted',
  'invalid_task',
  'rejected',
  'budget_exceeded',
  'approval_expired',
  'cancelled',
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

/**
 * Classes worth another attempt: the run might succeed next time. The rest fail the same way again (a malformed task,
 * a human's no, a spent budget), so retrying them only burns money.
 */
export const RETRYABLE: ReadonlySet<ErrorClass> = new Set<ErrorClass>([
  'timeout',
  'crash',
  'signal',
  'rate_limit',
  'agent_error',
  'bad_output',
  'iterations_exhausted',
  'interrupted',
]);

export function isRetryable(errorClass: ErrorClass): boolean {
  return RETRYABLE.has(errorClass);
}

export type RetryDecision =
  | { retry: true; delayMs: number; ceilingMs: number; nextAttempt: number }
  | { retry: false; reason: 'non_retryable' | 'attempts_exhausted' };

/**
 * The backoff ceiling before attempt `attempt + 1`: initial · multiplier^(attempt−1), capped at max_backoff.
 * `attempt` is the number of the attempt that just failed (1-based).
 */
export function backoffCeilingMs(settings: RetrySettings, attempt: number): number {
  const exponent = Math.max(0, attempt - 1);
  const raw = settings.initial_backoff * settings.backoff_multiplier ** exponent;
  return Math.min(settings.max_backoff, raw) * 1000;
}

/**
 * Decide what follows a failed attempt. Full jitter (delay uniform in [0, ceiling)) as in AWS's backoff guidance and
 * Step Functions' `JitterStrategy: FULL`: it spreads a burst of failures instead of retrying them in lockstep.
 * `random` returns [0, 1); injected so the policy stays pure and testable.
 */
export function decideRetry(
  config: Config,
  input: { attempt: number; taskType: string; errorClass: ErrorClass; random: () => number },
): RetryDecision {
  if (!isRetryable(input.errorClass)) return { retry: false, reason: 'non_retryable' };
  const settings = retrySettingsFor(config, input.taskType);
  if (input.attempt >= settings.max_attempts) return { retry: false, reason: 'attempts_exhausted' };
  const ceilingMs = backoffCeilingMs(settings, input.attempt);
  // A faulty random source (NaN, out of range) must not produce a NaN or negative delay.
  const drawn = input.random();
  const r = Number.isFinite(drawn) ? Math.min(Math.max(drawn, 0), 1 - Number.EPSILON) : 0.5;
  const delayMs = settings.jitter === 'full' ? Math.floor(r * ceilingMs) : ceilingMs;
  return { retry: true, delayMs, ceilingMs, nextAttempt: input.attempt + 1 };
}
