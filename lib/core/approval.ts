import type { Config } from './config.ts';
import type { TaskDoc } from './task.ts';
import { foldLookalikes, mixedScriptWords } from './homoglyphs.ts';
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

/**
 * `frontmatter` is read for the title as written: the parsed title has its bidi controls removed for display, and the
 * policy must still see that they were there.
 */
export type ApprovalSubject = Pick<TaskDoc, 'title' | 'body' | 'type' | 'approval'> & Partial<Pick<TaskDoc, 'frontmatter'>>;

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
  const rawTitle = task.frontmatter?.title;
  if (BIDI_CONTROLS.test(text) || (typeof rawTitle === 'string' && BIDI_CONTROLS.test(rawTitle))) {
    reasons.push('contains invisible bidirectional-text controls, which can make it read differently from what it says');
  }
  const mixed = mixedScriptWords(text);
  if (mixed.length > 0) {
    const shown = mixed.map((m) => `"${m.word.length > 40 ? `${m.word.slice(0, 39)}…` : m.word}" (${m.scripts.join(' + ')})`);
    reasons.push(`mixes scripts in one word, ${shown.join(', ')}: letters of another alphabet can disguise a word`);
  }
  return { required: reasons.length > 0, reasons };
}

/** Explicit bidi embeddings, overrides and isolates (the "Trojan Source" characters). */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/u;

/**
 * The text the keywords are looked for in: what a reader (or a model) takes the words to be, not the code points that
 * spell them. Compatibility forms are folded (fullwidth ｗｉｒｅ and mathematical 𝐰𝐢𝐫𝐞 read "wire"), invisible
 * characters are dropped (a zero-width space or a soft hyphen inside "wi\u200bre" hides nothing from a reader), and
 * so are accents (a "tránsfer" is still a transfer), and look-alike letters of other scripts become the Latin letters
 * they pass for (a Cyrillic "а" in "pаyment"; see homoglyphs.ts). Applied to the keywords too, so configured keywords
 * with accents still match. The result is lower case.
 */
export function foldForMatching(text: string): string {
  const stripped = text
    .normalize('NFKD')
    .replace(/[\p{Default_Ignorable_Code_Point}\p{M}]/gu, '')
    .normalize('NFC');
  // After the accents are gone, so a "ї" (an "і" with a diaeresis) folds as its bare letter does.
  return foldLookalikes(stripped);
}

/** When an approval request made at `requestedAt` expires. */
export function approvalExpiresAt(requestedAt: Date, config: Config): Date {
  return new Date(requestedAt.getTime() + config.approval.timeout * 1000);
}

export function isApprovalExpired(requestedAt: Date, now: Date, config: Config): boolean {
  return now.getTime() >= approvalExpiresAt(requestedAt, config).getTime();
}
