import { join } from 'node:path';
import type { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { REPO_ROOT } from './settings.ts';

export interface FteFunctionProps {
  /** The handler's source, relative to the repository root (`lambda/step.ts`). */
  readonly entry: string;
  readonly description: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly timeout: Duration;
  readonly memorySize?: number;
}

/**
 * One of fte's Lambdas: Node 22, ARM (cheaper per ms for the same work), bundled to one ESM file by the esbuild
 * installed in node_modules — never in a Docker container, so synth needs no docker — with its own log group and a
 * retention, because the default keeps logs (and bills for them) forever. Its role may write to that log group only,
 * instead of the AWSLambdaBasicExecutionRole managed policy, which allows every log group in the account.
 */
export class FteFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: FteFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention: logs.RetentionDays.ONE_MONTH });
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `fte ${id} Lambda`,
    });
    logGroup.grantWrite(role);
    super(scope, id, {
      role,
      entry: join(REPO_ROOT, props.entry),
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout,
      environment: { ...props.environment, NODE_OPTIONS: '--enable-source-maps' },
      logGroup,
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      bundling: {
        format: OutputFormat.ESM,
        target: 'node22',
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // Prefer packages' ESM builds; some dependencies are CommonJS only and call `require` at run time, which an ESM
        // bundle has to provide.
        mainFields: ['module', 'main'],
        banner: "import { createRequire as __fteCreateRequire } from 'node:module'; const require = __fteCreateRequire(import.meta.url);",
        // The nodejs22.x runtime ships AWS SDK v3, so it stays out of the bundles.
        externalModules: ['@aws-sdk/*'],
        // `yaml` resolves to its CommonJS build under the node condition, which esbuild cannot tree-shake; its ESM
        // build (the same code) lets esbuild drop about 17 KB. Only the ingest Lambda parses YAML at all (task notes'
        // frontmatter): the API builds tasks from structured requests, and settings reach every Lambda as JSON.
        //
        // `--charset=utf8`: non-ASCII text (the look-alike letters table above all) is written as UTF-8, not as \u
        // escapes three times its size; Node reads the bundle as UTF-8 either way. An esbuild argument because this
        // aws-cdk-lib declares a `charset` bundling prop but does not hand it to esbuild.
        esbuildArgs: {
          '--alias:yaml': join(REPO_ROOT, 'node_modules', 'yaml', 'browser', 'index.js'),
          '--charset': 'utf8',
        },
        forceDockerBundling: false,
      },
    });
  }
}
