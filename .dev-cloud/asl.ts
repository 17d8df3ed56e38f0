import { App, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Template } from 'aws-cdk-lib/assertions';
import { RunnerCompute } from '../lib/cloud/runner-compute.ts';
import { TaskStateMachine } from '../lib/cloud/task-state-machine.ts';
import { defaultConfig } from '../lib/core/config.ts';
const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
const stack = new Stack(app, 'Dev');
const config = defaultConfig();
const fn = new lambda.Function(stack, 'Fn', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler=async()=>1') });
const table = new dynamodb.Table(stack, 'T', { partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING } });
const runner = new RunnerCompute(stack, 'Runner', { config, table, claudeAuth: 'anthropic', image: null, cpu: 1024, memoryMiB: 2048 });
new TaskStateMachine(stack, 'SM', { config, stepFunction: fn, cluster: runner.cluster, taskDefinition: runner.taskDefinition, container: runner.container, securityGroup: runner.securityGroup, subnets: runner.subnets });
const t = Template.fromStack(stack).toJSON();
for (const [id, r] of Object.entries<any>(t.Resources)) if (r.Type === 'AWS::StepFunctions::StateMachine') { const d = r.Properties.DefinitionString; console.log(JSON.stringify(d).slice(0,3000)); }
