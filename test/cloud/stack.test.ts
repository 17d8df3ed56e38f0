import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { App, Aspects, Stack } from 'aws-cdk-lib';
import type { CfnElement } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { SynthesisMessage } from 'aws-cdk-lib/cx-api';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FteApi } from '../../lib/cloud/api.ts';
import { FTE_METRICS } from '../../lib/cloud/monitoring.ts';
import { METRICS as HANDLER_METRICS } from '../../lambda/observability.ts';
import { CONFIG_JSON_ENV, RUNNER_PUT_ITEM_ATTRIBUTES, STATE_MACHINE_ARN_ENV } from '../../lib/cloud/runtime-env.ts';
import { TABLE, TABLE_NAME_ENV } from '../../lib/aws/table-design.ts';
import { API_TABLE_ACTIONS } from '../../lib/cloud/fte-stack.ts';
import { defaultConfig, validateConfig } from '../../lib/core/config.ts';
import { ConfigError } from '../../lib/core/errors.ts';
import { renderDefinition } from './asl.ts';
import { synthFteStack } from './synth.ts';
import type { Synthesized } from './synth.ts';

/**
 * The stack as `cdk synth` builds it — Lambdas and the runner bundled by esbuild, cdk-nag's AwsSolutions pack applied —
 * synthesized once for the whole file; a few variants (other settings) are synthesized without bundling.
 */

type Json = Record<string, unknown>;
interface Resource {
  Type: string;
  Properties: Json;
  Metadata?: Json;
  DeletionPolicy?: string;
}
interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Json;
}

let synthesized: Synthesized;
let template: Template;

beforeAll(() => {
  synthesized = synthFteStack({ bundle: true, nag: true });
  template = synthesized.template;
}, 60_000);

function resources(type: string): [string, Resource][] {
  return Object.entries(template.findResources(type)) as [string, Resource][];
}

function only(type: string): Resource {
  const found = resources(type);
  expect(found, type).toHaveLength(1);
  return (found[0] as [string, Resource])[1];
}

function functionByEntry(name: 'Ingest' | 'Scheduler' | 'Step' | 'Api'): Resource {
  const { stack } = synthesized;
  const fn = { Ingest: stack.ingestFunction, Scheduler: stack.schedulerFunction, Step: stack.stepFunction, Api: stack.apiFunction }[name];
  if (fn === null) throw new Error(`the stack has no ${name} function`);
  return template.toJSON()['Resources'][logicalId(fn)] as Resource;
}

function logicalId(construct: IConstruct): string {
  return synthesized.stack.getLogicalId(construct.node.defaultChild as CfnElement);
}

function statementsOf(roleLogicalIdPrefix: string): Statement[] {
  return resources('AWS::IAM::Policy')
    .filter(([id]) => id.startsWith(roleLogicalIdPrefix))
    .flatMap(([, r]) => (r.Properties['PolicyDocument'] as { Statement: Statement[] }).Statement);
}

function actions(statements: Statement[]): string[] {
  return statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
}

describe('the tasks table', () => {
  it('follows table-design.ts: pk/sk, the byState index, TTL, on demand', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: TABLE.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE.sortKey, KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: TABLE.ttlAttribute, Enabled: true },
      GlobalSecondaryIndexes: [
        {
          IndexName: TABLE.byState.indexName,
          KeySchema: [
            { AttributeName: TABLE.byState.partitionKey, KeyType: 'HASH' },
            { AttributeName: TABLE.byState.sortKey, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    });
  });

  it('has point-in-time recovery and encryption, and outlives the stack', () => {
    const table = only('AWS::DynamoDB::Table');
    expect(table.Properties['PointInTimeRecoverySpecification']).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.Properties['SSESpecification']).toEqual({ SSEEnabled: true });
    expect(table.DeletionPolicy).toBe('Retain');
  });
});

describe('intake', () => {
  it('has a queue with a dead-letter queue, both encrypted and TLS-only', () => {
    const queues = resources('AWS::SQS::Queue');
    expect(queues).toHaveLength(2);
    const [intakeId, intake] = queues.find(([, q]) => q.Properties['RedrivePolicy'] !== undefined) as [string, Resource];
    const [dlqId] = queues.find(([id]) => id !== intakeId) as [string, Resource];
    expect(intake.Properties['RedrivePolicy']).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] },
      maxReceiveCount: 5,
    });
    for (const [, queue] of queues) expect(queue.Properties['SqsManagedSseEnabled']).toBe(true);
    const policies = resources('AWS::SQS::QueuePolicy');
    expect(policies).toHaveLength(2);
    for (const [, policy] of policies) {
      expect((policy.Properties['PolicyDocument'] as { Statement: Statement[] }).Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    }
  });

  it('feeds the ingest Lambda with partial batch failures', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: logicalId(synthesized.stack.ingestFunction) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BatchSize: 10,
    });
  });
});

