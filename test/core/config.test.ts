import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/core/errors.ts';
import { defaultConfig, validateConfig } from '../../lib/core/config.ts';
import { parseConfig } from '../../lib/core/config-yaml.ts';

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('match the seed', () => {
    const c = defaultConfig();
    expect(c.orchestrator).toMatchObject({
      poll_interval: 30,
      max_concurrent_tasks: 5,
      claude_timeout: 3600,
      stop_hook_file: '.claude_stop',
      claude_command: 'claude',
    });
    expect(c.priority_weights).toEqual({ urgency: 0.4, deadline: 0.3, sender: 0.3 });
    expect(c.retry).toMatchObject({ max_attempts: 5, initial_backoff: 60, backoff_multiplier: 2, max_backoff: 3600 });
    expect(c.health_check).toMatchObject({ max_backlog: 20, max_error_rate: 0.1, max_idle_time: 3600 });
    expect(c.dashboard).toEqual({ refresh_interval: 5, max_recent_tasks: 10 });
    expect(c.metrics).toEqual({ enabled: true, retention_days: 30, aggregation_interval: 300 });
    expect(c.approval.timeout).toBe(72 * 3600);
  });

  it('come from an empty file too', () => {
    expect(parseConfig('')).toEqual(defaultConfig());
    expect(parseConfig('# only a comment\n')).toEqual(defaultConfig());
  });
});

describe('the template config/orchestrator.yaml', () => {
  const text = readFileSync(new URL('../../config/orchestrator.yaml', import.meta.url), 'utf8');

  it('is valid and documents the defaults', () => {
    const env = { FTE_WEBHOOK_SECRET: 's3cret' };
    const c = parseConfig(text, env, 'config/orchestrator.yaml');
    expect(c.orchestrator.max_concurrent_tasks).toBe(defaultConfig().orchestrator.max_concurrent_tasks);
    expect(c.retry.max_attempts).toBe(5);
  });

  it('mentions every top-level setting', () => {
    for (const key of Object.keys(defaultConfig())) expect(text).toMatch(new RegExp(`^#? ?${key}:`, 'm'));
  });
});

describe('environment substitution', () => {
  it('replaces ${VAR} and ${VAR:-default}, typing whole-value references', () => {
    const c = parseConfig(
      [
        'orchestrator:',
        '  max_concurrent_tasks: ${FTE_MAX:-3}',
        '  claude_command: ${CLAUDE_BIN}',
        '  claude_timeout: ${FTE_TIMEOUT:-45m}',
        'notifications:',
        '  webhook_url: https://hooks.example.com/${HOOK_PATH}/x',
        'metrics:',
        '  enabled: ${FTE_METRICS:-true}',
      ].join('\n'),
      { CLAUDE_BIN: '/opt/claude', HOOK_PATH: 'abc', FTE_MAX: '' },
    );
    expect(c.orchestrator.max_concurrent_tasks).toBe(3);
    expect(c.orchestrator.claude_command).toBe('/opt/claude');
    expect(c.orchestrator.claude_timeout).toBe(2700);
    expect(c.notifications.webhook_url).toBe('https://hooks.example.com/abc/x');
    expect(c.metrics.enabled).toBe(true);
  });

  it('takes the environment over the default', () => {
    const c = parseConfig('orchestrator:\n  max_concurrent_tasks: ${FTE_MAX:-3}\n', { FTE_MAX: '8' });
    expect(c.orchestrator.max_concurrent_tasks).toBe(8);
  });

  it('cannot inject YAML structure through a variable', () => {
    const c = parseConfig('orchestrator:\n  claude_command: "run ${X}"\n', { X: 'a\nmax_concurrent_tasks: 99' });
    expect(c.orchestrator.claude_command).toBe('run a\nmax_concurrent_tasks: 99');
    expect(c.orchestrator.max_concurrent_tasks).toBe(5);
  });

  it('fails naming the key and the variable when a variable is unset without default', () => {
    const err = configError(() => parseConfig('orchestrator:\n  claude_command: ${NOPE}\n', {}));
    expect(err.issues).toEqual([
      { path: 'orchestrator.claude_command', message: 'environment variable NOPE is not set and has no default' },
    ]);
  });
});

