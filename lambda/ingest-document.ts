import { createHash } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import * as z from 'zod';
import type { DynamoTaskStore } from '../lib/aws/dynamodb-store.ts';
import { approvalDecision } from '../lib/core/approval.ts';
import type { Config } from '../lib/core/config.ts';
import type { TaskParseReason } from '../lib/core/errors.ts';
import { DEFAULT_PARSE_LIMITS, parseTaskNote } from '../lib/core/parse-task.ts';
import type { NewTask } from '../lib/core/store.ts';
import { isValidTaskId } from '../lib/core/task.ts';
import { METRICS, MetricUnit } from './observability.ts';

/**
 * The admission of one task document `{ id, markdown }`, shared by the intake queue's handler (lambda/ingest.ts) and
 * the API's `POST /tasks` (lib/aws/api-backend.ts), each with its own store and telemetry. The document is validated by
 * the core parser and the approval policy decides, at admission, whether the task needs a human; the task is written
 * idempotently on its id, with its markdown beside it for the runner.
 *
 * A document that cannot become a task is QUARANTINED — a `QUARANTINE#<id>` item holding the reason, the offending
 * field and the start of the document. It is not retried: it would fail the same way for ever.
 *
 * Its own module, free of side effects, because lambda/ingest.ts builds its clients when it is loaded inside Lambda,
 * and the API Lambda must not build the intake handler's clients just by importing this logic.
 */

export interface IngestDeps {
  readonly store: DynamoTaskStore;
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now?: () => Date;
}

export interface TaskDocument {
  readonly id: string;
  readonly markdown: string;
}

/** Why a document was quarantined: a parser reason, or a fault of the envelope around the note. */
export type QuarantineReason = TaskParseReason | 'not_json' | 'invalid_document' | 'invalid_id';

export type IngestOutcome =
  | { readonly status: 'created'; readonly taskId: string; readonly approvalRequired: boolean }
  | { readonly status: 'duplicate'; readonly taskId: string }
  | {
      readonly status: 'quarantined';
      /** The key the quarantine record is stored under (the task id when it is a valid one). */
      readonly quarantineId: string;
      readonly reason: QuarantineReason;
      readonly field: string | null;
      readonly message: string;
    };

/**
 * The largest note the cloud admits. A DynamoDB item holds at most 400 KB and the note is stored whole for the runner;
 * the rest of the item and the attribute names need the margin. Larger notes are quarantined as `too_large`.
 */
export const CLOUD_MAX_NOTE_BYTES = 300 * 1024;

const documentSchema = z.object({
  id: z.string(),
  markdown: z.string(),
});

/**
 * Validate and admit one task document. `raw` is the parsed JSON body; `source` names where it came from (an SQS
 * message id, an API request id) and keys the quarantine record when the document has no usable id. Throws only for
 * failures of the store (StoreError), which are worth retrying.
 */
export async function ingestDocument(deps: IngestDeps, raw: unknown, source: string): Promise<IngestOutcome> {
  const now = (deps.now ?? (() => new Date()))();
  const parsedEnvelope = documentSchema.safeParse(raw);
  if (!parsedEnvelope.success) {
    const issue = parsedEnvelope.error.issues[0];
    const field = issue === undefined ? null : issue.path.map(String).join('.') || null;
    return quarantine(deps, now, {
      quarantineId: idFor(raw, source),
      reason: 'invalid_document',
      field,
      message: `a task document is {"id": string, "markdown": string}: ${issue?.message ?? 'unreadable'}`,
      excerpt: excerptOf(raw),
    });
  }
  const doc: TaskDocument = parsedEnvelope.data;
  if (!isValidTaskId(doc.id)) {
    return quarantine(deps, now, {
      quarantineId: idFor(raw, source),
      reason: 'invalid_id',
      field: 'id',
      message: `${JSON.stringify(doc.id.slice(0, 200))} is not a task id: it must be a file name (no slashes, control characters, leading dot or surrounding spaces, at most 200 characters)`,
      excerpt: doc.markdown,
    });
  }

  const parsed = parseTaskNote(
    { id: doc.id, content: doc.markdown, fallbackCreated: now },
    { ...DEFAULT_PARSE_LIMITS, maxBytes: CLOUD_MAX_NOTE_BYTES },
  );
  if (!parsed.ok) {
    return quarantine(deps, now, {
      quarantineId: doc.id,
      reason: parsed.error.reason,
      field: parsed.error.field ?? null,
      message: parsed.error.message,
      excerpt: doc.markdown,
    });
  }

  const task = parsed.task;
  const approval = approvalDecision(task, deps.config);
  const newTask: NewTask = {
    id: task.id,
    title: task.title,
    type: task.type,
    sender: task.sender,
    urgency: task.urgency,
    deadline: task.deadline,
    created: task.created,
    approvalRequired: approval.required,
    approvalReasons: approval.reasons,
  };
  const created = await deps.store.createWithBody(newTask, doc.markdown, now);
  if (!created) {
    deps.logger.info('duplicate task document ignored', { taskId: task.id, source });
    return { status: 'duplicate', taskId: task.id };
  }
  deps.metrics.addMetric(METRICS.ingested, MetricUnit.Count, 1);
  deps.logger.info('task admitted', { taskId: task.id, source, approvalRequired: approval.required, type: task.type });
  return { status: 'created', taskId: task.id, approvalRequired: approval.required };
}

/** Record a document that cannot become a task, and count it. */
export async function quarantine(
  deps: IngestDeps,
  now: Date,
  entry: { quarantineId: string; reason: QuarantineReason; field: string | null; message: string; excerpt: string },
): Promise<IngestOutcome> {
  await deps.store.quarantine({
    id: entry.quarantineId,
    reason: entry.reason,
    field: entry.field,
    message: entry.message,
    receivedAt: now,
    excerpt: entry.excerpt,
  });
  deps.metrics.addMetric(METRICS.quarantined, MetricUnit.Count, 1);
  deps.logger.warn('task document quarantined', {
    quarantineId: entry.quarantineId,
    reason: entry.reason,
    field: entry.field,
    message: entry.message,
  });
  return {
    status: 'quarantined',
    quarantineId: entry.quarantineId,
    reason: entry.reason,
    field: entry.field,
    message: entry.message,
  };
}

/**
 * The key of a quarantine record: the document's id when it is a valid task id, so an operator finds it by the name
 * they sent; otherwise a digest of whatever id it had (an invalid id may be empty, huge or full of control
 * characters), or the source when it had none.
 */
function idFor(raw: unknown, source: string): string {
  const id = raw !== null && typeof raw === 'object' && 'id' in raw ? raw.id : undefined;
  if (typeof id === 'string' && isValidTaskId(id)) return id;
  if (typeof id === 'string') return `invalid-id:${createHash('sha256').update(id).digest('hex').slice(0, 32)}`;
  return source;
}

function excerptOf(raw: unknown): string {
  if (raw !== null && typeof raw === 'object' && 'markdown' in raw && typeof raw.markdown === 'string') return raw.markdown;
  try {
    return JSON.stringify(raw) ?? String(raw);
  } catch {
    return String(raw);
  }
}

