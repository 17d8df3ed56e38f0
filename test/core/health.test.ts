import { describe, expect, it } from 'vitest';
import { defaultConfig, validateConfig } from '../../lib/core/config.ts';
import type { HealthCheck, HealthInput, HealthReport, HealthStatus } from '../../lib/core/health.ts';
import { evaluateHealth, healthExitCode, worstStatus } from '../../lib/core/health.ts';

const config = defaultConfig();
const NOW = Date.parse('2025-03-10T12:00:00.000Z');
const ago = (seconds: number) => new Date(NOW - seconds * 1000);

/** Everything fine: a fresh heartbeat, a short queue, recent completions, nothing failing, no approvals pending. */
function input(overrides: Partial<HealthInput> = {}): HealthInput {
  return {
    now: new Date(NOW),
    heartbeatAt: ago(5),
    stopped: false,
    queued: 3,
    running: 1,
    recentCompleted: 10,
    recentFailed: 0,
    lastCompletionAt: ago(60),
    oldestQueuedAt: ago(120),
    oldestApprovalRequestedAt: null,
    ...overrides,
  };
}

function check(report: HealthReport, name: string): HealthCheck {
  const found = report.checks.find((c) => c.name === name);
  if (found === undefined) throw new Error(`no check ${name}`);
  return found;
}

const run = (overrides: Partial<HealthInput>, name: string, cfg = config) => check(evaluateHealth(input(overrides), cfg), name);

