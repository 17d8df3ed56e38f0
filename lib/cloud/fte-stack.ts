import { CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { TABLE_SCHEMA } from '../aws/table-definition.ts';
import { TABLE_NAME_ENV } from '../aws/table-design.ts';
import { ConfigError } from '../core/errors.ts';
import { FteApi } from './api.ts';
import { FteFunction } from './fte-function.ts';
import { Monitoring } from './monitoring.ts';
import { applyNagSuppressions } from './nag-suppressions.ts';
import { RunnerCompute } from './runner-compute.ts';
import { CONFIG_JSON_ENV, STATE_MACHINE_ARN_ENV } from './runtime-env.ts';
import { runtimeConfig } from './settings.ts';
import type { CloudSettings } from './settings.ts';
import { TaskStateMachine } from './task-state-machine.ts';

/** Handler sources, relative to the repository root. */
export const LAMBDA_ENTRIES = {
  ingest: 'lambda/ingest.ts',
  scheduler: 'lambda/scheduler.ts',
  step: 'lambda/step.ts',
  api: 'lambda/api.ts',
} as const;

export interface FteStackProps extends StackProps {
  readonly settings: CloudSettings;
}

/** The API Lambda's table actions (see the grant below). TransactWriteItems is authorised per contained action. */
export const API_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:ConditionCheckItem',
] as const;

/** Lambda environment variables share 4 KB; the config must leave room for the rest. */
const MAX_CONFIG_JSON_BYTES = 3_000;

/**
 * The cloud runtime of fte: nothing in it runs (or bills) while no task is queued except a one-minute schedule.
 * Environment-agnostic on purpose — no account, region or lookups — so `cdk synth` works without credentials.
 */