describe('Lambdas', () => {
  it('are Node 22 ESM bundles of the handler files, with the table and the validated settings', () => {
    for (const name of ['Ingest', 'Scheduler', 'Step', 'Api'] as const) {
      const fn = functionByEntry(name);
      expect(fn.Properties['Runtime']).toBe('nodejs22.x');
      expect(fn.Properties['Handler']).toBe('index.handler');
      const env = (fn.Properties['Environment'] as { Variables: Record<string, unknown> }).Variables;
      expect(env[TABLE_NAME_ENV]).toEqual({ Ref: logicalId(synthesized.stack.table) });
      const config = validateConfig(JSON.parse(String(env[CONFIG_JSON_ENV])));
      expect(config.orchestrator.max_concurrent_tasks).toBe(5);
      expect(config.approval.timeout).toBe(72 * 3600);
    }
    expect(Object.keys((functionByEntry('Scheduler').Properties['Environment'] as { Variables: Json }).Variables)).toContain(
      STATE_MACHINE_ARN_ENV,
    );
  });

  it('were bundled by the local esbuild to one ESM file each; sizes are reported', () => {
    const sizes: Record<string, { js: number; gzip: number }> = {};
    for (const name of ['Ingest', 'Scheduler', 'Step', 'Api'] as const) {
      const assetPath = functionByEntry(name).Metadata?.['aws:asset:path'];
      expect(typeof assetPath).toBe('string');
      const file = join(synthesized.app.outdir, String(assetPath), 'index.mjs');
      const code = readFileSync(file);
      // The ESM banner NodejsFunction was given: proof this is our esbuild output, not a copy of the sources.
      expect(code.subarray(0, 200).toString()).toContain('__fteCreateRequire(import.meta.url)');
      sizes[name] = { js: statSync(file).size, gzip: gzipSync(code).length };
    }
    // The target: at most 300 KB of minified JavaScript per bundle. What keeps them there: zod is imported as
    // a namespace (`import * as z from 'zod'`), so esbuild drops `z.locales` (about 260 KB of translations; `import
    // { z }` pulls in all of them); YAML parsing of config files lives in lib/core/config-yaml.ts, which no Lambda
    // imports (they get settings as JSON); and the API builds `POST /tasks` tasks from the request's fields
    // (lib/aws/new-task.ts) instead of parsing a note, so only the ingest Lambda carries the `yaml` package (~98 KB).
    // The rest of every bundle is zod (~97 KB) and Powertools (~34 KB); see docs/CLOUD.md §7.8.
    console.info('Lambda bundle sizes (bytes):', JSON.stringify(sizes));
    const LAMBDA_BUNDLE_CAP = 300_000;
    for (const [name, size] of Object.entries(sizes)) expect(size.js, name).toBeLessThanOrEqual(LAMBDA_BUNDLE_CAP);
  });

  it('each have their own log group with a retention, and may write to it only', () => {
    for (const [id, fn] of resources('AWS::Lambda::Function')) {
      expect(fn.Properties['LoggingConfig'], id).toEqual({ LogGroup: { Ref: expect.stringMatching(/Logs/) } });
    }
    for (const [, group] of resources('AWS::Logs::LogGroup')) expect(group.Properties['RetentionInDays']).toBe(30);
    for (const [, role] of resources('AWS::IAM::Role')) {
      expect(role.Properties['ManagedPolicyArns'], 'no AWS managed policies').toBeUndefined();
    }
  });
});

describe('scheduler', () => {
  it('runs every minute from an EventBridge rule', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [logicalId(synthesized.stack.schedulerFunction), 'Arn'] },
          RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
        }),
      ],
    });
  });

  it('may start executions of the task state machine and nothing else in Step Functions', () => {
    const sfnActions = actions(statementsOf('SchedulerRole')).filter((a) => a.startsWith('states:'));
    expect(sfnActions).toEqual(['states:StartExecution']);
    expect(statementsOf('SchedulerRole')).toContainEqual(
      expect.objectContaining({ Action: 'states:StartExecution', Resource: { Ref: expect.stringMatching(/^TaskStateMachine/) } }),
    );
    expect(actions(statementsOf('StepRole')).some((a) => a.startsWith('states:'))).toBe(false);
  });
});

