/**
 * CDK feature flags of this app, in one place for `bin/app.ts` and the tests (which build their own App), so the
 * template the tests assert on is the template `cdk synth` writes. Each one is the newer, narrower behaviour.
 */
export const FEATURE_FLAGS: Readonly<Record<string, boolean>> = {
  // RunTask granted on the task definition family (all revisions), not the literal ARN that breaks on a new revision.
  '@aws-cdk/aws-stepfunctions-tasks:fixRunEcsTaskPolicy': true,
  // The execution role may write logs to its own log group only.
  '@aws-cdk/aws-ecs:reduceEc2FargateCloudWatchPermissions': true,
  '@aws-cdk/aws-ecs:arnFormatIncludesClusterName': true,
  // Merge statements with the same actions, so policies stay readable and under the size limit.
  '@aws-cdk/aws-iam:minimizePolicies': true,
  '@aws-cdk/core:checkSecretUsage': true,
  '@aws-cdk/core:enablePartitionLiterals': true,
};
