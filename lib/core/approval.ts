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
  const text = `${task.title}\n${task.body}`;
  const folded = foldForMatching(text);
  const words = policy.keywords.filter((k) => matchingInflectedPhrases(folded, [foldForMatching(k)]).length > 0);
  if (words.length > 0) {
    reasons.push(`mentions ${words.map((w) => `"${w}"`).join(', ')}`);
  }
  if (BIDI_CONTROLS.test(text)) {
    reasons.push('contains invisible bidirectional-text controls, which can make it read differently from what it says');
  }
  return { required: reasons.length > 0, reasons };
}

/** Explicit bidi embeddings, overrides and isolates (the "Trojan Source" characters). */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/u;

/**
 * The text the keywords are looked for in: what a reader (or a model) takes the words to be, not the code points that
 * spell them. Compatibility forms are folded (fullwidth ｗｉｒｅ and mathematical 𝐰𝐢𝐫𝐞 read "wire"), invisible
 * characters are dropped (a zero-width space or a soft hyphen inside "wi\u200bre" hides nothing from a reader), and
 * so are accents (a "tránsfer" is still a transfer). Applied to the keywords too, so configured keywords with accents
 * still match. Homoglyphs from other scripts (a Cyrillic "а" in "pаyment") are not folded.
 */
export function foldForMatching(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/[\p{Default_Ignorable_Code_Point}\p{M}]/gu, '')
    .normalize('NFC');
}

/** When an approval request made at `requestedAt` expires. */
export function approvalExpiresAt(requestedAt: Date, config: Config): Date {
  return new Date(requestedAt.getTime() + config.approval.timeout * 1000);
}

export function isApprovalExpired(requestedAt: Date, now: Date, config: Config): boolean {
  return now.getTime() >= approvalExpiresAt(requestedAt, config).getTime();
}