describe('state machine', () => {
  it('is a Standard machine with full logging and tracing', () => {
    const machine = only('AWS::StepFunctions::StateMachine');
    expect(machine.Properties['StateMachineType']).toBe('STANDARD');
    expect(machine.Properties['LoggingConfiguration']).toMatchObject({ Level: 'ALL', IncludeExecutionData: false });
    expect(machine.Properties['TracingConfiguration']).toEqual({ Enabled: true });
  });

  it('waits for approval no longer than approval.timeout and runs Fargate with a public IP', () => {
    const definition = renderDefinition(template);
    expect(definition.States['AwaitApproval']?.TimeoutSeconds).toBe(defaultConfig().approval.timeout);
    for (const name of ['RunPlan', 'RunExecute']) {
      const state = definition.States[name];
      expect(state?.Resource).toBe('arn:aws:states:::ecs:runTask.sync');
      expect(state?.Parameters).toMatchObject({
        LaunchType: 'FARGATE',
        NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'ENABLED' } },
      });
    }
    // A planning run is one Claude run; an execution is the persistence loop, up to max_iterations of them.
    const { claude_timeout, max_iterations } = defaultConfig().orchestrator;
    expect(definition.States['RunPlan']?.TimeoutSeconds).toBe(claude_timeout + 15 * 60);
    expect(definition.States['RunExecute']?.TimeoutSeconds).toBe(claude_timeout * max_iterations + 15 * 60);
  });
});

describe('network and runner', () => {
  it('has public subnets only and no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::InternetGateway', 1);
    const subnets = resources('AWS::EC2::Subnet');
    expect(subnets.length).toBeGreaterThan(0);
    for (const [id] of subnets) expect(id).toMatch(/publicSubnet/);
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT' });
  });

  it('lets runner tasks make HTTPS connections out and accept none in', () => {
    const group = resources('AWS::EC2::SecurityGroup').find(([id]) => id.includes('RunnerSecurityGroup'))?.[1];
    expect(group?.Properties['SecurityGroupIngress']).toBeUndefined();
    expect(group?.Properties['SecurityGroupEgress']).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
  });

  it('runs the container built from container/ with the API key from Secrets Manager', () => {
    const taskDefinition = only('AWS::ECS::TaskDefinition');
    expect(taskDefinition.Properties['RequiresCompatibilities']).toEqual(['FARGATE']);
    const [container] = taskDefinition.Properties['ContainerDefinitions'] as Json[];
    expect(container?.['Name']).toBe('runner');
    expect(container?.['Secrets']).toEqual([
      { Name: 'ANTHROPIC_API_KEY', ValueFrom: { Ref: expect.stringMatching(/AnthropicApiKey/) } },
    ]);
    const environment = container?.['Environment'] as { Name: string; Value: unknown }[];
    expect(environment.map((e) => e.Name)).not.toContain('ANTHROPIC_API_KEY');
    // The image is an asset: staged by synth, built and pushed by `cdk deploy`.
    const manifest = JSON.parse(readFileSync(join(synthesized.app.outdir, 'Fte.assets.json'), 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string } }>;
    };
    const images = Object.values(manifest.dockerImages);
    expect(images).toHaveLength(1);
    const context = join(synthesized.app.outdir, (images[0] as { source: { directory: string } }).source.directory);
    for (const file of ['Dockerfile', 'claude-as-agent', 'runner.mjs']) expect(existsSync(join(context, file)), file).toBe(true);
    expect(readFileSync(join(context, 'Dockerfile'), 'utf8')).toMatch(/^FROM node:22-slim$/m);
  });

  it('gives the runner (where the agent runs) no way to write state, approval, tokens or the stop flag', () => {
    const statements = statementsOf('RunnerRunnerTaskTaskRole');
    for (const statement of statements) {
      expect(statement.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Tasks/), 'Arn'] });
      if (statement.Sid === 'ReadControlItem') continue;
      expect(statement.Condition?.['ForAllValues:StringLike']).toEqual({ 'dynamodb:LeadingKeys': ['TASK#*'] });
    }
    // The one thing outside task partitions: READING the control item, where the persistence loop finds the stop flag
    // and the budget block it pauses on between iterations.
    const control = statements.find((s) => s.Sid === 'ReadControlItem');
    expect(control?.Action).toBe('dynamodb:GetItem');
    expect(control?.Condition).toEqual({ 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['CONTROL'] } });
    const update = statements.find((s) => s.Action === 'dynamodb:UpdateItem');
    expect(update?.Condition?.['ForAllValues:StringEquals']).toEqual({ 'dynamodb:Attributes': ['pk', 'sk', 'costUsd', 'version'] });
    const put = statements.find((s) => s.Action === 'dynamodb:PutItem');
    const putAttributes = (put?.Condition?.['ForAllValues:StringEquals'] as { 'dynamodb:Attributes': string[] })['dynamodb:Attributes'];
    for (const forbidden of ['state', 'approvalBy', 'approvalAt', 'taskToken', 'stopRequested', 'budget', 'gsi1pk']) {
      expect(putAttributes).not.toContain(forbidden);
    }
    expect(putAttributes).toEqual([...RUNNER_PUT_ITEM_ATTRIBUTES]);
    expect(actions(statements).sort()).toEqual([
      'dynamodb:GetItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
  });
});

