import { Duration } from 'aws-cdk-lib';
import type { IResolvable } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { Config } from '../core/config.ts';
import { retrySettingsFor } from '../core/config.ts';
import { ERROR_CLASSES } from '../core/retry.ts';
import type { ErrorClass } from '../core/retry.ts';
import type { TaskEventType } from '../core/state-machine.ts';
import { STEP_ERROR_NAMES } from '../../lambda/step-contract.ts';
import { RUNNER_PAUSED_EXIT_CODE, runnerExitCode } from './runner-exit-codes.ts';

/**
 * The Step Functions twin of the core task state machine (lib/core/state-machine.ts). Every state change is recorded
 * by the step Lambda (`transition`), which runs the core `transition()` inside a conditional write — so the machine
 * can only move a task along an edge of TRANSITIONS, and test/cloud/state-machine.test.ts derives the edges this graph
 * can record and compares them with the table.
 *
 *   CheckStop ▸ Dispatch   stopped ▸ Stopped (the task keeps its state; the scheduler starts it again after resume)
 *                          approved, or no approval needed ▸ RecordExecute
 *                          approval needed ▸ RecordPlan ▸ RunPlan ▸ RecordPlanReady ▸ AwaitApproval
 *   AwaitApproval          approve ▸ Approved ▸ CheckStop, so the stop flag is read right before the execution
 *                          reject ▸ Rejected
 *                          timeout (approval.timeout), a failed wait or an unreadable answer ▸ RecordExpire ▸ Expired
 *   RecordExecute ▸ RunExecute ▸ RecordSucceed ▸ Done
 *   a paused run           (the persistence loop stopped between iterations: stop flag or daily budget)
 *                          ▸ RecordPause (interrupt) ▸ Paused; the task is queued again and its checkpoint stands
 *   a failed run           classified ▸ DecideRetry ▸ RecordFailure (fail or dead_letter) ▸ WillRetry
 *                          retry ▸ Backoff ▸ RecordRetry ▸ Requeued ▸ CheckStop;  no retry ▸ Failed
 *   a refused step         (an operator cancelled or rejected the task meanwhile) ▸ Superseded
 *
 * The execution input is the scheduler's ExecutionInput (lambda/step-contract.ts): `taskId`, `state` (needs_action or
 * approved), `approvalRequired`. The approval wait ends with SendTaskSuccess whose output is an ApprovalAnswer; the
 * human's approve/reject is recorded by whoever answers (the API), which is why the machine records neither.
 *
 * Written in JSONPath: the local executor (aws-local-stepfunctions) ignores JSONata, and the tests execute this graph.
 */

/** What the API sends with SendTaskSuccess to end an approval wait. It records the approve/reject transition itself. */
export interface ApprovalAnswer {
  decision: 'approve' | 'reject';
  by?: string;
}

/** State names: stable, because the tests bind local handlers to them and operators read them in the console. */
export const STATE_NAMES = {
  checkStop: 'CheckStop',
  dispatch: 'Dispatch',
  stopped: 'Stopped',
  recordPlan: 'RecordPlan',
  runPlan: 'RunPlan',
  planExit: 'PlanExitCode',
  recordPlanReady: 'RecordPlanReady',
  awaitApproval: 'AwaitApproval',
  approvalAnswer: 'ApprovalAnswer',
  approved: 'Approved',
  rejected: 'Rejected',
  recordExpire: 'RecordExpire',
  expired: 'Expired',
  recordExecute: 'RecordExecute',
  runExecute: 'RunExecute',
  executeExit: 'ExecuteExitCode',
  recordPause: 'RecordPause',
  paused: 'Paused',
  recordSucceed: 'RecordSucceed',
  done: 'Done',
  classifyRunError: 'ClassifyRunError',
  readStoppedTask: 'ReadStoppedTask',
  classifyExitCode: 'ClassifyExitCode',
  runTimedOut: 'RunTimedOut',
  runErrored: 'RunErrored',
  runLost: 'RunLost',
  runExitedAbnormally: 'RunExitedAbnormally',
  decideRetry: 'DecideRetry',
  recordFailure: 'RecordFailure',
  willRetry: 'WillRetry',
  backoff: 'Backoff',
  recordRetry: 'RecordRetry',
  requeued: 'Requeued',
  failed: 'Failed',
  superseded: 'Superseded',
} as const;

