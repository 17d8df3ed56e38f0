import { InvalidTaskIdError } from './errors.ts';

/** Urgency on the seed's 1–5 scale: 5 critical · 4 high · 3 normal · 2 low · 1 whenever. */
export type Level = 1 | 2 | 3 | 4 | 5;

export const URGENCY_NAMES = ['whenever', 'low', 'normal', 'high', 'critical'] as const;
export type UrgencyName = (typeof URGENCY_NAMES)[number];

export function urgencyLevel(name: UrgencyName): Level {
  return (URGENCY_NAMES.indexOf(name) + 1) as Level;
}

/** Where a resolved field came from: frontmatter wins; body signals fill silence; else a default. */
export type FieldSource = 'frontmatter' | 'body' | 'default';

export type ApprovalSetting = 'required' | 'auto';

/** A task note as parsed from its markdown file: what the human (or a watcher) asked for. */
export interface TaskDoc {
  /** The file name without `.md`. */
  id: string;
  title: string;
  /** Markdown body after the frontmatter. */
  body: string;
  urgency: Level;
  urgencySource: FieldSource;
  /** Absolute deadline, or null when neither frontmatter nor body names one. */
  deadline: Date | null;
  deadlineSource: FieldSource;
  /** Lower-cased e-mail address of the sender, or null. */
  sender: string | null;
  senderSource: FieldSource;
  /** Task type (email, payment, code, research, …); `general` when silent. */
  type: string;
  /** The note's own approval setting; policy may still require approval when this says `auto`. */
  approval: ApprovalSetting | null;
  /** When the work was asked for; the age boost counts from here. */
  created: Date;
  /** Every frontmatter key as written, for fields fte does not interpret. */
  frontmatter: Readonly<Record<string, unknown>>;
}

const MAX_ID_LENGTH = 200;
// Control characters would corrupt table output and log lines; path separators would escape the vault folder.
const FORBIDDEN_ID_CHARS = /[\u0000-\u001f\u007f/\\]/;

/**
 * A task id is a file name without `.md`, so it must be safe as one on every platform the vault syncs to, and it must
 * never name a path outside its folder.
 */
export function assertValidTaskId(id: string): void {
  if (id.length === 0) throw new InvalidTaskIdError(id, 'it is empty');
  if (id.length > MAX_ID_LENGTH) throw new InvalidTaskIdError(id, `it is longer than ${MAX_ID_LENGTH} characters`);
  if (FORBIDDEN_ID_CHARS.test(id)) throw new InvalidTaskIdError(id, 'it contains a path separator or control character');
  if (id.startsWith('.')) throw new InvalidTaskIdError(id, 'it starts with a dot');
  if (id.trim() !== id) throw new InvalidTaskIdError(id, 'it starts or ends with whitespace');
}

export function isValidTaskId(id: string): boolean {
  try {
    assertValidTaskId(id);
    return true;
  } catch {
    return false;
  }
}