describe('evaluateHealth', () => {
  it('is healthy with all six checks when all is well', () => {
    const report = evaluateHealth(input(), config);
    expect(report.status).toBe('healthy');
    expect(report.checks.map((c) => c.name)).toEqual([
      'scheduler', 'backlog', 'error_rate', 'idle', 'approval_age', 'stop_flag',
    ]);
    for (const c of report.checks) {
      expect(c.status).toBe('healthy');
      expect(c.message).toMatch(/^[A-Z0-9].*\.$/);
    }
  });

  describe('scheduler', () => {
    it.each([
      [59, 'healthy'],
      [60, 'healthy'],
      [61, 'unhealthy'],
    ] as const)('heartbeat %i s old is %s (limit 60 s)', (age, status) => {
      const c = run({ heartbeatAt: ago(age) }, 'scheduler');
      expect(c).toMatchObject({ status, value: age, threshold: 60 });
    });

    it('no heartbeat at all is unhealthy with a null value', () => {
      const c = run({ heartbeatAt: null }, 'scheduler');
      expect(c).toMatchObject({ status: 'unhealthy', value: null, threshold: 60 });
      expect(c.message).toContain('heartbeat');
    });

    it('a heartbeat slightly in the future counts as age 0', () => {
      expect(run({ heartbeatAt: ago(-2) }, 'scheduler')).toMatchObject({ status: 'healthy', value: 0 });
    });

    it('says how old the heartbeat is', () => {
      expect(run({ heartbeatAt: ago(300) }, 'scheduler').message).toBe(
        'Last scheduler heartbeat was 5m ago, older than the limit of 1m.',
      );
    });
  });

  describe('backlog', () => {
    it.each([
      [19, 'healthy'],
      [20, 'healthy'],
      [21, 'degraded'],
      [100, 'degraded'],
      [101, 'unhealthy'],
    ] as const)('%i waiting is %s (limit 20, unhealthy above 100)', (queued, status) => {
      expect(run({ queued }, 'backlog')).toMatchObject({ status, value: queued, threshold: 20 });
    });

    it('reads as one sentence with the numbers', () => {
      expect(run({ queued: 42 }, 'backlog').message).toBe('42 tasks waiting, above the limit of 20.');
      expect(run({ queued: 1 }, 'backlog').message).toBe('1 task waiting, within the limit of 20.');
    });
  });

  describe('error_rate', () => {
    it.each([
      // [completed, failed, status, value]
      [91, 9, 'healthy', 0.09],
      [90, 10, 'healthy', 0.1], // exactly at the limit
      [89, 11, 'degraded', 0.11],
      [70, 30, 'degraded', 0.3], // exactly 3× the limit
      [69, 31, 'unhealthy', 0.31], // above 3×
      [0, 0, 'healthy', 0],
    ] as const)('%i completed, %i failed is %s', (recentCompleted, recentFailed, status, value) => {
      const c = run({ recentCompleted, recentFailed }, 'error_rate');
      expect(c).toMatchObject({ status, threshold: 0.1 });
      expect(c.value).toBeCloseTo(value, 6);
    });

    it('a rate of 0.5 is unhealthy even when 3× the limit is higher', () => {
      const cfg = validateConfig({ health_check: { max_error_rate: 0.2 } });
      expect(run({ recentCompleted: 6, recentFailed: 5 }, 'error_rate', cfg).status).toBe('degraded'); // 0.4545
      expect(run({ recentCompleted: 5, recentFailed: 5 }, 'error_rate', cfg).status).toBe('unhealthy'); // 0.5
    });

    it('never escalates past a configured limit above 0.5', () => {
      const cfg = validateConfig({ health_check: { max_error_rate: 0.6 } });
      expect(run({ recentCompleted: 5, recentFailed: 5 }, 'error_rate', cfg).status).toBe('healthy');
      expect(run({ recentCompleted: 3, recentFailed: 7 }, 'error_rate', cfg).status).toBe('unhealthy');
    });

    it('fewer than 5 finished runs can only be degraded', () => {
      expect(run({ recentCompleted: 0, recentFailed: 4 }, 'error_rate')).toMatchObject({ status: 'degraded', value: 1 });
      expect(run({ recentCompleted: 1, recentFailed: 3 }, 'error_rate').status).toBe('degraded');
      expect(run({ recentCompleted: 0, recentFailed: 5 }, 'error_rate').status).toBe('unhealthy');
      expect(run({ recentCompleted: 0, recentFailed: 4 }, 'error_rate').message).toContain('too few');
    });

    it('reads as one sentence with the numbers', () => {
      expect(run({ recentCompleted: 8, recentFailed: 2 }, 'error_rate').message).toBe(
        '2 of 10 finished runs failed in the last 1h (20%), above the limit of 10%.',
      );
    });
  });

  describe('idle', () => {
    it.each([
      [3599, 'healthy'],
      [3600, 'healthy'],
      [3601, 'degraded'],
    ] as const)('work waiting and no completion for %i s is %s (limit 1 h)', (seconds, status) => {
      const c = run({ lastCompletionAt: ago(seconds), oldestQueuedAt: ago(seconds + 600) }, 'idle');
      expect(c).toMatchObject({ status, value: seconds, threshold: 3600 });
    });

    it('an empty queue is never idle, however long since the last completion', () => {
      const c = run({ queued: 0, lastCompletionAt: ago(86_400), oldestQueuedAt: null }, 'idle');
      expect(c).toMatchObject({ status: 'healthy', value: 86_400 });
      expect(c.message).toContain('no work is waiting');
    });

    it('a stopped orchestrator is not idle-degraded (the stop flag reports it)', () => {
      const report = evaluateHealth(input({ stopped: true, lastCompletionAt: ago(86_400), oldestQueuedAt: ago(90_000) }), config);
      expect(check(report, 'idle').status).toBe('healthy');
      expect(check(report, 'stop_flag').status).toBe('degraded');
    });

    it('counts only from when the work started waiting', () => {
      // Last completion a day ago, but the queue filled 10 minutes ago: idle for 10 minutes, not a day.
      expect(run({ lastCompletionAt: ago(86_400), oldestQueuedAt: ago(600) }, 'idle')).toMatchObject({
        status: 'healthy',
        value: 600,
      });
    });

    it('with no completion ever, counts from the oldest waiting task', () => {
      expect(run({ lastCompletionAt: null, oldestQueuedAt: ago(7200) }, 'idle')).toMatchObject({
        status: 'degraded',
        value: 7200,
      });
      expect(run({ lastCompletionAt: null, oldestQueuedAt: null }, 'idle')).toMatchObject({
        status: 'healthy',
        value: null,
      });
    });
  });

  describe('approval_age', () => {
    it.each([
      [86_399, 'healthy'],
      [86_400, 'healthy'],
      [86_401, 'degraded'],
    ] as const)('oldest approval %i s old is %s (limit 24 h)', (age, status) => {
      expect(run({ oldestApprovalRequestedAt: ago(age) }, 'approval_age')).toMatchObject({
        status,
        value: age,
        threshold: 86_400,
      });
    });

    it('no pending approvals is healthy with a null value', () => {
      expect(run({ oldestApprovalRequestedAt: null }, 'approval_age')).toMatchObject({ status: 'healthy', value: null });
    });
  });

  describe('stop_flag', () => {
    it('is degraded with value 1 when stopped, healthy with 0 otherwise', () => {
      expect(run({ stopped: true }, 'stop_flag')).toMatchObject({ status: 'degraded', value: 1, threshold: 0 });
      expect(run({ stopped: false }, 'stop_flag')).toMatchObject({ status: 'healthy', value: 0, threshold: 0 });
    });
  });

  describe('overall status', () => {
    it('is the worst check', () => {
      expect(evaluateHealth(input({ queued: 21 }), config).status).toBe('degraded');
      expect(evaluateHealth(input({ queued: 21, heartbeatAt: null }), config).status).toBe('unhealthy');
      expect(evaluateHealth(input({ stopped: true, oldestApprovalRequestedAt: ago(90_000) }), config).status).toBe(
        'degraded',
      );
      const report = evaluateHealth(input({ recentCompleted: 1, recentFailed: 9 }), config);
      expect(report.status).toBe('unhealthy');
      expect(report.checks.filter((c) => c.status !== 'healthy').map((c) => c.name)).toEqual(['error_rate']);
    });

    it('worstStatus orders healthy < degraded < unhealthy', () => {
      const all: HealthStatus[] = ['healthy', 'degraded', 'unhealthy'];
      expect(worstStatus([])).toBe('healthy');
      expect(worstStatus(['degraded', 'healthy'])).toBe('degraded');
      expect(worstStatus(all)).toBe('unhealthy');
      expect(worstStatus([...all].reverse())).toBe('unhealthy');
    });
  });

  it('maps statuses to exit codes 0, 1, 2', () => {
    expect(healthExitCode('healthy')).toBe(0);
    expect(healthExitCode('degraded')).toBe(1);
    expect(healthExitCode('unhealthy')).toBe(2);
  });

  it('honours configured thresholds', () => {
    const cfg = validateConfig({ health_check: { max_backlog: 5, max_heartbeat_age: '2m', max_idle_time: '10m' } });
    const report = evaluateHealth(input({ queued: 6, heartbeatAt: ago(100), lastCompletionAt: ago(700), oldestQueuedAt: ago(900) }), cfg);
    expect(check(report, 'backlog')).toMatchObject({ status: 'degraded', threshold: 5 });
    expect(check(report, 'scheduler')).toMatchObject({ status: 'healthy', threshold: 120 });
    expect(check(report, 'idle')).toMatchObject({ status: 'degraded', value: 700, threshold: 600 });
  });
});