/** The Pass state that reports a run the runner ended with `errorClass` (its exit code says which). */
export function runFailedStateName(errorClass: ErrorClass): string {
  return `RunFailed_${errorClass}`;
}

/** The `transition` steps with the event each records; RecordFailure records the event DecideRetry chose. */
export const RECORD_STATES: Readonly<Record<string, TaskEventType | 'decided'>> = {
  [STATE_NAMES.recordPlan]: 'plan',
  [STATE_NAMES.recordPlanReady]: 'plan_ready',
  [STATE_NAMES.recordExpire]: 'expire',
  [STATE_NAMES.recordExecute]: 'execute',
  [STATE_NAMES.recordSucceed]: 'succeed',
  [STATE_NAMES.recordFailure]: 'decided',
  [STATE_NAMES.recordRetry]: 'retry',
  [STATE_NAMES.recordPause]: 'interrupt',
};

/** The runner container's name in the task definition; the run steps override its environment. */
export const RUNNER_CONTAINER_NAME = 'runner';

/** Errors of the Lambda service itself (not of our handler): safe to retry, the call did not run or will run again. */
const LAMBDA_TRANSIENT_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
];

/**
 * Errors of starting a Fargate task that did not start it — no capacity, throttling, a 5xx — so starting again cannot
 * run the agent twice. A container that ran and failed surfaces as States.TaskFailed and is NOT retried here: that is
 * an attempt, and the core retry policy (DecideRetry) owns attempts.
 */
const ECS_TRANSIENT_ERRORS = [
  'ECS.AmazonECSException',
  'ECS.ServerException',
  'ECS.ThrottlingException',
  'ECS.LimitExceededException',
];

/** How long a Fargate run may take beyond the agent's own limit: image pull, start, writing the result. */
export const RUN_START_MARGIN = Duration.minutes(15);

/**
 * How long the Fargate runs may take. A planning run is one Claude run; an execution is the persistence loop, up to
 * `orchestrator.max_iterations` Claude runs of at most `claude_timeout` each — a bound of one run would have the step
 * time out in the middle of a loop that is within its limits.
 */
export function runTimeouts(config: Config): { plan: Duration; execute: Duration } {
  const one = config.orchestrator.claude_timeout;
  return {
    plan: Duration.seconds(one).plus(RUN_START_MARGIN),
    execute: Duration.seconds(one * config.orchestrator.max_iterations).plus(RUN_START_MARGIN),
  };
}

export interface TaskStateMachineProps {
  readonly config: Config;
  readonly stepFunction: lambda.IFunction;
  readonly cluster: ecs.ICluster;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly subnets: ec2.SubnetSelection;
}

export class TaskStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: TaskStateMachineProps) {
    super(scope, id);
    const { config } = props;
    const n = STATE_NAMES;

    // ---- Steps of the step Lambda

    const lambdaRetry = (task: sfn.TaskStateBase): void => {
      task.addRetry({
        errors: LAMBDA_TRANSIENT_ERRORS,
        interval: Duration.seconds(2),
        maxAttempts: 6,
        backoffRate: 2,
        maxDelay: Duration.minutes(1),
        jitterStrategy: sfn.JitterType.FULL,
      });
      // DynamoDB throttled or briefly unreachable: the handler already retried with the SDK; give it longer.
      task.addRetry({
        errors: [STEP_ERROR_NAMES.storeUnavailable, 'DynamoStoreError'],
        interval: Duration.seconds(5),
        maxAttempts: 5,
        backoffRate: 2,
        maxDelay: Duration.minutes(2),
        jitterStrategy: sfn.JitterType.FULL,
      });
    };

