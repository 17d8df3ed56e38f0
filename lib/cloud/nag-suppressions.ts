import type { CfnElement } from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import { NagSuppressions } from 'cdk-nag';
import type { NagPackSuppression } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import type { FteStack } from './fte-stack.ts';

/**
 * Every cdk-nag AwsSolutions finding this stack accepts, each with the reason it is accepted. bin/app.ts (and
 * test/cloud/stack.test.ts) run the AwsSolutions pack; any finding not listed here fails synth. Suppressions name the
 * exact resource and, for wildcards, the exact `appliesTo` string, so a NEW wildcard is still a finding.
 */
export function applyNagSuppressions(stack: FteStack): void {
  const token = (construct: IConstruct): string => stack.getLogicalId(construct.node.defaultChild as CfnElement);
  const tableIndexes = `Resource::<${token(stack.table)}.Arn>/index/*`;

  const functions = [stack.ingestFunction, stack.stepFunction, stack.schedulerFunction, stack.apiFunction].filter(
    (fn) => fn !== null,
  );
  for (const fn of functions) {
    suppress(fn, [
      {
        id: 'AwsSolutions-L1',
        reason:
          'nodejs22.x on purpose: the handlers are bundled for node22 and tested on the Node 22 line; nodejs24.x ' +
          'becomes the runtime when the project moves its Node line, not by a linter. nodejs22.x is supported by ' +
          'Lambda until 2027.',
      },
    ]);
    if (fn.role !== undefined) {
      suppress(fn.role, [
        {
          id: 'AwsSolutions-IAM5',
          appliesTo: [tableIndexes],
          reason:
            'The table grants (grantReadWriteData, and the API\'s narrower table.grant) name the table\'s indexes as ' +
            '<table ARN>/index/*; this table has one index (byState), so the pattern grants that index of this ' +
            'table and nothing else.',
        },
      ], true);
    }
  }

  suppress(stack.runner.cluster, [
    {
      id: 'AwsSolutions-ECS4',
      reason:
        'Container Insights bills per metric even for a cluster that is idle most of the day; each run is already ' +
        'measured by the state machine metrics, the runner log and the run record (cost, turns, duration).',
    },
  ]);
  suppress(stack.runner.taskDefinition, [
    {
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds no secrets: the table name, the validated orchestrator settings and the work ' +
        'directory; the state machine adds TASK_ID and MODE per run. The one secret, the Anthropic API key, comes ' +
        'from Secrets Manager through `secrets`.',
    },
  ]);
  const executionRole = stack.runner.taskDefinition.executionRole;
  if (executionRole !== undefined) {
    suppress(executionRole, [
      {
        id: 'AwsSolutions-IAM5',
        appliesTo: ['Resource::*'],
        reason:
          'ecr:GetAuthorizationToken, which ECS needs to pull the runner image, supports no resource-level ' +
          'permission (https://docs.aws.amazon.com/AmazonECR/latest/userguide/security_iam_id-based-policy-examples.html); ' +
          'the image pull itself is granted on the asset repository only.',
      },
    ], true);
  }
  if (stack.runner.apiKeySecret !== null) {
    suppress(stack.runner.apiKeySecret, [
      {
        id: 'AwsSolutions-SMG4',
        reason:
          'An Anthropic API key is issued in the Anthropic console; no rotation Lambda can mint a new one. Rotate it ' +
          'by putting a new value (docs/CLOUD.md); the next run picks it up.',
      },
    ]);
  } else {
    suppress(stack.runner.taskDefinition.taskRole, [
      {
        id: 'AwsSolutions-IAM5',
        appliesTo: [
          'Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/anthropic.*',
          'Resource::arn:<AWS::Partition>:bedrock:*:<AWS::AccountId>:inference-profile/*anthropic.*',
        ],
        reason:
          'Claude Code chooses the Anthropic model, and a cross-region inference profile may serve it from another ' +
          'region; the grant is limited to Anthropic models and profiles, and to invoking them.',
      },
    ], true);
  }

  const machine = stack.taskStateMachine.stateMachine;
  suppress(machine.role, [
    {
      id: 'AwsSolutions-IAM5',
      appliesTo: [`Resource::<${token(stack.stepFunction)}.Arn>:*`],
      reason:
        'The Step Functions Lambda integration grants the step function and its qualified versions; it is still ' +
        'the one function, and the machine invokes it unqualified.',
    },
    {
      id: 'AwsSolutions-IAM5',
      appliesTo: ['Resource::*'],
      reason:
        'Actions that take no resource ARN: ecs:DescribeTasks and ecs:StopTask of runTask.sync (the task ARN exists ' +
        'only after RunTask; RunTask itself is granted on the runner task definition), the CloudWatch Logs ' +
        'log-delivery actions of state machine logging, and the X-Ray trace actions of tracing.',
    },
  ], true);

  const topic = stack.monitoring.topic;
  if (topic instanceof sns.Topic) {
    suppress(topic, [
      {
        id: 'AwsSolutions-SNS2',
        reason:
          'CloudWatch alarms cannot publish to a topic encrypted with the AWS managed SNS key, and a customer managed ' +
          'key would bill $1 a month while idle; alarm notifications carry alarm names and states, no task data.',
      },
    ]);
  }
}

function suppress(construct: IConstruct, suppressions: NagPackSuppression[], applyToChildren = false): void {
  NagSuppressions.addResourceSuppressions(construct, suppressions, applyToChildren);
}
