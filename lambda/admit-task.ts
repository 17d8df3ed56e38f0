import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoTaskStore } from '../lib/aws/dynamodb-store.ts';
import { admissionOf } from '../lib/core/admission.ts';
import type { Config } from '../lib/core/config.ts';
import type { TaskDoc } from '../lib/core/task.ts';
import { DEFAULT_PARSE_LIMITS, type ParseLimits } from '../lib/core/task-fields.ts';
import { METRICS, MetricUnit } from './observability.ts';

/**
 * Admission of a task that has passed the note rules: the approval policy decides whether it needs a human, and the
 * task is written idempotently on its id with its markdown beside it for the runner. The intake queue reaches it after
 * parsing a document (lambda/ingest-document.ts); the API's `POST /tasks` with the task built from its structured
 * request (lib/aws/new-task.ts). Its own module, free of the note parser, so the API Lambda bundles no YAML parser.
 */

export interface AdmitDeps {
  readonly store: DynamoTaskStore;
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export type AdmitOutcome =
  | { readonly status: 'created'; readonly taskId: string; readonly approvalRequired: boolean }
  | { readonly status: 'duplicate'; readonly taskId: string };

/**
 * The largest note the cloud admits. A DynamoDB item holds at most 400 KB and the note is stored whole for the runner;
 * the rest of the item and the attribute names need the margin. Larger notes are refused as `too_large`.
 */
export const CLOUD_MAX_NOTE_BYTES = 300 * 1024;

/** The note rules' bounds in the cloud: the local ones, with the note sized to fit a DynamoDB item. */
export const CLOUD_PARSE_LIMITS: Readonly<ParseLimits> = Object.freeze({ ...DEFAULT_PARSE_LIMITS, maxBytes: CLOUD_MAX_NOTE_BYTES });

/** Write the task unless its id is taken. Throws only for failures of the store (StoreError), which are worth retrying. */
export async function admitTask(deps: AdmitDeps, task: TaskDoc, markdown: string, now: Date, source: string): Promise<AdmitOutcome> {
  const newTask = admissionOf(task, deps.config, now);
  const created = await deps.store.createWithBody(newTask, markdown, now);
  if (!created) {
    deps.logger.info('duplicate task document ignored', { taskId: task.id, source });
    return { status: 'duplicate', taskId: task.id };
  }
  deps.metrics.addMetric(METRICS.ingested, MetricUnit.Count, 1);
  deps.logger.info('task admitted', { taskId: task.id, source, approvalRequired: newTask.approvalRequired, type: task.type });
  return { status: 'created', taskId: task.id, approvalRequired: newTask.approvalRequired };
}
