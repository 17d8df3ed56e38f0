import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { APIGatewayProxyResult, LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addTaskResponseSchema, errorResponseSchema, statusSchema } from '../../lib/app/contracts.ts';
import { TABLE_NAME_ENV } from '../../lib/aws/table-design.ts';
import { CONFIG_JSON_ENV } from '../../lib/cloud/runtime-env.ts';
import { REPO_ROOT } from '../../lib/cloud/settings.ts';
import { startLocalDynamo } from '../aws/local-dynamo.ts';
import type { LocalDynamo } from '../aws/local-dynamo.ts';
import { synthFteStack } from './synth.ts';

/**
 * The API Lambda as it is deployed: the esbuild bundle `cdk synth` writes (one minified ESM file, AWS SDK left to the
 * runtime), loaded by Node and invoked with API Gateway payload 2.0 events over a table in dynalite. It proves the
 * bundle runs — hono's Lambda adapter, the ESM `require` banner, the environment the stack sets — not just the sources.
 */

type Handler = (event: LambdaEvent) => Promise<APIGatewayProxyResult>;

let local: LocalDynamo;
let tableName: string;
let handler: Handler;
let bundleDir: string;
const savedEnv: Record<string, string | undefined> = {};

function setEnv(vars: Record<string, string>): void {
  for (const [k, v] of Object.entries(vars)) {
    savedEnv[k] = process.env[k];
    process.env[k] = v;
  }
}

beforeAll(async () => {
  const { app, stack, template } = synthFteStack({ bundle: true });
  const api = stack.apiFunction;
  if (api === null) throw new Error('the API is on by default');
  const id = stack.getLogicalId(api.node.defaultChild as Parameters<typeof stack.getLogicalId>[0]);
  const fn = template.toJSON()['Resources'][id] as {
    Metadata: Record<string, string>;
    Properties: { Environment: { Variables: Record<string, string> } };
  };
  // Under the repository, so the bundle finds the AWS SDK in node_modules as it finds it in the Lambda runtime.
  const cache = join(REPO_ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  bundleDir = mkdtempSync(join(cache, 'fte-api-bundle-'));
  copyFileSync(join(app.outdir, String(fn.Metadata['aws:asset:path']), 'index.mjs'), join(bundleDir, 'index.mjs'));

  local = await startLocalDynamo();
  tableName = await local.createTable();
  setEnv({
    [TABLE_NAME_ENV]: tableName,
    // The settings exactly as the stack gives them to the function.
    [CONFIG_JSON_ENV]: String(fn.Properties.Environment.Variables[CONFIG_JSON_ENV]),
    AWS_ENDPOINT_URL_DYNAMODB: local.endpoint,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    // The function's own log lines are not what this test reads.
    POWERTOOLS_LOG_LEVEL: 'SILENT',
  });
  const loaded = (await import(pathToFileURL(join(bundleDir, 'index.mjs')).href)) as { handler: Handler };
  handler = loaded.handler;
}, 120_000);

afterAll(async () => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await local.close();
  rmSync(bundleDir, { recursive: true, force: true });
});

function event(method: 'GET' | 'POST', rawPath: string, body?: unknown): LambdaEvent {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: '',
    headers: { host: 'abc123.execute-api.eu-west-1.amazonaws.com', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      authentication: null,
      authorizer: {
        iam: {
          accessKey: 'ASIAEXAMPLE',
          accountId: '123456789012',
          callerId: 'AROAEXAMPLE:bob',
          cognitoIdentity: null,
          principalOrgId: null,
          userArn: 'arn:aws:sts::123456789012:assumed-role/Operator/bob',
          userId: 'AROAEXAMPLE:bob',
        },
      },
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'test' },
      requestId: 'req-1',
      routeKey: '$default',
      stage: '$default',
      time: '10/Mar/2026:12:00:00 +0000',
      timeEpoch: 0,
    },
    body: body === undefined ? null : JSON.stringify(body),
    isBase64Encoded: false,
  };
}

describe('the bundled API Lambda', () => {
  it('serves the API from the environment the stack sets', async () => {
    const status = await handler(event('GET', '/status'));
    expect(status.statusCode).toBe(200);
    expect(statusSchema.parse(JSON.parse(status.body)).vault).toBe(`dynamodb:${tableName}`);

    const created = await handler(event('POST', '/tasks', { title: 'From the bundle' }));
    expect(created.statusCode).toBe(201);
    expect(addTaskResponseSchema.parse(JSON.parse(created.body)).task).toMatchObject({ id: 'from-the-bundle', state: 'needs_action' });

    const missing = await handler(event('GET', '/tasks/nope'));
    expect(missing.statusCode).toBe(404);
    expect(errorResponseSchema.parse(JSON.parse(missing.body)).error.code).toBe('TASK_NOT_FOUND');
  });
});
