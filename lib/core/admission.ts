import { approvalDecision } from './approval.ts';
import type { Config } from './config.ts';
import type { NewTask } from './store.ts';
import type { TaskDoc } from './task.ts';

/**
 * What a runtime writes when it admits a parsed task: the approval policy's verdict, and the admission time as the
 * task's `created`. The age boost counts from admission, not from the note's own date: a note can claim any `created`
 * (an e-mail's Date header is the sender's to set), and a back-dated one would jump the queue — the caveat of the
 * starvation bound in lib/core/scoring.ts. Measured from admission, the bound holds for every task, in both runtimes.
 */
export function admissionOf(doc: TaskDoc, config: Config, now: Date, id: string = doc.id): NewTask {
  const approval = approvalDecision(doc, config);
  return {
    id,
    title: doc.title,
    type: doc.type,
    sender: doc.sender,
    urgency: doc.urgency,
    deadline: doc.deadline,
    created: now,
    approvalRequired: approval.required,
    approvalReasons: approval.reasons,
  };
}
