import { approvalDecision } from './approval.ts';
import type { Config } from './config.ts';
import { buildQueueView, type QueueCandidate, type QueueRow } from './queue-view.ts';
import { rankTasks } from './scoring.ts';
import type { TaskDoc } from './task.ts';

/**
 * Rank waiting task notes into queue rows: score, approval need, wait and ETA. Shared by the read-only queue command,
 * the local engine's dispatcher and the cloud scheduler, so all three agree on the order.
 */
export function rankQueue(
  docs: readonly TaskDoc[],
  now: Date,
  config: Config,
  context: { running: number; recentDurationsMs: readonly number[]; queuedAt?: (doc: TaskDoc) => Date },
): QueueRow[] {
  const ranked: QueueCandidate[] = rankTasks(docs, now, config).map(({ task, score }) => {
    const approval = approvalDecision(task, config);
    return {
      id: task.id,
      title: task.title,
      type: task.type,
      score: score.score,
      breakdown: score.breakdown,
      queuedAt: context.queuedAt?.(task) ?? task.created,
      approvalRequired: approval.required,
      approvalReasons: approval.reasons,
    };
  });
  return buildQueueView({
    ranked,
    now,
    running: context.running,
    concurrency: config.orchestrator.max_concurrent_tasks,
    recentDurationsMs: context.recentDurationsMs,
  });
}
