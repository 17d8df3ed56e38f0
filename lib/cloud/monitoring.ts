import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { Config } from '../core/config.ts';
import { MIN_ERROR_RATE_SAMPLES } from '../core/health.ts';

/**
 * The custom metrics the Lambdas publish in embedded metric format (no dimensions: one orchestrator per stack): the
 * scheduler's queue gauges on every tick, the step handler's counts of tasks finished. Alarms and the dashboard read
 * them by these names; the keys are those of METRICS in lambda/observability.ts.
 */
export const FTE_METRICS = {
  namespace: 'fte',
  queueDepth: 'QueueDepth',
  oldestQueuedAge: 'OldestQueuedAgeSeconds',
  oldestApprovalAge: 'OldestApprovalAgeSeconds',
  running: 'RunningTasks',
  started: 'TasksStarted',
  succeeded: 'TasksSucceeded',
  failed: 'TasksFailed',
} as const;

export interface MonitoringProps {
  readonly config: Config;
  readonly stateMachine: sfn.StateMachine;
  readonly intakeQueue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  readonly scheduler: lambda.IFunction;
  readonly alarmEmail: string | null;
  readonly alarmTopicArn: string | null;
}

const FIVE_MINUTES = Duration.minutes(5);

/** A period CloudWatch accepts for an alarm (a multiple of 60 s, at most a day), from a threshold in seconds. */
export function alarmPeriod(seconds: number): Duration {
  return Duration.seconds(Math.min(86_400, Math.max(60, Math.ceil(seconds / 60) * 60)));
}

/**
 * The health checks of the local runtime (lib/core/health.ts) as CloudWatch alarms with the same thresholds, plus the
 * failure modes only the cloud has (a dead-letter queue filling, a Lambda throwing, an execution timing out), optionally
 * sent to SNS, and one dashboard.
 */
