/**
 * Environment variables the stack sets on the Lambdas and the runner container. Free of CDK imports: the runner bundle
 * reads these names too. (The table name is TABLE_NAME_ENV in lib/aws/table-design.ts.)
 */

/**
 * The validated orchestrator settings as JSON (see settings.ts `runtimeConfig`). Not `FTE_CONFIG`: locally that names
 * a config FILE, and the two must never be mistaken for each other.
 */
export const CONFIG_JSON_ENV = 'FTE_CONFIG_JSON';

/** The task state machine the scheduler starts executions of and the API completes approval tokens for. */
export const STATE_MACHINE_ARN_ENV = 'FTE_STATE_MACHINE_ARN';

/** Where the runner writes the task note and lets Claude work: the container's writable home. */
export const RUNNER_WORK_DIR = '/home/node/work';

/**
 * The attributes of a run item (TASK#<id> / RUN#<attempt>#<kind>) as the runner writes it — the adapter's run item plus
 * the run's result text and message. The runner's IAM policy allows PutItem with these attributes (and those of the
 * iteration and checkpoint items below) only, UpdateItem of the task's cost and version only, and a read of the control
 * item, so the task role cannot approve, stop or rewrite anything.
 */
export const RUNNER_RUN_ITEM_ATTRIBUTES = [
  'pk',
  'sk',
  'entity',
  'taskId',
  'attempt',
  'kind',
  'startedAt',
  'endedAt',
  'ok',
  'errorClass',
  'exitCode',
  'durationMs',
  'costUsd',
  'numTurns',
  'sessionId',
  'logPath',
  'result',
  'message',
] as const;

/** The attributes of an iteration item (TASK#<id> / ITER#<attempt>#<iteration>): the persistence loop's journal. */
export const RUNNER_ITERATION_ITEM_ATTRIBUTES = [
  'pk',
  'sk',
  'entity',
  'taskId',
  'attempt',
  'iteration',
  'startedAt',
  'endedAt',
  'durationMs',
  'costUsd',
  'numTurns',
  'sessionId',
  'ok',
  'errorClass',
  'promiseSeen',
] as const;

/** The attributes of the checkpoint item (TASK#<id> / CHECKPOINT). */
export const RUNNER_CHECKPOINT_ITEM_ATTRIBUTES = ['pk', 'sk', 'entity', 'taskId', 'attempt', 'iteration', 'sessionId'] as const;

/**
 * Every attribute a PutItem of the runner may carry: run, iteration and checkpoint items. The persistence loop added
 * only `iteration` and `promiseSeen` to what the role allowed before — neither is an attribute of a task item.
 */
export const RUNNER_PUT_ITEM_ATTRIBUTES: readonly string[] = [
  ...new Set<string>([...RUNNER_RUN_ITEM_ATTRIBUTES, ...RUNNER_ITERATION_ITEM_ATTRIBUTES, ...RUNNER_CHECKPOINT_ITEM_ATTRIBUTES]),
];

/** What the runner's UpdateItem of the task item may touch. */
export const RUNNER_TASK_UPDATE_ATTRIBUTES = ['pk', 'sk', 'costUsd', 'version'] as const;

/**
 * Variables the runner removes from Claude's environment when Claude authenticates with an API key: with them, the
 * agent (which runs whatever tools the task leads it to) could fetch the task role's credentials. With Bedrock, Claude
 * needs those credentials, and the task role's narrow policy is the bound.
 */
export const AGENT_HIDDEN_ENV = [
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'ECS_CONTAINER_METADATA_URI',
  'ECS_CONTAINER_METADATA_URI_V4',
  CONFIG_JSON_ENV,
  'FTE_TABLE_NAME',
] as const;
