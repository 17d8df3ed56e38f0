// A namespace import, as everywhere in lib/ and lambda/: `import { z }` binds zod's namespace object, which holds every
// locale (~260 KB), and esbuild then bundles all of them into each Lambda; `z.object` on a namespace import shakes.
import * as z from 'zod';
import { ConfigError, type ConfigIssue } from './errors.ts';
import { parseDurationMs } from './duration.ts';

/**
 * The orchestrator's settings: every key of the seed's `config/orchestrator.yaml` plus what fte adds. Keys are
 * snake_case as users write them; durations are seconds (a number, or a string such as `72h`). Unknown keys fail
 * with their path, the allowed keys, and the nearest allowed spelling — a typo must never silently fall back to a
 * default.
 */

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] as number;
}

function nearest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** A config section: a strict object whose unknown-key error lists what is allowed. */
function section<T extends z.ZodRawShape>(shape: T) {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code !== 'unrecognized_keys') return undefined;
      return issue.keys
        .map((k) => {
          const hint = nearest(k, allowed);
          return `unknown key "${k}"${hint ? ` (did you mean "${hint}"?)` : ''}; allowed keys: ${allowed.join(', ')}`;
        })
        .join('; ');
    },
  });
}

/** Seconds, written as a number or as a duration string (`90s`, `30m`, `72h`, `7d`). */
const seconds = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const ms = parseDurationMs(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `expected seconds or a duration such as 30m, 24h, 7d; got "${value}"` });
    return z.NEVER;
  }
  return ms / 1000;
});
const positiveSeconds = seconds.pipe(z.number().positive());
const nonNegativeSeconds = seconds.pipe(z.number().nonnegative());

const positiveInt = z.number().int().positive();
const probability = z.number().min(0).max(1);
const nonEmpty = z.string().min(1);

/** A sender pattern: an exact address (`ceo@company.com`) or a whole domain (`@company.com` or `company.com`). */
const senderPattern = z
  .string()
  .min(1)
  .transform((s) => s.trim().toLowerCase());

const retryOverride = section({
  max_attempts: positiveInt.optional(),
  initial_backoff: positiveSeconds.optional(),
  backoff_multiplier: z.number().min(1).optional(),
  max_backoff: positiveSeconds.optional(),
  jitter: z.enum(['full', 'none']).optional(),
});

export const NOTIFICATION_EVENTS = [
  'task_failed',
  'task_dead_lettered',
  'approval_requested',
  'approval_expired',
  'health_degraded',
  'orchestrator_stopped',
  'budget_exhausted',
] as const;

const webhookTarget = section({
  url: z.url(),
  format: z.enum(['slack', 'json']).default('json'),
  events: z.array(z.enum(NOTIFICATION_EVENTS)).optional(),
  /** HMAC-SHA256 signing secret; write it as `${FTE_WEBHOOK_SECRET}` so it stays out of the file. */
  secret: z.string().optional(),
});

