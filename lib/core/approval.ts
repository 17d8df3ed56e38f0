import type { Config } from './config.ts';
import type { TaskDoc } from './task.ts';
import { matchingInflectedPhrases } from './text-match.ts';

/**
 * Which tasks need a human before they run. The policy only ever adds a requirement: a note that says
 * `approval: auto` still needs approval when its type or its words match the policy, because the note's text is
 * written by whoever sent it, and "auto" on a wire transfer is exactly what an attacker would write.
 */
export interface ApprovalDecision {
  readonly required: boolean;
  /** Human-readable reasons, shown in the queue view and added to the approval request. */
  readonly reasons: readonly string[];
}

export type ApprovalSubject = Pick<TaskDoc, 'title' | 'body' | 'type' | 'approval'>;

export function approvalDecision(task: ApprovalSubject, config: Config): ApprovalDecision {
  const policy = config.approval;
  const reasons: string[] = [];
  if (task.approval === 'required') reasons.push('the note asks for approval (approval: required)');
  const type = task.type.toLowerCase();
  if (policy.required_types.some((t) => t.toLowerCase() === type)) {
    reasons.push(`tasks of type "${task.type}" always need approval`);
  }
  const words = matchingInflectedPhrases(`${task.title}\n${task.body}`, policy.keywords);
  if (words.length > 0) {
    reasons.push(`mentions ${words.map((w) => `"${w}"`).join(', ')}`);
  }
  return { required: reasons.length > 0, reasons };
}

/** When an approval request made at `requestedAt` expires. */
export function approvalExpiresAt(requestedAt: Date, config: Config): Date {
  return new Date(requestedAt.getTime() + config.approval.timeout * 1000);
}

export function isApprovalExpired(requestedAt: Date, now: Date, config: Config): boolean {
  return now.getTime() >= approvalExpiresAt(requestedAt, config).getTime();
}