describe('IAM', () => {
  it('uses a wildcard resource only for actions that have no resource ARN', () => {
    const starActions = resources('AWS::IAM::Policy')
      .flatMap(([, r]) => (r.Properties['PolicyDocument'] as { Statement: Statement[] }).Statement)
      .filter((s) => s.Resource === '*' || (Array.isArray(s.Resource) && s.Resource.includes('*')))
      .flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    const allowed = new Set([
      'ecr:GetAuthorizationToken',
      'ecs:DescribeTasks',
      'ecs:StopTask',
      'logs:CreateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:DescribeLogGroups',
      'logs:DescribeResourcePolicies',
      'logs:GetLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:UpdateLogDelivery',
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
    expect(starActions.filter((a) => !allowed.has(a))).toEqual([]);
    expect(starActions.some((a) => a.endsWith(':*') || a === '*')).toBe(false);
  });
});

describe('alarms and dashboard', () => {
  const health = defaultConfig().health_check;

  function alarm(idPart: string): Resource {
    const found = resources('AWS::CloudWatch::Alarm').filter(([id]) => id.includes(idPart));
    expect(found, idPart).toHaveLength(1);
    return (found[0] as [string, Resource])[1];
  }

  it('alarm on backlog and oldest approval age with the health_check thresholds', () => {
    expect(alarm('Backlog').Properties).toMatchObject({
      MetricName: FTE_METRICS.queueDepth,
      Namespace: FTE_METRICS.namespace,
      Threshold: health.max_backlog,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(alarm('ApprovalAge').Properties).toMatchObject({
      MetricName: FTE_METRICS.oldestApprovalAge,
      Threshold: health.max_approval_age,
    });
  });

  it('alarm on the error rate and idle time from the tasks the step handler counts finished', () => {
    const errorRate = alarm('ErrorRate').Properties;
    expect(errorRate['Threshold']).toBe(health.max_error_rate);
    const used = JSON.stringify(errorRate['Metrics']);
    expect(used).toContain(`"MetricName":"${FTE_METRICS.failed}"`);
    expect(used).toContain(`"MetricName":"${FTE_METRICS.succeeded}"`);
    expect(used).toContain(`"Period":${health.error_rate_window}`);
    const idle = alarm('MonitoringIdle').Properties;
    const metrics = idle['Metrics'] as { Id: string; MetricStat?: { Period: number; Metric: { MetricName: string } } }[];
    expect(metrics.find((m) => m.Id === 'q')?.MetricStat).toMatchObject({ Period: health.max_idle_time, Metric: { MetricName: 'QueueDepth' } });
  });

  it('alarm on the dead-letter queue, every Lambda\'s errors, a silent scheduler and timed-out executions', () => {
    expect(alarm('DeadLetterQueue').Properties).toMatchObject({ MetricName: 'ApproximateNumberOfMessagesVisible', Threshold: 0 });
    for (const name of ['Ingest', 'Scheduler', 'Step', 'Api']) {
      expect(alarm(`${name}Errors`).Properties).toMatchObject({ MetricName: 'Errors', Namespace: 'AWS/Lambda' });
    }
    expect(alarm('SchedulerSilent').Properties).toMatchObject({ MetricName: 'Invocations', TreatMissingData: 'breaching' });
    expect(alarm('ExecutionsTimedOut').Properties).toMatchObject({ MetricName: 'ExecutionsTimedOut' });
  });

  it('read the metrics by the names the handlers write', () => {
    for (const key of ['queueDepth', 'oldestQueuedAge', 'oldestApprovalAge', 'running', 'started', 'succeeded', 'failed'] as const) {
      expect(FTE_METRICS[key]).toBe(HANDLER_METRICS[key]);
    }
    expect(FTE_METRICS.namespace).toBe(HANDLER_METRICS.namespace);
  });

  it('notify nobody without a topic, and have a dashboard', () => {
    for (const [, a] of resources('AWS::CloudWatch::Alarm')) expect(a.Properties['AlarmActions']).toBeUndefined();
    template.resourceCountIs('AWS::SNS::Topic', 0);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  it('send to an SNS topic when an alarm address is given', () => {
    const variant = synthFteStack({ context: { fteAlarmEmail: 'ops@example.com' }, nag: true });
    variant.template.resourceCountIs('AWS::SNS::Topic', 1);
    variant.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
    const alarms = Object.values(variant.template.findResources('AWS::CloudWatch::Alarm')) as Resource[];
    for (const a of alarms) expect(a.Properties['AlarmActions']).toEqual([{ Ref: expect.stringMatching(/AlarmTopic/) }]);
    expect(Annotations.fromStack(variant.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unsuppressed error or warning', () => {
    const annotations = Annotations.fromStack(synthesized.stack);
    const list = (found: SynthesisMessage[]) => found.map((f) => `${f.id}: ${String(f.entry.data).slice(0, 120)}`);
    expect(list(annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*')))).toEqual([]);
    expect(list(annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')))).toEqual([]);
  });

  it('justifies every suppression in writing', () => {
    const suppressed = Object.values(template.toJSON()['Resources'] as Record<string, Resource>).flatMap(
      (r) => ((r.Metadata?.['cdk_nag'] as { rules_to_suppress?: { id: string; reason: string }[] } | undefined)?.rules_to_suppress ?? []),
    );
    expect(suppressed.length).toBeGreaterThan(0);
    for (const s of suppressed) expect(s.reason.length, s.id).toBeGreaterThan(60);
  });

  it('passes with Bedrock instead of an API key (and then there is no secret)', () => {
    const variant = synthFteStack({ context: { fteClaudeAuth: 'bedrock' }, nag: true });
    variant.template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    const [container] = (Object.values(variant.template.findResources('AWS::ECS::TaskDefinition'))[0] as Resource)
      .Properties['ContainerDefinitions'] as Json[];
    expect(container?.['Environment']).toContainEqual({ Name: 'CLAUDE_CODE_USE_BEDROCK', Value: '1' });
    expect(container?.['Secrets']).toBeUndefined();
    expect(Annotations.fromStack(variant.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });
});

describe('settings', () => {
  it('come from the config file: timeouts, schedule and thresholds follow it', () => {
    const variant = synthFteStack({
      configYaml: [
        'orchestrator:',
        '  poll_interval: 5m',
        '  claude_timeout: 30m',
        'approval:',
        '  timeout: 2h',
        'health_check:',
        '  max_backlog: 7',
      ].join('\n'),
    });
    variant.template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)' });
    const definition = renderDefinition(variant.template);
    expect(definition.States['AwaitApproval']?.TimeoutSeconds).toBe(7200);
    expect(definition.States['RunPlan']?.TimeoutSeconds).toBe(1800 + 900);
    expect(definition.States['RunExecute']?.TimeoutSeconds).toBe(1800 * defaultConfig().orchestrator.max_iterations + 900);
    const backlog = Object.entries(variant.template.findResources('AWS::CloudWatch::Alarm')).find(([id]) => id.includes('Backlog'));
    expect((backlog?.[1] as Resource).Properties['Threshold']).toBe(7);
  });

  it('fail synth naming the key when invalid', () => {
    const attempt = () => synthFteStack({ configYaml: 'orchestrator:\n  max_concurent_tasks: 3\n' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/orchestrator.*unknown key "max_concurent_tasks" \(did you mean "max_concurrent_tasks"\?\)/s);
    expect(() => synthFteStack({ configYaml: 'approval:\n  timeout: soon\n' })).toThrow(/approval\.timeout/);
    expect(() => synthFteStack({ context: { fteRunnerCpu: '3000' } })).toThrow(/context\.fteRunnerCpu/);
  });
});

describe('the HTTP API', () => {
  it('is on by default: API Gateway (HTTP API) with IAM auth on every route, in front of the API Lambda', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    const routes = resources('AWS::ApiGatewayV2::Route');
    expect(routes.map(([, r]) => r.Properties['RouteKey'])).toEqual(['$default']);
    for (const [, route] of routes) expect(route.Properties['AuthorizationType']).toBe('AWS_IAM');
    const api = synthesized.stack.apiFunction;
    expect(api).not.toBeNull();
    // The integration invokes the API Lambda with payload format 2.0, which lambda/api.ts (hono/aws-lambda) reads.
    template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
      IntegrationUri: { 'Fn::GetAtt': [logicalId(api as IConstruct), 'Arn'] },
    });
    expect(Object.keys(template.findOutputs('ApiUrl'))).toEqual(['ApiUrl']);
  });

  it('logs every access with the caller’s IAM identity, kept 30 days', () => {
    const stage = only('AWS::ApiGatewayV2::Stage');
    expect(stage.Properties['StageName']).toBe('$default');
    const settings = stage.Properties['AccessLogSettings'] as { DestinationArn: unknown; Format: string };
    expect(settings.DestinationArn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/AccessLogs/), 'Arn'] });
    expect(Object.keys(JSON.parse(settings.Format) as Json)).toEqual(
      expect.arrayContaining(['requestId', 'userArn', 'caller', 'method', 'path', 'status']),
    );
  });

  it('gives the API Lambda the table and the answers to approval waits of this state machine, nothing more', () => {
    const statements = statementsOf('ApiRole');
    const stateActions = statements.filter((s) => actions([s]).some((a) => a.startsWith('states:')));
    expect(stateActions).toHaveLength(1);
    expect(stateActions[0]).toMatchObject({
      Effect: 'Allow',
      Action: ['states:SendTaskFailure', 'states:SendTaskSuccess'],
      Resource: { Ref: expect.stringMatching(/^TaskStateMachine/) },
    });
    const tableStatements = statements.filter((s) => actions([s]).some((a) => a.startsWith('dynamodb:')));
    // Exactly what the store sends for it: no DeleteItem, no Batch*, no stream reads.
    expect(actions(tableStatements).sort()).toEqual([...API_TABLE_ACTIONS].sort());
    for (const statement of tableStatements) {
      const targets = Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
      for (const target of targets) expect(JSON.stringify(target)).toMatch(/"Tasks[0-9A-F]+"/);
    }
    const services = new Set(actions(statements).map((a) => a.split(':')[0]));
    expect([...services].sort()).toEqual(['dynamodb', 'logs', 'states']);
    const env = (functionByEntry('Api').Properties['Environment'] as { Variables: Json }).Variables;
    expect(Object.keys(env).sort()).toEqual([CONFIG_JSON_ENV, TABLE_NAME_ENV, 'NODE_OPTIONS'].sort());
  });

  it('can be turned off with fteApi=false, and the stack then passes cdk-nag without it', () => {
    const variant = synthFteStack({ context: { fteApi: 'false' }, nag: true });
    variant.template.resourceCountIs('AWS::ApiGatewayV2::Api', 0);
    expect(variant.stack.apiFunction).toBeNull();
    expect(Object.keys(variant.template.findOutputs('ApiUrl'))).toEqual([]);
    expect(Annotations.fromStack(variant.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
  });

  it('construct puts IAM auth on every route and logs access', () => {
    const app = new App();
    const stack = new Stack(app, 'ApiOnly');
    const handler = new lambda.Function(stack, 'Handler', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({ statusCode: 204 });'),
    });
    new FteApi(stack, 'Api', { handler });
    Aspects.of(app).add(new AwsSolutionsChecks());
    const api = Template.fromStack(stack);
    api.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    const routes = Object.values(api.findResources('AWS::ApiGatewayV2::Route')) as Resource[];
    expect(routes.length).toBeGreaterThan(0);
    for (const route of routes) expect(route.Properties['AuthorizationType']).toBe('AWS_IAM');
    api.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('userArn') },
    });
    const apiFindings = Annotations.fromStack(stack)
      .findError('*', Match.stringLikeRegexp('AwsSolutions-APIG.*'))
      .map((f) => String(f.entry.data).slice(0, 80));
    expect(apiFindings).toEqual([]);
  });
});