describe('validation errors name the key', () => {
  it('rejects an unknown top-level key with the allowed keys and a suggestion', () => {
    const err = configError(() => parseConfig('orchestrater:\n  poll_interval: 5\n'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues[0]?.path).toBe('');
    expect(err.issues[0]?.message).toMatch(/unknown key "orchestrater" \(did you mean "orchestrator"\?\)/);
    expect(err.issues[0]?.message).toMatch(/allowed keys: orchestrator, claude, priority_weights/);
  });

  it('rejects a mistyped nested key with its section', () => {
    const err = configError(() => parseConfig('orchestrator:\n  max_concurent_tasks: 3\n', {}, 'my.yaml'));
    expect(err.message).toContain('my.yaml is invalid');
    expect(err.issues[0]?.path).toBe('orchestrator');
    expect(err.issues[0]?.message).toContain('unknown key "max_concurent_tasks" (did you mean "max_concurrent_tasks"?)');
  });

  it('rejects a wrong type with the path', () => {
    const err = configError(() => parseConfig('orchestrator:\n  max_concurrent_tasks: five\n'));
    expect(err.issues[0]?.path).toBe('orchestrator.max_concurrent_tasks');
    expect(err.issues[0]?.message).toMatch(/expected number/);
  });

  it('lists the allowed values of an enum', () => {
    const err = configError(() => parseConfig('retry:\n  jitter: sometimes\n'));
    expect(err.issues[0]?.path).toBe('retry.jitter');
    expect(err.issues[0]?.message).toMatch(/"full"\|"none"/);
  });

  it('requires the weights to sum to 1', () => {
    const err = configError(() => validateConfig({ priority_weights: { urgency: 0.5, deadline: 0.3, sender: 0.3 } }));
    expect(err.issues[0]).toEqual({ path: 'priority_weights', message: 'urgency + deadline + sender must sum to 1' });
    expect(validateConfig({ priority_weights: { urgency: 0.5, deadline: 0.25, sender: 0.25 } }).priority_weights.urgency).toBe(0.5);
  });

  it('rejects a bad duration string and a max_backoff below initial_backoff', () => {
    expect(configError(() => validateConfig({ approval: { timeout: 'three days' } })).issues[0]).toMatchObject({
      path: 'approval.timeout',
      message: expect.stringMatching(/duration such as 30m/),
    });
    expect(configError(() => validateConfig({ retry: { initial_backoff: 600, max_backoff: 60 } })).issues[0]).toEqual({
      path: 'retry.max_backoff',
      message: 'max_backoff must be at least initial_backoff',
    });
  });

  it('rejects bad YAML with the line', () => {
    const err = configError(() => parseConfig('orchestrator:\n  poll_interval: [1, 2\n'));
    expect(err.issues[0]?.message).toMatch(/^YAML: .*line/s);
  });

  it('rejects duplicate keys rather than keeping the last one silently', () => {
    expect(() => parseConfig('orchestrator:\n  poll_interval: 5\n  poll_interval: 6\n')).toThrow(ConfigError);
  });

  it('rejects a top level that is not a mapping', () => {
    expect(configError(() => parseConfig('- a\n- b\n')).issues[0]?.message).toMatch(/mapping/);
  });

  it('accepts durations as strings', () => {
    const c = validateConfig({ orchestrator: { claude_timeout: '2h', poll_interval: '10s' }, approval: { timeout: '3d' } });
    expect(c.orchestrator.claude_timeout).toBe(7200);
    expect(c.orchestrator.poll_interval).toBe(10);
    expect(c.approval.timeout).toBe(259_200);
  });

  it('lower-cases sender patterns', () => {
    expect(validateConfig({ vip_senders: ['CEO@Company.com'] }).vip_senders).toEqual(['ceo@company.com']);
  });
});