    const step = (name: string, payload: Record<string, unknown>, resultSelector: Record<string, unknown>, resultPath: string) => {
      const task = tasks.LambdaInvoke.jsonPath(this, name, {
        lambdaFunction: props.stepFunction,
        payload: sfn.TaskInput.fromObject(payload),
        resultSelector,
        resultPath,
        // Replaced by lambdaRetry: the default retrier has no jitter and no delay cap.
        retryOnServiceExceptions: false,
        taskTimeout: sfn.Timeout.duration(Duration.seconds(60)),
      });
      lambdaRetry(task);
      return task;
    };

    const superseded = sfn.Succeed.jsonPath(this, n.superseded, {
      comment:
        'The task moved outside this execution (an operator cancelled, rejected or requeued it) or is gone; the ' +
        'conditional write refused the step, so there is nothing left to do here.',
    });

    const record = (name: string, event: Record<string, unknown> | IResolvable) => {
      const task = step(
        name,
        {
          action: 'transition',
          taskId: sfn.JsonPath.stringAt('$.taskId'),
          event,
          // The same on every retry of this step and different for every other step, so a retry after a write that
          // did happen (a Lambda timeout, a lost response) gets the task as that write left it instead of a refusal.
          stepKey: sfn.JsonPath.format('{}#{}#{}', sfn.JsonPath.executionId, sfn.JsonPath.stateName, sfn.JsonPath.stateEnteredTime),
        },
        { state: sfn.JsonPath.stringAt('$.Payload.state'), attempts: sfn.JsonPath.numberAt('$.Payload.attempts') },
        '$.recorded',
      );
      // Another writer got in between our read and our write; reading again decides whether the step still applies.
      task.addRetry({
        errors: [STEP_ERROR_NAMES.staleWrite],
        interval: Duration.seconds(1),
        maxAttempts: 3,
        backoffRate: 2,
        maxDelay: Duration.seconds(10),
        jitterStrategy: sfn.JitterType.FULL,
      });
      task.addCatch(superseded, {
        errors: [STEP_ERROR_NAMES.invalidTransition, STEP_ERROR_NAMES.taskNotFound],
        resultPath: '$.caught',
      });
      return task;
    };

    // ---- Fargate runs

    const timeouts = runTimeouts(config);
    const run = (name: string, mode: 'plan' | 'execute') => {
      const task = tasks.EcsRunTask.jsonPath(this, name, {
        integrationPattern: sfn.IntegrationPattern.RUN_JOB,
        cluster: props.cluster,
        taskDefinition: props.taskDefinition,
        launchTarget: new tasks.EcsFargateLaunchTarget({ platformVersion: ecs.FargatePlatformVersion.LATEST }),
        // Public subnets and a public IP instead of a NAT gateway, which would cost ~$32 a month while idle.
        assignPublicIp: true,
        subnets: props.subnets,
        securityGroups: [props.securityGroup],
        propagatedTagSource: ecs.PropagatedTagSource.TASK_DEFINITION,
        containerOverrides: [
          {
            containerDefinition: props.container,
            environment: [
              { name: 'TASK_ID', value: sfn.JsonPath.stringAt('$.taskId') },
              { name: 'MODE', value: mode },
            ],
          },
        ],
        // Only the containers: the full description is large and the exit code is all the machine reads.
        resultSelector: { Containers: sfn.JsonPath.listAt('$.Containers') },
        resultPath: '$.run.task',
        taskTimeout: sfn.Timeout.duration(timeouts[mode]),
      });
      task.addRetry({
        errors: ECS_TRANSIENT_ERRORS,
        interval: Duration.seconds(10),
        maxAttempts: 5,
        backoffRate: 2,
        maxDelay: Duration.minutes(5),
        jitterStrategy: sfn.JitterType.FULL,
      });
      return task;
    };

    // ---- Failure classification: every way a run can end badly becomes { class, message } at $.error

