import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { StoreError } from '../lib/core/store-error.ts';
import { ingestDocument, quarantine } from './ingest-document.ts';
import type { IngestDeps } from './ingest-document.ts';
import { createLogger, createMetrics, flushMetrics } from './observability.ts';
import { inLambda, loadConfig, storeFromEnv } from './runtime.ts';
import type { Env } from './runtime.ts';

export { CLOUD_MAX_NOTE_BYTES, ingestDocument } from './ingest-document.ts';
export type { IngestDeps, IngestOutcome, QuarantineReason, TaskDocument } from './ingest-document.ts';

/**
 * Intake: task documents `{ id, markdown }` from the SQS queue (watchers), admitted one by one by `ingestDocument`
 * (lambda/ingest-document.ts, which `POST /tasks` of the API uses too). A document that cannot become a task is
 * quarantined and its message consumed: retrying it would fail the same way for ever and push it into the dead-letter
 * queue, where nobody can tell a bad document from an outage. Only failures that may pass (the table throttled or
 * unreachable) are reported back to SQS as batch item failures, so SQS redelivers just those messages and, after
 * maxReceiveCount, moves them to the dead-letter queue.
 */

/**
 * The SQS handler's logic: every record is ingested on its own, so one bad or failing document never holds back the
 * rest of the batch. Needs `ReportBatchItemFailures` on the event source mapping.
 */
export async function ingestBatch(deps: IngestDeps, event: SQSEvent): Promise<SQSBatchResponse> {
  const failures: SQSBatchResponse['batchItemFailures'] = [];
  try {
    for (const record of event.Records) {
      const source = `sqs:${record.messageId}`;
      try {
        let body: unknown;
        try {
          body = JSON.parse(record.body);
        } catch {
          await quarantine(deps, (deps.now ?? (() => new Date()))(), {
            quarantineId: source,
            reason: 'not_json',
            field: null,
            message: 'the message body is not JSON',
            excerpt: record.body,
          });
          continue;
        }
        await ingestDocument(deps, body, source);
      } catch (err) {
        // Whatever is not a verdict on the document is retried by SQS, and lands in the dead-letter queue if it persists.
        failures.push({ itemIdentifier: record.messageId });
        deps.logger.error(err instanceof StoreError ? 'task store unavailable; message will be retried' : 'ingest failed', {
          messageId: record.messageId,
          error: err instanceof Error ? { name: err.name, message: err.message } : String(err),
        });
      }
    }
  } finally {
    flushMetrics(deps.metrics);
  }
  return { batchItemFailures: failures };
}

// ---- Lambda entry point

function initialise(env: Env): IngestDeps {
  const config = loadConfig(env);
  return {
    store: storeFromEnv(env, config),
    config,
    logger: createLogger('fte-ingest'),
    metrics: createMetrics('fte-ingest'),
  };
}

let deps: IngestDeps | undefined = inLambda(process.env) ? initialise(process.env) : undefined;

export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  deps ??= initialise(process.env);
  return ingestBatch(deps, event);
}