export class Monitoring extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly topic: sns.ITopic | null;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const health = props.config.health_check;
    const metric = (metricName: string, statistic: string, period: Duration = FIVE_MINUTES) =>
      new cloudwatch.Metric({ namespace: FTE_METRICS.namespace, metricName, statistic, period });

    if (props.alarmTopicArn !== null) {
      this.topic = sns.Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn);
    } else if (props.alarmEmail !== null) {
      const topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'fte alarms', enforceSSL: true });
      topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
      this.topic = topic;
    } else {
      this.topic = null;
    }

    const add = (alarm: cloudwatch.Alarm): void => {
      if (this.topic !== null) {
        alarm.addAlarmAction(new actions.SnsAction(this.topic));
        alarm.addOkAction(new actions.SnsAction(this.topic));
      }
      this.alarms.push(alarm);
    };

    const queueDepth = metric(FTE_METRICS.queueDepth, 'Maximum');
    add(new cloudwatch.Alarm(this, 'Backlog', {
      alarmDescription: `More than ${health.max_backlog} tasks wait to run (health_check.max_backlog) for 15 minutes.`,
      metric: queueDepth,
      threshold: health.max_backlog,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));

    // The local health check's error rate: tasks dead-lettered among tasks finished, over the window. Execution
    // metrics would not do: an execution that ends rejected, expired or stopped also "succeeds".
    const windowPeriod = alarmPeriod(health.error_rate_window);
    const succeeded = metric(FTE_METRICS.succeeded, 'Sum', windowPeriod);
    const failed = metric(FTE_METRICS.failed, 'Sum', windowPeriod);
    add(new cloudwatch.Alarm(this, 'ErrorRate', {
      alarmDescription:
        `More than ${health.max_error_rate * 100}% of finished tasks dead-lettered over ` +
        `${windowPeriod.toSeconds()} s (health_check.max_error_rate), once at least ${MIN_ERROR_RATE_SAMPLES} finished.`,
      metric: new cloudwatch.MathExpression({
        label: 'Dead-letter rate',
        expression: `IF((FILL(s, 0) + FILL(f, 0)) >= ${MIN_ERROR_RATE_SAMPLES}, FILL(f, 0) / (FILL(s, 0) + FILL(f, 0)), 0)`,
        usingMetrics: { s: succeeded, f: failed },
        period: windowPeriod,
      }),
      threshold: health.max_error_rate,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));

    const idlePeriod = alarmPeriod(health.max_idle_time);
    add(new cloudwatch.Alarm(this, 'Idle', {
      alarmDescription:
        `Work waited for ${idlePeriod.toSeconds()} s and no task finished (health_check.max_idle_time).`,
      metric: new cloudwatch.MathExpression({
        label: 'Waiting with nothing finished',
        expression: 'IF(FILL(q, 0) > 0 AND (FILL(s, 0) + FILL(f, 0)) == 0, 1, 0)',
        usingMetrics: {
          // The minimum: work waited for the whole period, not just at one tick.
          q: metric(FTE_METRICS.queueDepth, 'Minimum', idlePeriod),
          s: metric(FTE_METRICS.succeeded, 'Sum', idlePeriod),
          f: metric(FTE_METRICS.failed, 'Sum', idlePeriod),
        },
        period: idlePeriod,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));

    add(new cloudwatch.Alarm(this, 'ApprovalAge', {
      alarmDescription:
        `An approval request has waited more than ${health.max_approval_age} s (health_check.max_approval_age).`,
      metric: metric(FTE_METRICS.oldestApprovalAge, 'Maximum'),
      threshold: health.max_approval_age,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));

    add(new cloudwatch.Alarm(this, 'DeadLetterQueue', {
      alarmDescription: 'Task documents the ingest Lambda could not process are in the intake dead-letter queue.',
      metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: FIVE_MINUTES, statistic: 'Maximum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));

    for (const [name, fn] of Object.entries(props.functions)) {
      add(new cloudwatch.Alarm(this, `${name}Errors`, {
        alarmDescription: `The ${name} Lambda threw errors.`,
        metric: fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }));
    }

    // The local health check's "scheduler heartbeat": the schedule fires every minute, so silence means it is off.
    const heartbeatPeriod = alarmPeriod(Math.max(health.max_heartbeat_age, 300));
    add(new cloudwatch.Alarm(this, 'SchedulerSilent', {
      alarmDescription: `The scheduler Lambda has not run for ${heartbeatPeriod.toSeconds()} s.`,
      metric: props.scheduler.metricInvocations({ period: heartbeatPeriod, statistic: 'Sum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    }));

    add(new cloudwatch.Alarm(this, 'ExecutionsTimedOut', {
      alarmDescription: 'A task execution hit the state machine timeout; its task may be stuck in a running state.',
      metric: props.stateMachine.metricTimedOut({ period: FIVE_MINUTES, statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(1),
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'Queue',
            left: [queueDepth, metric(FTE_METRICS.running, 'Maximum')],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Oldest waits (s)',
            left: [metric(FTE_METRICS.oldestQueuedAge, 'Maximum'), metric(FTE_METRICS.oldestApprovalAge, 'Maximum')],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Tasks',
            left: [
              metric(FTE_METRICS.started, 'Sum'),
              metric(FTE_METRICS.succeeded, 'Sum'),
              metric(FTE_METRICS.failed, 'Sum'),
              props.stateMachine.metricTimedOut({ statistic: 'Sum' }),
            ],
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Lambda errors',
            left: Object.values(props.functions).map((fn) => fn.metricErrors({ statistic: 'Sum' })),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Lambda duration p99 (ms)',
            left: Object.values(props.functions).map((fn) => fn.metricDuration({ statistic: 'p99' })),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Intake',
            left: [
              props.intakeQueue.metricApproximateNumberOfMessagesVisible(),
              props.deadLetterQueue.metricApproximateNumberOfMessagesVisible(),
            ],
            width: 8,
          }),
        ],
        [new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24 })],
      ],
    });
  }
}
