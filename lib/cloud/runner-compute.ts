import { Duration, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { CONTROL_KEY, KEY_PREFIXES, TABLE_NAME_ENV } from '../aws/table-design.ts';
import type { Config } from '../core/config.ts';
import { runnerImage } from './runner-image.ts';
import {
  CONFIG_JSON_ENV,
  RUNNER_PUT_ITEM_ATTRIBUTES,
  RUNNER_TASK_UPDATE_ATTRIBUTES,
  RUNNER_WORK_DIR,
} from './runtime-env.ts';
import { runtimeConfig } from './settings.ts';
import type { ClaudeAuth } from './settings.ts';
import { RUNNER_CONTAINER_NAME } from './task-state-machine.ts';

export interface RunnerComputeProps {
  readonly config: Config;
  readonly table: dynamodb.ITable;
  readonly claudeAuth: ClaudeAuth;
  readonly image: string | null;
  readonly cpu: number;
  readonly memoryMiB: number;
}

/**
 * Where Claude runs: one Fargate task per planning or execution run, started by the state machine and gone when the
 * run ends, so nothing is billed while idle. The network has public subnets only and the tasks get a public IP — a NAT
 * gateway would cost about $32 a month with no task running — and the tasks accept no inbound traffic at all.
 */
export class RunnerCompute extends Construct {
  readonly vpc: ec2.Vpc;
  readonly securityGroup: ec2.SecurityGroup;
  readonly cluster: ecs.Cluster;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PUBLIC };
  /** The Anthropic API key, when the runner authenticates with one (not with Bedrock). */
  readonly apiKeySecret: secretsmanager.Secret | null;

  constructor(scope: Construct, id: string, props: RunnerComputeProps) {
    super(scope, id);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      // The default security group is attached to nothing here; locking it down would add a custom-resource Lambda.
      restrictDefaultSecurityGroup: false,
    });
    // Rejected traffic only: the tasks accept no inbound connections, so this is the record of who tried.
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(
        new logs.LogGroup(this, 'FlowLogs', { retention: logs.RetentionDays.ONE_MONTH }),
      ),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'RunnerSecurityGroup', {
      vpc: this.vpc,
      description: 'fte runner tasks: no inbound; HTTPS out only',
      allowAllOutbound: false,
    });
    this.securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to the Claude API or Bedrock, DynamoDB, ECR and CloudWatch Logs (no VPC endpoints: they bill by the hour)',
    );

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.DISABLED,
    });

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'RunnerTask', {
      cpu: props.cpu,
      memoryLimitMiB: props.memoryMiB,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    grantRunnerTableAccess(this.taskDefinition.taskRole, props.table);

    const environment: Record<string, string> = {
      [TABLE_NAME_ENV]: props.table.tableName,
      [CONFIG_JSON_ENV]: JSON.stringify(runtimeConfig(props.config)),
      FTE_WORK_DIR: RUNNER_WORK_DIR,
    };
    const secrets: Record<string, ecs.Secret> = {};
    if (props.claudeAuth === 'bedrock') {
      environment['CLAUDE_CODE_USE_BEDROCK'] = '1';
      environment['AWS_REGION'] = Stack.of(this).region;
      this.apiKeySecret = null;
      this.taskDefinition.taskRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
          resources: [
            // Claude Code picks the Anthropic model (and a cross-region inference profile may serve it from any
            // region), so the grant is every Anthropic model, and nothing else.
            `arn:${Stack.of(this).partition}:bedrock:*::foundation-model/anthropic.*`,
            `arn:${Stack.of(this).partition}:bedrock:*:${Stack.of(this).account}:inference-profile/*anthropic.*`,
          ],
        }),
      );
    } else {
      this.apiKeySecret = new secretsmanager.Secret(this, 'AnthropicApiKey', {
        description: 'Anthropic API key of the fte runner. Put the real key here after the first deploy.',
      });
      // Injected by ECS at task start, so the key is never in the template, the task definition or the logs.
      secrets['ANTHROPIC_API_KEY'] = ecs.Secret.fromSecretsManager(this.apiKeySecret);
    }

    this.container = this.taskDefinition.addContainer('Runner', {
      containerName: RUNNER_CONTAINER_NAME,
      image: runnerImage(this, props.image),
      essential: true,
      environment,
      secrets,
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: 'runner',
        logGroup: new logs.LogGroup(this, 'RunnerLogs', { retention: logs.RetentionDays.ONE_MONTH }),
      }),
      // Time for the runner to stop Claude and write the run back after ECS sends SIGTERM (Fargate allows 120 s).
      stopTimeout: Duration.seconds(Math.min(120, Math.ceil(props.config.orchestrator.kill_grace_period) + 30)),
    });
  }
}

/**
 * The runner's table access, narrower than any grant method: the container also runs the agent, and whatever the
 * agent can reach, the task can steer. Writes are confined to task partitions (never CONTROL, where the stop flag
 * lives, nor the history), a Put may write the attributes of run, iteration and checkpoint items only and an Update
 * only the cost and the version — so no state, approval or token can be written with this role. Besides the task
 * partitions it may READ the control item, and nothing else of it: the persistence loop pauses between iterations on
 * the stop flag and on the daily-budget block the scheduler records there, as the local loop does. The table's index
 * is not needed at all.
 */
export function grantRunnerTableAccess(role: iam.IGrantable, table: dynamodb.ITable): void {
  const taskPartitions = { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [`${KEY_PREFIXES.task}*`] } };
  const statements = [
    new iam.PolicyStatement({
      sid: 'ReadTaskItems',
      actions: ['dynamodb:GetItem', 'dynamodb:Query'],
      resources: [table.tableArn],
      conditions: taskPartitions,
    }),
    new iam.PolicyStatement({
      sid: 'ReadControlItem',
      actions: ['dynamodb:GetItem'],
      resources: [table.tableArn],
      conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [CONTROL_KEY.pk] } },
    }),
    new iam.PolicyStatement({
      sid: 'WriteRunItems',
      actions: ['dynamodb:PutItem'],
      resources: [table.tableArn],
      conditions: {
        ...taskPartitions,
        'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...RUNNER_PUT_ITEM_ATTRIBUTES] },
      },
    }),
    new iam.PolicyStatement({
      sid: 'AddRunCost',
      actions: ['dynamodb:UpdateItem'],
      resources: [table.tableArn],
      conditions: {
        ...taskPartitions,
        'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...RUNNER_TASK_UPDATE_ATTRIBUTES] },
      },
    }),
  ];
  for (const statement of statements) role.grantPrincipal.addToPrincipalPolicy(statement);
}
