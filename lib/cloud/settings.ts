import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as z from 'zod';
import { parseConfig } from '../core/config-yaml.ts';
import type { Config } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import type { ConfigIssue } from '../core/errors.ts';

/** The repository root: Lambda entries, the lock file and the container sources are found from here. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const DEFAULT_CONFIG_PATH = 'config/orchestrator.yaml';

/** How the Fargate runner authenticates to a Claude model. */
export type ClaudeAuth = 'anthropic' | 'bedrock';

/**
 * Everything the stack is built from: the orchestrator's own settings (the same file the local runtime reads,
 * validated by the core schema) plus the few choices that exist only in the cloud and so are CDK context, not config
 * keys — the core schema is shared with the local runtime and must not grow AWS-only keys.
 */
export interface CloudSettings {
  readonly config: Config;
  /** The file the settings came from, for messages and the dashboard. */
  readonly configSource: string;
  /** Serve the HTTP API (lambda/api.ts) behind API Gateway with IAM auth; on by default, `-c fteApi=false` turns it off. */
  readonly api: boolean;
  readonly claudeAuth: ClaudeAuth;
  /** Subscribe this address to the alarm topic; with neither this nor alarmTopicArn, alarms only show in CloudWatch. */
  readonly alarmEmail: string | null;
  /** Send alarms to this existing SNS topic. */
  readonly alarmTopicArn: string | null;
  /** A prebuilt runner image (`registry/repo:tag`) instead of building container/ at deploy time. */
  readonly runnerImage: string | null;
  readonly runnerCpu: number;
  readonly runnerMemoryMiB: number;
}

/** Context keys (`cdk synth -c key=value`, or cdk.json `context`). */
export const CONTEXT_KEYS = {
  config: 'fteConfig',
  api: 'fteApi',
  claudeAuth: 'fteClaudeAuth',
  alarmEmail: 'fteAlarmEmail',
  alarmTopicArn: 'fteAlarmTopicArn',
  runnerImage: 'fteRunnerImage',
  runnerCpu: 'fteRunnerCpu',
  runnerMemoryMiB: 'fteRunnerMemoryMiB',
} as const;

// `-c key=value` always arrives as a string; cdk.json may hold real booleans and numbers. Both spellings are accepted.
const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((s) => s === 'true')]);
const count = z.union([z.number(), z.string().regex(/^\d+$/).transform(Number)]);
// Fargate accepts only these CPU units, each with its own memory range (checked below).
const FARGATE_MEMORY_MIB: Readonly<Record<number, readonly [number, number]>> = {
  256: [512, 2048],
  512: [1024, 4096],
  1024: [2048, 8192],
  2048: [4096, 16384],
  4096: [8192, 30720],
};

const contextSchema = z
  .object({
    [CONTEXT_KEYS.config]: z.string().min(1).default(DEFAULT_CONFIG_PATH),
    [CONTEXT_KEYS.api]: flag.default(true),
    [CONTEXT_KEYS.claudeAuth]: z.enum(['anthropic', 'bedrock']).default('anthropic'),
    [CONTEXT_KEYS.alarmEmail]: z.email().optional(),
    [CONTEXT_KEYS.alarmTopicArn]: z.string().regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$/).optional(),
    [CONTEXT_KEYS.runnerImage]: z.string().min(1).optional(),
    [CONTEXT_KEYS.runnerCpu]: count.pipe(z.number().refine((n) => n in FARGATE_MEMORY_MIB, {
      message: `a Fargate CPU size: ${Object.keys(FARGATE_MEMORY_MIB).join(', ')}`,
    })).default(1024),
    [CONTEXT_KEYS.runnerMemoryMiB]: count.pipe(z.number().int().positive()).default(2048),
  })
  .superRefine((c, ctx) => {
    const range = FARGATE_MEMORY_MIB[c[CONTEXT_KEYS.runnerCpu]];
    const memory = c[CONTEXT_KEYS.runnerMemoryMiB];
    if (range !== undefined && (memory < range[0] || memory > range[1])) {
      ctx.addIssue({
        code: 'custom',
        path: [CONTEXT_KEYS.runnerMemoryMiB],
        message: `${memory} MiB does not fit ${c[CONTEXT_KEYS.runnerCpu]} CPU units (allowed ${range[0]}–${range[1]})`,
      });
    }
  });

/** Reads one context value; `Node.tryGetContext` has this shape. */
export type ContextReader = (key: string) => unknown;

/**
 * Validate the context and the config file. Throws ConfigError naming every bad key (`orchestrator.max_concurrent_tasks`,
 * `context.fteRunnerCpu`), so a bad setting fails `cdk synth` before anything is built.
 */
export function loadCloudSettings(
  readContext: ContextReader,
  env: Readonly<Record<string, string | undefined>> = process.env,
  root: string = REPO_ROOT,
): CloudSettings {
  const raw = Object.fromEntries(Object.values(CONTEXT_KEYS).map((key) => [key, readContext(key)]).filter(([, v]) => v !== undefined));
  const parsed = contextSchema.safeParse(raw);
  if (!parsed.success) {
    const issues: ConfigIssue[] = parsed.error.issues.map((issue) => ({
      path: ['context', ...issue.path.map(String)].join('.'),
      message: issue.message,
    }));
    throw new ConfigError(issues, 'CDK context');
  }
  const context = parsed.data;
  const configPath = context[CONTEXT_KEYS.config];
  const file = isAbsolute(configPath) ? configPath : resolve(root, configPath);
  if (!existsSync(file)) {
    throw new ConfigError([{ path: `context.${CONTEXT_KEYS.config}`, message: `file not found: ${file}` }], 'CDK context');
  }
  return {
    config: parseConfig(readFileSync(file, 'utf8'), env, configPath),
    configSource: configPath,
    api: context[CONTEXT_KEYS.api],
    claudeAuth: context[CONTEXT_KEYS.claudeAuth],
    alarmEmail: context[CONTEXT_KEYS.alarmEmail] ?? null,
    alarmTopicArn: context[CONTEXT_KEYS.alarmTopicArn] ?? null,
    runnerImage: context[CONTEXT_KEYS.runnerImage] ?? null,
    runnerCpu: context[CONTEXT_KEYS.runnerCpu],
    runnerMemoryMiB: context[CONTEXT_KEYS.runnerMemoryMiB],
  };
}

/**
 * The config as the Lambdas and the runner receive it (an environment variable): the validated settings with secrets
 * removed. A webhook secret written as `${FTE_WEBHOOK_SECRET}` is substituted at synth time and would otherwise be
 * baked into the template in clear text; the cloud runtime does not send webhooks (alarms go through SNS).
 */
export function runtimeConfig(config: Config): Config {
  return {
    ...config,
    notifications: {
      ...config.notifications,
      targets: config.notifications.targets.map(({ secret: _secret, ...target }) => target),
    },
  };
}
