import type { TaskState } from './state-machine.ts';

/**
 * The vault is the human interface: each task note sits in exactly one folder, and the folder says the task's state
 * to a person browsing it in Obsidian. A person approves or rejects by moving a note out of `Pending_Approval/`.
 */
export const VAULT_FOLDERS = [
  'Needs_Action',
  'In_Progress',
  'Pending_Approval',
  'Approved',
  'Rejected',
  'Done',
  'Failed',
] as const;
export type VaultFolder = (typeof VAULT_FOLDERS)[number];

/** fte's own state lives here, beside the folders a person reads. */
export const STATE_DIR = '.fte';

const FOLDER_OF: Readonly<Record<TaskState, VaultFolder>> = {
  needs_action: 'Needs_Action',
  planning: 'In_Progress',
  pending_approval: 'Pending_Approval',
  approved: 'Approved',
  executing: 'In_Progress',
  // A task between attempts is still being worked on; moving it back to the queue would read as "not started".
  retry_wait: 'In_Progress',
  done: 'Done',
  // Not done by decision — a human's no, nobody's answer in time, or a withdrawal: all read as "not approved".
  rejected: 'Rejected',
  expired: 'Rejected',
  cancelled: 'Rejected',
  failed: 'Failed',
};

export function folderOf(state: TaskState): VaultFolder {
  return FOLDER_OF[state];
}
