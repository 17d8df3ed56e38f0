import { createHash } from 'node:crypto';
import * as z from 'zod';
import type { TaskParseReason } from '../lib/core/errors.ts';
import { parseTaskNote } from '../lib/core/parse-task.ts';
import { isValidTaskId } from '../lib/core/task.ts';
import { admitTask, CLOUD_PARSE_LIMITS, type AdmitDeps, type AdmitOutcome } from './admit-task.ts';
import { METRICS, MetricUnit } from './observability.ts';

export { CLOUD_MAX_NOTE_BYTES } from './admit-task.ts';

/**
 * The admission of one task document `{ id, markdown }` from the intake queue (lambda/ingest.ts). The document is
 * validated by the core parser, then admitted by lambda/admit-task.ts — which the API's `POST /tasks` uses too, with
 * the task built from its structured request: the approval policy decides whether the task needs a human, and the
 * task is written idempotently on its id, with its markdown beside it for the runner.
 *
 * A document that cannot become a task is QUARANTINED — a `QUARANTINE#<id>` item holding the reason, the offending
 * field and the start of the document. It is not retried: it would fail the same way for ever.
 *
 * Its own module, free of side effects, because lambda/ingest.ts builds its clients when it is loaded inside Lambda.
 */

export interface IngestDeps extends AdmitDeps {
  readonly now?: () => Date;
}

export interface TaskDocument {
  readonly id: string;
  readonly markdown: string;
}

/** Why a document was quarantined: a parser reason, or a fault of the envelope around the note. */
export type QuarantineReason = TaskParseReason | 'not_json' | 'invalid_document' | 'invalid_id';

export type IngestOutcome =
  | AdmitOutcome
  | {
      readonly status: 'quarantined';
      /** The key the quarantine record is stored under (the task id when it is a valid one). */
      readonly quarantineId: string;
      readonly reason: QuarantineReason;
      readonly field: string | null;
      readonly message: string;
    };

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

  // Notes larger than CLOUD_MAX_NOTE_BYTES are quarantined as `too_large`.
  const parsed = parseTaskNote({ id: doc.id, content: doc.markdown, fallbackCreated: now }, CLOUD_PARSE_LIMITS);
  if (!parsed.ok) {
    return quarantine(deps, now, {
      quarantineId: doc.id,
      reason: parsed.error.reason,
      field: parsed.error.field ?? null,
      message: parsed.error.message,
      excerpt: doc.markdown,
    });
  }

  return admitTask(deps, parsed.task, doc.markdown, now, source);
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