export const configSchema = section({
  orchestrator: section({
    poll_interval: positiveSeconds.default(30),
    max_concurrent_tasks: positiveInt.max(1000).default(5),
    claude_timeout: positiveSeconds.default(3600),
    stop_hook_file: nonEmpty.default('.claude_stop'),
    claude_command: nonEmpty.default('claude'),
    max_iterations: positiveInt.max(1000).default(10),
    completion_promise: nonEmpty.default('<promise>DONE</promise>'),
    heartbeat_interval: positiveSeconds.default(5),
    kill_grace_period: positiveSeconds.default(10),
    /** On SIGTERM/SIGINT, how long running agents may finish before they are stopped and their tasks requeued. */
    shutdown_timeout: positiveSeconds.default(30),
    /** A running task whose orchestrator has not renewed its heartbeat for this long is taken as crashed. */
    lease_timeout: positiveSeconds.default(60),
  }).prefault({}),
  claude: section({
    model: nonEmpty.optional(),
    max_turns: positiveInt.optional(),
    max_budget_usd: z.number().positive().optional(),
    allowed_tools: z.array(nonEmpty).default([]),
    disallowed_tools: z.array(nonEmpty).default([]),
    permission_mode: z.enum(['default', 'acceptEdits', 'plan', 'bypassPermissions']).optional(),
    planning_permission_mode: z.enum(['default', 'acceptEdits', 'plan', 'bypassPermissions']).default('plan'),
    append_system_prompt: z.string().optional(),
    extra_args: z.array(z.string()).default([]),
  }).prefault({}),
  priority_weights: section({
    urgency: probability.default(0.4),
    deadline: probability.default(0.3),
    sender: probability.default(0.3),
  })
    .prefault({})
    .refine((w) => Math.abs(w.urgency + w.deadline + w.sender - 1) < 1e-6, {
      message: 'urgency + deadline + sender must sum to 1',
    }),
  priority: section({
    /** Score added per hour of waiting; see lib/core/scoring.ts for the starvation bound it buys. */
    age_boost_per_hour: z.number().positive().default(0.025),
    /** Ceiling of score + age boost; must be at least 5 (the highest base score). */
    max_score: z.number().min(5).max(100).default(6),
  }).prefault({}),
  vip_senders: z.array(senderPattern).default([]),
  client_senders: z.array(senderPattern).default([]),
  team_domains: z.array(senderPattern).default([]),
  known_senders: z.array(senderPattern).default([]),
  /** Sender score of a note with no sender at all (the operator's own note). */
  no_sender_score: z.number().int().min(1).max(5).default(3),
  approval: section({
    required_types: z.array(nonEmpty).default(['payment', 'deploy']),
    keywords: z
      .array(nonEmpty)
      .default(['deploy', 'production', 'delete', 'pay', 'payment', 'paid', 'wire', 'send email', 'execute', 'remove', 'transfer', 'purchase', 'refund']),
    timeout: positiveSeconds.default(72 * 3600),
  }).prefault({}),
  retry: section({
    max_attempts: positiveInt.max(100).default(5),
    initial_backoff: positiveSeconds.default(60),
    backoff_multiplier: z.number().min(1).default(2),
    max_backoff: positiveSeconds.default(3600),
    jitter: z.enum(['full', 'none']).default('full'),
    per_type: z.record(z.string(), retryOverride).default({}),
  })
    .prefault({})
    .refine((r) => r.max_backoff >= r.initial_backoff, {
      message: 'max_backoff must be at least initial_backoff',
      path: ['max_backoff'],
    }),
  budget: section({
    per_task_usd: z.number().positive().optional(),
    daily_usd: z.number().positive().optional(),
    per_type_daily_usd: z.record(z.string(), z.number().positive()).default({}),
  }).prefault({}),
  metrics: section({
    enabled: z.boolean().default(true),
    retention_days: positiveInt.default(30),
    aggregation_interval: positiveSeconds.default(300),
  }).prefault({}),
  health_check: section({
    max_backlog: z.number().int().nonnegative().default(20),
    max_error_rate: probability.default(0.1),
    max_idle_time: positiveSeconds.default(3600),
    max_heartbeat_age: positiveSeconds.default(60),
    max_approval_age: positiveSeconds.default(24 * 3600),
    error_rate_window: positiveSeconds.default(3600),
  }).prefault({}),
  dashboard: section({
    refresh_interval: positiveSeconds.default(5),
    max_recent_tasks: positiveInt.max(1000).default(10),
  }).prefault({}),
  api: section({
    port: z.number().int().min(0).max(65535).default(8787),
  }).prefault({}),
  notifications: section({
    enabled: z.boolean().default(false),
    /** The seed's single Slack webhook; `targets` adds more. */
    webhook_url: z.url().optional(),
    events: z.array(z.enum(NOTIFICATION_EVENTS)).default(['task_failed', 'health_degraded', 'orchestrator_stopped']),
    targets: z.array(webhookTarget).default([]),
    max_attempts: positiveInt.max(20).default(5),
    timeout: nonNegativeSeconds.default(10),
  }).prefault({}),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** The defaults, as a config file with nothing in it. */
export function defaultConfig(): Config {
  return configSchema.parse({});
}

/** Validate an already-parsed object (e.g. CDK context). */
export function validateConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const issues: ConfigIssue[] = result.error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
  throw new ConfigError(issues, source);
}

/** Retry settings for one task type: the `per_type` override merged over the defaults. */
export function retrySettingsFor(config: Config, taskType: string) {
  const { per_type: perType, ...base } = config.retry;
  // Task types are lower-cased by the parser; settings written as `Payment:` must still apply to them.
  const wanted = taskType.toLowerCase();
  const override = perType[taskType] ?? Object.entries(perType).find(([k]) => k.toLowerCase() === wanted)?.[1] ?? {};
  const merged = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value !== undefined) Object.assign(merged, { [key]: value });
  }
  return merged;
}
export type RetrySettings = ReturnType<typeof retrySettingsFor>;
