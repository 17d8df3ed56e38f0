import type { Context as HonoContext, Hono } from 'hono';
// Hono marks `hono/aws-lambda` deprecated for v5 in favour of `@hono/aws-lambda`, but no `@hono/aws-lambda` is
// published on npm yet (the registry answered 404 on 2026-11-26), so there is nothing to switch to: with hono 4 this
// is the adapter. Move when that package exists and the bundle test (test/cloud/api-bundle.test.ts) passes with it.
import { handle } from 'hono/aws-lambda';
import type { APIGatewayProxyResult, LambdaContext, LambdaEvent } from 'hono/aws-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import * as z from 'zod';
import { createApp } from '../lib/api/app.ts';
import { createCloudBackend } from '../lib/aws/api-backend.ts';
import type { CloudBackendDeps } from '../lib/aws/api-backend.ts';
import { TABLE_NAME_ENV } from '../lib/aws/table-design.ts';
import { createLogger, createMetrics, flushMetrics } from './observability.ts';
import { inLambda, loadConfig, requireEnv, storeFromEnv } from './runtime.ts';
import type { Env } from './runtime.ts';

/**
 * The cloud's HTTP API: the same Hono app the local runtime serves (lib/api/app.ts), behind API Gateway (HTTP API,
 * payload format 2.0) through `hono/aws-lambda`, over the cloud backend (lib/aws/api-backend.ts).
 *
 * API Gateway checks every request's SigV4 signature against IAM before this Lambda runs (every route is AWS_IAM), so
 * the app itself authenticates nothing (`auth: none`) and takes the caller's identity — the IAM principal's ARN — from
 * the request context for the approvals and stops it records.
 */

export type ApiDeps = CloudBackendDeps;

export type ApiHandler = (event: LambdaEvent, context?: LambdaContext) => Promise<APIGatewayProxyResult>;

/** Who signed the request, as API Gateway's IAM authorizer puts it into the payload 2.0 request context. */
const iamContext = z.object({
  requestContext: z.object({ authorizer: z.object({ iam: z.object({ userArn: z.string().min(1) }) }) }),
});

/**
 * The caller's IAM ARN from the bindings `hono/aws-lambda` passes to the app (`{ event, requestContext,
 * lambdaContext }`). A request without one did not come through the IAM-authorized API (a direct invocation, which
 * needs lambda:InvokeFunction and so is as privileged): it is recorded as "api", like the local API's one principal.
 */
export function callerOf(bindings: unknown): string {
  const parsed = iamContext.safeParse(bindings);
  return parsed.success ? parsed.data.requestContext.authorizer.iam.userArn : 'api';
}

export function createApiApp(deps: ApiDeps): Hono {
  return createApp({
    backend: createCloudBackend(deps),
    auth: { kind: 'none' },
    ...(deps.clock !== undefined ? { clock: deps.clock } : {}),
    identify: (c: HonoContext) => callerOf(c.env),
    onInternalError: (err, mapping) => {
      deps.logger.error('api_error', {
        code: mapping.code,
        error: err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err),
      });
    },
  });
}

/** The handler over injected dependencies; the tests call this with a table in dynalite. */
export function createApiHandler(deps: ApiDeps): ApiHandler {
  const serve = handle(createApiApp(deps));
  return async (event, context) => {
    try {
      return await serve(event, context);
    } finally {
      // POST /tasks counts admissions (TasksIngested) as the intake does (lambda/admit-task.ts); one EMF document per
      // invocation.
      flushMetrics(deps.metrics);
    }
  };
}

// ---- Lambda entry point

function initialise(env: Env): ApiHandler {
  const config = loadConfig(env);
  return createApiHandler({
    store: storeFromEnv(env, config),
    config,
    // One client per container; SendTaskSuccess is its only call.
    sfn: new SFNClient({}),
    logger: createLogger('fte-api'),
    metrics: createMetrics('fte-api'),
    location: `dynamodb:${requireEnv(env, TABLE_NAME_ENV)}`,
  });
}

let serve: ApiHandler | undefined = inLambda(process.env) ? initialise(process.env) : undefined;

export async function handler(event: LambdaEvent, context?: LambdaContext): Promise<APIGatewayProxyResult> {
  serve ??= initialise(process.env);
  return serve(event, context);
}