export class FteStack extends Stack {
  readonly table: dynamodb.Table;
  readonly intakeQueue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly ingestFunction: FteFunction;
  readonly schedulerFunction: FteFunction;
  readonly stepFunction: FteFunction;
  readonly apiFunction: FteFunction | null;
  readonly runner: RunnerCompute;
  readonly taskStateMachine: TaskStateMachine;
  readonly scheduleRule: events.Rule;
  readonly api: FteApi | null;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: FteStackProps) {
    super(scope, id, props);
    const { settings } = props;
    const { config } = settings;

    const configJson = JSON.stringify(runtimeConfig(config));
    if (Buffer.byteLength(configJson) > MAX_CONFIG_JSON_BYTES) {
      throw new ConfigError(
        [{ path: '', message: `the settings are ${Buffer.byteLength(configJson)} bytes as JSON; Lambda environments allow about ${MAX_CONFIG_JSON_BYTES} (shorten the sender lists)` }],
        settings.configSource,
      );
    }

    this.table = new dynamodb.Table(this, 'Tasks', {
      partitionKey: { name: TABLE_SCHEMA.partitionKey.name, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE_SCHEMA.sortKey.name, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // AWS owned keys cost nothing; a customer managed key would bill $1 a month while idle for no extra control here.
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: TABLE_SCHEMA.timeToLiveAttribute,
      // The tasks and their history outlive the stack: `cdk destroy` leaves the table for an explicit delete.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of TABLE_SCHEMA.globalSecondaryIndexes) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey.name, type: dynamodb.AttributeType.STRING },
        sortKey: { name: index.sortKey.name, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }

    const ingestTimeout = Duration.seconds(30);
    this.deadLetterQueue = new sqs.Queue(this, 'IntakeDeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.intakeQueue = new sqs.Queue(this, 'Intake', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS's guidance for a Lambda event source: six times the function timeout, so a retried batch is not redelivered
      // while still being processed.
      visibilityTimeout: Duration.seconds(ingestTimeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 5 },
    });

    const baseEnv = { [TABLE_NAME_ENV]: this.table.tableName, [CONFIG_JSON_ENV]: configJson };

    this.ingestFunction = new FteFunction(this, 'Ingest', {
      entry: LAMBDA_ENTRIES.ingest,
      description: 'fte: validate task documents from the intake queue and admit them',
      environment: baseEnv,
      timeout: ingestTimeout,
    });
    this.table.grantReadWriteData(this.ingestFunction);
    this.ingestFunction.addEventSource(new SqsEventSource(this.intakeQueue, {
      batchSize: 10,
      // One bad document must not send its nine neighbours back to the queue.
      reportBatchItemFailures: true,
    }));

    this.stepFunction = new FteFunction(this, 'Step', {
      entry: LAMBDA_ENTRIES.step,
      description: 'fte: the state machine steps (transitions, stop flag, approval token, retry decision)',
      environment: baseEnv,
      timeout: Duration.seconds(30),
    });
    this.table.grantReadWriteData(this.stepFunction);

    this.runner = new RunnerCompute(this, 'Runner', {
      config,
      table: this.table,
      claudeAuth: settings.claudeAuth,
      image: settings.runnerImage,
      cpu: settings.runnerCpu,
      memoryMiB: settings.runnerMemoryMiB,
    });

    this.taskStateMachine = new TaskStateMachine(this, 'TaskStateMachine', {
      config,
      stepFunction: this.stepFunction,
      cluster: this.runner.cluster,
      taskDefinition: this.runner.taskDefinition,
      container: this.runner.container,
      securityGroup: this.runner.securityGroup,
      subnets: this.runner.subnets,
    });
    const stateMachine = this.taskStateMachine.stateMachine;

    this.schedulerFunction = new FteFunction(this, 'Scheduler', {
      entry: LAMBDA_ENTRIES.scheduler,
      description: 'fte: start the best queued tasks up to the concurrency cap, publish queue metrics',
      environment: { ...baseEnv, [STATE_MACHINE_ARN_ENV]: stateMachine.stateMachineArn },
      // Done well within the minute, so two ticks do not overlap.
      timeout: Duration.seconds(50),
    });
    this.table.grantReadWriteData(this.schedulerFunction);
    stateMachine.grantStartExecution(this.schedulerFunction);

    // EventBridge rates have a one-minute floor; a longer poll_interval slows the schedule down with it.
    const everyMinutes = Math.max(1, Math.ceil(config.orchestrator.poll_interval / 60));
    this.scheduleRule = new events.Rule(this, 'Schedule', {
      description: 'fte scheduler tick',
      schedule: events.Schedule.rate(Duration.minutes(everyMinutes)),
      targets: [new targets.LambdaFunction(this.schedulerFunction, {
        // A missed tick is replaced by the next one; retrying it late would only overlap with it.
        retryAttempts: 0,
        maxEventAge: Duration.minutes(1),
      })],
    });

    // On unless `-c fteApi=false`: without it the CLI and any dashboard can only read CloudWatch, and approvals would
    // need someone to complete task tokens by hand.
    if (settings.api) {
      this.apiFunction = new FteFunction(this, 'Api', {
        entry: LAMBDA_ENTRIES.api,
        description: 'fte: the HTTP API (status, queue, metrics, health, tasks, approve/reject, stop/resume)',
        // Tokens name their execution; the API needs no state machine ARN, only the right to answer its waits.
        environment: baseEnv,
        // API Gateway gives up on an integration after 30 s; the Lambda stops first so the error is its own.
        timeout: Duration.seconds(29),
        // The dashboard and metrics fold a day of history in memory; more memory is also more CPU for that.
        memorySize: 512,
      });
      // What DynamoTaskStore sends for the API: reads (items, the byState index, a scan for the whole list and long
      // history ranges), new tasks with their bodies and decisions (transactions of Put / Update / ConditionCheck), the
      // stop flag. No Delete or Batch* (it never sends them), and nothing of the table's streams.
      this.table.grant(this.apiFunction, ...API_TABLE_ACTIONS);
      // approve/reject end the approval wait with SendTaskSuccess; SendTaskFailure is the wait's other answer (the
      // machine records a failed wait as expired). Only these two, and only on this machine: grantTaskResponse would
      // add SendTaskHeartbeat, which no approval wait uses.
      stateMachine.grant(this.apiFunction, 'states:SendTaskSuccess', 'states:SendTaskFailure');
      this.api = new FteApi(this, 'HttpApi', { handler: this.apiFunction });
      new CfnOutput(this, 'ApiUrl', { value: this.api.httpApi.apiEndpoint });
    } else {
      this.apiFunction = null;
      this.api = null;
    }

    const functions: Record<string, FteFunction> = {
      Ingest: this.ingestFunction,
      Scheduler: this.schedulerFunction,
      Step: this.stepFunction,
    };
    if (this.apiFunction !== null) functions['Api'] = this.apiFunction;
    this.monitoring = new Monitoring(this, 'Monitoring', {
      config,
      stateMachine,
      intakeQueue: this.intakeQueue,
      deadLetterQueue: this.deadLetterQueue,
      functions,
      scheduler: this.schedulerFunction,
      alarmEmail: settings.alarmEmail,
      alarmTopicArn: settings.alarmTopicArn,
    });

    new CfnOutput(this, 'TableName', { value: this.table.tableName });
    new CfnOutput(this, 'IntakeQueueUrl', { value: this.intakeQueue.queueUrl });
    new CfnOutput(this, 'StateMachineArn', { value: stateMachine.stateMachineArn });
    new CfnOutput(this, 'DashboardName', { value: this.monitoring.dashboard.dashboardName });
    if (this.runner.apiKeySecret !== null) {
      new CfnOutput(this, 'AnthropicApiKeySecretArn', { value: this.runner.apiKeySecret.secretArn });
    }

    applyNagSuppressions(this);
  }
}
