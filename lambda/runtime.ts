import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoTaskStore } from '../lib/aws/dynamodb-store.ts';
import { TABLE_NAME_ENV } from '../lib/aws/table-design.ts';
import { CONFIG_JSON_ENV } from '../lib/cloud/runtime-env.ts';
import { validateConfig } from '../lib/core/config.ts';
import type { Config } from '../lib/core/config.ts';

/**
 * What every handler reads from its environment when its container starts. A missing or invalid setting throws here,
 * naming the variable or the config key, so a bad deployment fails on its first invocation with a message that says
 * what to fix — never halfway through a task.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** A Lambda environment variable is missing or unreadable. */
export class LambdaEnvError extends Error {
  readonly code = 'LAMBDA_ENV_INVALID' as const;

  constructor(
    readonly variable: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export function requireEnv(env: Env, name: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new LambdaEnvError(name, `environment variable ${name} is not set; the stack sets it on every fte Lambda`);
  }
  return value;
}

/**
 * The orchestrator settings from FTE_CONFIG_JSON, validated by the core schema. Throws LambdaEnvError when the variable
 * is missing or not JSON, and the core ConfigError (code CONFIG_INVALID, one line per bad key) when a key is wrong.
 */
export function loadConfig(env: Env): Config {
  const text = requireEnv(env, CONFIG_JSON_ENV);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new LambdaEnvError(CONFIG_JSON_ENV, `${CONFIG_JSON_ENV} is not valid JSON: ${String(err)}`, { cause: err });
  }
  return validateConfig(raw, CONFIG_JSON_ENV);
}

/** One DynamoDB client per container, reused across invocations (connection reuse is most of a warm call's speed). */
export function storeFromEnv(env: Env, config: Config): DynamoTaskStore {
  const tableName = requireEnv(env, TABLE_NAME_ENV);
  const client = DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return new DynamoTaskStore({ client, tableName, historyRetentionDays: config.metrics.retention_days });
}

/** Whether this module runs inside Lambda, where handlers initialise (and fail) at cold start. */
export function inLambda(env: Env): boolean {
  return env['AWS_LAMBDA_FUNCTION_NAME'] !== undefined;
}