    const decideRetry = step(
      n.decideRetry,
      { action: 'decide_retry', taskId: sfn.JsonPath.stringAt('$.taskId'), error: sfn.JsonPath.objectAt('$.error') },
      {
        retry: sfn.JsonPath.stringAt('$.Payload.retry'),
        waitSeconds: sfn.JsonPath.numberAt('$.Payload.waitSeconds'),
        event: sfn.JsonPath.objectAt('$.Payload.event'),
      },
      '$.decision',
    );
    const runError = (name: string, errorClass: ErrorClass, message: string) =>
      sfn.Pass.jsonPath(this, name, {
        parameters: { class: errorClass, message },
        resultPath: '$.error',
      }).next(decideRetry);

    const exitCodePath = '$.run.task.Containers[0].ExitCode';
    const runLost = runError(n.runLost, 'crash', 'the runner container stopped without an exit code (it may never have started)');
    const runExitedAbnormally = sfn.Pass.jsonPath(this, n.runExitedAbnormally, {
      parameters: {
        class: 'crash',
        message: sfn.JsonPath.format('the runner container exited with code {}', sfn.JsonPath.stringAt(exitCodePath)),
      },
      resultPath: '$.error',
    }).next(decideRetry);
    const classifyExitCode = sfn.Choice.jsonPath(this, n.classifyExitCode, {
      comment: 'The runner exits with a code per error class (lib/cloud/runner-exit-codes.ts), or with the pause code.',
    });
    // Not a failure: the loop paused between iterations as the local one does (stop flag, daily budget). The task goes
    // back to the queue with the attempt counted and no retry decided; the scheduler starts it again when dispatch is
    // allowed, and that attempt resumes from the checkpoint. Ending here, rather than going round through CheckStop,
    // keeps a budget pause from starting a container every few seconds until the budget frees up.
    const recordPause = record(n.recordPause, {
      type: 'interrupt',
      reason: 'paused between iterations (stop flag or daily budget); resumes from its checkpoint when dispatch is allowed',
    });
    const paused = sfn.Succeed.jsonPath(this, n.paused, {
      comment: 'The persistence loop paused between iterations; the task is queued again and its checkpoint stands.',
    });
    recordPause.next(paused);
    // Rules are evaluated in order: the presence test must come before any comparison on the path.
    classifyExitCode.when(sfn.Condition.not(sfn.Condition.isPresent(exitCodePath)), runLost);
    classifyExitCode.when(sfn.Condition.numberEquals(exitCodePath, RUNNER_PAUSED_EXIT_CODE), recordPause);
    for (const errorClass of ERROR_CLASSES) {
      const code = runnerExitCode(errorClass);
      classifyExitCode.when(
        sfn.Condition.numberEquals(exitCodePath, code),
        runError(runFailedStateName(errorClass), errorClass, `the runner reported ${errorClass} (exit code ${code}); its run record has the details`),
      );
    }
    classifyExitCode.otherwise(runExitedAbnormally);

    // A container that exits non-zero fails runTask.sync with States.TaskFailed; its Cause is the stopped task's
    // description as JSON, which carries the exit code.
    const readStoppedTask = sfn.Pass.jsonPath(this, n.readStoppedTask, {
      parameters: { task: sfn.JsonPath.stringToJson(sfn.JsonPath.stringAt('$.caught.Cause')) },
      resultPath: '$.run',
    }).next(classifyExitCode);
    const runTimedOut = runError(n.runTimedOut, 'timeout', 'the run took longer than its step allows and was stopped');
    const runErrored = sfn.Pass.jsonPath(this, n.runErrored, {
      parameters: {
        class: 'crash',
        message: sfn.JsonPath.format('the run could not complete: {}', sfn.JsonPath.stringAt('$.caught.Error')),
      },
      resultPath: '$.error',
    }).next(decideRetry);
    const classifyRunError = sfn.Choice.jsonPath(this, n.classifyRunError)
      .when(sfn.Condition.stringEquals('$.caught.Error', 'States.Timeout'), runTimedOut)
      .when(sfn.Condition.not(sfn.Condition.isPresent('$.caught.Cause')), runErrored)
      .when(
        sfn.Condition.and(
          sfn.Condition.stringEquals('$.caught.Error', 'States.TaskFailed'),
          // StringToJson on text that is not JSON is a States.Runtime error no Catch can handle.
          sfn.Condition.stringMatches('$.caught.Cause', '{*'),
        ),
        readStoppedTask,
      )
      .otherwise(runErrored);

    // ---- The graph

    const checkStop = step(
      n.checkStop,
      { action: 'check_stop', taskId: sfn.JsonPath.stringAt('$.taskId') },
      { stopped: sfn.JsonPath.stringAt('$.Payload.stopped') },
      '$.stop',
    );
    const stopped = sfn.Succeed.jsonPath(this, n.stopped, {
      comment:
        'The stop flag is set, or the daily budget is spent: the task keeps its state and the scheduler starts it again ' +
        'once dispatch is allowed.',
    });

    const recordExecute = record(n.recordExecute, { type: 'execute' });
    const runExecute = run(n.runExecute, 'execute');
    const recordSucceed = record(n.recordSucceed, { type: 'succeed' });
    const done = sfn.Succeed.jsonPath(this, n.done);

    const recordPlan = record(n.recordPlan, { type: 'plan' });
    const runPlan = run(n.runPlan, 'plan');
    const recordPlanReady = record(n.recordPlanReady, { type: 'plan_ready' });

    const recordExpire = record(n.recordExpire, { type: 'expire' });
    const expired = sfn.Succeed.jsonPath(this, n.expired);
    const rejected = sfn.Succeed.jsonPath(this, n.rejected, {
      comment: 'A human said no; the API recorded the rejection when it answered the wait.',
    });

    const awaitApproval = tasks.LambdaInvoke.jsonPath(this, n.awaitApproval, {
      lambdaFunction: props.stepFunction,
      integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      payload: sfn.TaskInput.fromObject({
        action: 'await_approval',
        taskId: sfn.JsonPath.stringAt('$.taskId'),
        token: sfn.JsonPath.taskToken,
      }),
      // A token wait without a timeout can hang for a year; the approval timeout bounds it.
      taskTimeout: sfn.Timeout.duration(Duration.seconds(config.approval.timeout)),
      resultPath: '$.approval',
      retryOnServiceExceptions: false,
    });
    lambdaRetry(awaitApproval);
    awaitApproval.addCatch(recordExpire, { errors: [sfn.Errors.TIMEOUT], resultPath: '$.caught' });
    // The token could not be stored (or the answer was a failure): nobody can approve this wait, so it expires now
    // rather than sit in pending_approval with no execution behind it. An operator can requeue an expired task.
    awaitApproval.addCatch(recordExpire, { errors: [sfn.Errors.ALL], resultPath: '$.caught' });

    const approved = sfn.Pass.jsonPath(this, n.approved, {
      comment: 'The API recorded the approval; go round through CheckStop, which is then right before execution.',
      parameters: {
        taskId: sfn.JsonPath.stringAt('$.taskId'),
        approvalRequired: sfn.JsonPath.stringAt('$.approvalRequired'),
        state: 'approved',
      },
    });
    const approvalAnswer = sfn.Choice.jsonPath(this, n.approvalAnswer)
      .when(sfn.Condition.not(sfn.Condition.isPresent('$.approval.decision')), recordExpire)
      .when(sfn.Condition.stringEquals('$.approval.decision', 'approve'), approved)
      .when(sfn.Condition.stringEquals('$.approval.decision', 'reject'), rejected)
      // An answer nobody can read is no approval.
      .otherwise(recordExpire);

    const recordFailure = record(n.recordFailure, sfn.JsonPath.objectAt('$.decision.event'));
    const recordRetry = record(n.recordRetry, { type: 'retry' });
    const requeued = sfn.Pass.jsonPath(this, n.requeued, {
      comment: 'Back to the top with the state the retry produced: needs_action, or approved when the approval stands.',
      parameters: {
        taskId: sfn.JsonPath.stringAt('$.taskId'),
        approvalRequired: sfn.JsonPath.stringAt('$.approvalRequired'),
        state: sfn.JsonPath.stringAt('$.recorded.state'),
      },
    });
    const backoff = sfn.Wait.jsonPath(this, n.backoff, {
      time: sfn.WaitTime.secondsPath('$.decision.waitSeconds'),
    });
    const failed = sfn.Fail.jsonPath(this, n.failed, {
      error: 'TaskFailed',
      causePath: '$.error.message',
    });
    const willRetry = sfn.Choice.jsonPath(this, n.willRetry)
      .when(sfn.Condition.booleanEquals('$.decision.retry', true), backoff)
      .otherwise(failed);

    const dispatch = sfn.Choice.jsonPath(this, n.dispatch)
      .when(sfn.Condition.booleanEquals('$.stop.stopped', true), stopped)
      .when(sfn.Condition.stringEquals('$.state', 'approved'), recordExecute)
      .when(sfn.Condition.booleanEquals('$.approvalRequired', true), recordPlan)
      .otherwise(recordExecute);

    const planExit = this.exitCodeChoice(n.planExit, exitCodePath, recordPlanReady, runLost, classifyExitCode);
    const executeExit = this.exitCodeChoice(n.executeExit, exitCodePath, recordSucceed, runLost, classifyExitCode);

    checkStop.next(dispatch);
    recordPlan.next(runPlan);
    runPlan.addCatch(classifyRunError, { errors: [sfn.Errors.ALL], resultPath: '$.caught' });
    runPlan.next(planExit);
    recordPlanReady.next(awaitApproval);
    awaitApproval.next(approvalAnswer);
    approved.next(checkStop);
    recordExpire.next(expired);
    recordExecute.next(runExecute);
    runExecute.addCatch(classifyRunError, { errors: [sfn.Errors.ALL], resultPath: '$.caught' });
    runExecute.next(executeExit);
    recordSucceed.next(done);
    decideRetry.next(recordFailure);
    recordFailure.next(willRetry);
    backoff.next(recordRetry);
    recordRetry.next(requeued);
    requeued.next(checkStop);

    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_MONTH });
    this.stateMachine = new sfn.StateMachine(this, 'Resource', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'fte task: plan, approval, execution and retries, mirroring lib/core/state-machine.ts',
      definitionBody: sfn.DefinitionBody.fromChainable(checkStop),
      timeout: executionTimeout(config, timeouts.plan.plus(timeouts.execute)),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
  }

  /** Success of runTask.sync is checked again on the exit code: the task description, not the state, is the truth. */
  private exitCodeChoice(
    name: string,
    path: string,
    onSuccess: sfn.IChainable,
    onMissing: sfn.IChainable,
    onFailure: sfn.IChainable,
  ): sfn.Choice {
    return sfn.Choice.jsonPath(this, name)
      .when(sfn.Condition.not(sfn.Condition.isPresent(path)), onMissing)
      .when(sfn.Condition.numberEquals(path, 0), onSuccess)
      .otherwise(onFailure);
  }
}

/**
 * A bound on a whole execution, so that a bug in the graph cannot keep one running (and a task held) for a year: the
 * approval wait plus, for every attempt the retry policy allows, a planning and an execution run (`attemptRuns`) and
 * the longest backoff — doubled.
 */
export function executionTimeout(config: Config, attemptRuns: Duration): Duration {
  const types = ['general', ...Object.keys(config.retry.per_type)];
  const settings = types.map((t) => retrySettingsFor(config, t));
  const attempts = Math.max(...settings.map((s) => s.max_attempts));
  const backoff = Math.max(...settings.map((s) => s.max_backoff));
  const seconds = 2 * (config.approval.timeout + attempts * (attemptRuns.toSeconds() + backoff));
  const yearSeconds = 365 * 24 * 3600;
  return Duration.seconds(Math.min(Math.ceil(seconds), yearSeconds));
}
