import { describe, expect, it } from 'vitest';
import {
  InvalidTransitionError,
  TASK_EVENT_TYPES,
  TASK_STATES,
  TERMINAL_STATES,
  TRANSITIONS,
  allowedEvents,
  newTaskStatus,
  transition,
  type TaskEvent,
  type TaskState,
  type TaskStatus,
} from '../../lib/core/state-machine.ts';

const t0 = new Date('2026-11-25T10:00:00Z');
const later = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

function status(state: TaskState, overrides: Partial<TaskStatus> = {}): TaskStatus {
  return { ...newTaskStatus('task-1', false, t0), state, ...overrides };
}

const anError = { class: 'crash', message: 'exit 1' } as const;

/** One sample event of each type, with whatever payload it needs. */
const SAMPLE_EVENTS: Record<TaskEvent['type'], TaskEvent> = {
  plan: { type: 'plan' },
  execute: { type: 'execute' },
  plan_ready: { type: 'plan_ready' },
  approve: { type: 'approve', by: 'alice' },
  reject: { type: 'reject', by: 'alice', reason: 'no' },
  expire: { type: 'expire' },
  succeed: { type: 'succeed' },
  fail: { type: 'fail', error: anError, retryAt: later(1) },
  dead_letter: { type: 'dead_letter', error: anError },
  retry: { type: 'retry' },
  interrupt: { type: 'interrupt', reason: 'stop --now' },
  cancel: { type: 'cancel', by: 'alice' },
  requeue: { type: 'requeue', by: 'alice' },
};

// The expected table, written out by hand: a change to TRANSITIONS that is not mirrored here fails this test.
const EXPECTED: Array<[TaskState, TaskEvent['type'], TaskState, string?]> = [
  ['needs_action', 'plan', 'planning', 'approval_required'],
  ['needs_action', 'execute', 'executing', 'approval_not_required'],
  ['planning', 'plan_ready', 'pending_approval'],
  ['pending_approval', 'approve', 'approved'],
  ['pending_approval', 'expire', 'expired'],
  ['approved', 'execute', 'executing'],
  ['executing', 'succeed', 'done'],
  ['planning', 'fail', 'retry_wait'],
  ['executing', 'fail', 'retry_wait'],
  ['planning', 'dead_letter', 'failed'],
  ['executing', 'dead_letter', 'failed'],
  ['retry_wait', 'retry', 'needs_action', 'not_approved'],
  ['retry_wait', 'retry', 'approved', 'approved'],
  ['planning', 'interrupt', 'needs_action'],
  ['executing', 'interrupt', 'needs_action', 'not_approved'],
  ['executing', 'interrupt', 'approved', 'approved'],
  ['failed', 'requeue', 'needs_action'],
  ['expired', 'requeue', 'needs_action'],
  ...(['needs_action', 'planning', 'pending_approval', 'approved', 'executing', 'retry_wait'] as const).flatMap(
    (s): Array<[TaskState, TaskEvent['type'], TaskState]> => [
      [s, 'reject', 'rejected'],
      [s, 'cancel', 'cancelled'],
    ],
  ),
];

describe('the transition table', () => {
  it('is exactly the documented set of transitions', () => {
    const actual = TRANSITIONS.map((t) => [t.from, t.event, t.to, t.guard].filter((x) => x !== undefined).join(' '));
    const expected = EXPECTED.map((row) => row.filter((x) => x !== undefined).join(' '));
    expect([...actual].sort()).toEqual([...expected].sort());
  });

  it('has exactly the terminal states done, rejected, expired, failed, cancelled', () => {
    expect([...TERMINAL_STATES].sort()).toEqual(['cancelled', 'done', 'expired', 'failed', 'rejected']);
  });

  it('lets nothing but an operator requeue leave a terminal state', () => {
    const leaving = TRANSITIONS.filter((t) => TERMINAL_STATES.has(t.from));
    expect(leaving.every((t) => t.event === 'requeue' && t.actor === 'human')).toBe(true);
    expect(leaving.map((t) => t.from).sort()).toEqual(['expired', 'failed']);
  });

  it('reaches every state from needs_action', () => {
    const seen = new Set<TaskState>(['needs_action']);
    let grew = true;
    while (grew) {
      grew = false;
      for (const t of TRANSITIONS) {
        if (seen.has(t.from) && !seen.has(t.to)) {
          seen.add(t.to);
          grew = true;
        }
      }
    }
    expect([...seen].sort()).toEqual([...TASK_STATES].sort());
  });

  it('is deterministic: guards of transitions sharing a source and event are mutually exclusive', () => {
    const opposite: Record<string, string> = {
      approval_required: 'approval_not_required',
      approval_not_required: 'approval_required',
      approved: 'not_approved',
      not_approved: 'approved',
    };
    for (const s of TASK_STATES) {
      for (const e of TASK_EVENT_TYPES) {
        const defs = TRANSITIONS.filter((t) => t.from === s && t.event === e);
        if (defs.length < 2) continue;
        expect(defs).toHaveLength(2);
        expect(defs[0]?.guard).toBeDefined();
        expect(opposite[defs[0]?.guard as string]).toBe(defs[1]?.guard);
      }
    }
  });

  it('opens executing to a task that needs approval only through approved, which only a human reaches', () => {
    const intoApproved = TRANSITIONS.filter((t) => t.to === 'approved');
    for (const t of intoApproved) {
      if (t.from === 'pending_approval') expect(t.actor).toBe('human');
      else expect(t.guard).toBe('approved');
    }
    const intoExecuting = TRANSITIONS.filter((t) => t.to === 'executing');
    expect(intoExecuting.map((t) => `${t.from}:${t.guard ?? ''}`).sort()).toEqual([
      'approved:',
      'needs_action:approval_not_required',
    ]);
  });
});

describe('transition()', () => {
  it('applies every allowed transition and records it', () => {
    for (const [from, event, to, guard] of EXPECTED) {
      const task = status(from, {
        approvalRequired: guard === 'approval_required',
        approval: guard === 'approved' ? { by: 'bob', at: t0 } : null,
      });
      const { status: next, record } = transition(task, SAMPLE_EVENTS[event], later(5));
      expect(next.state, `${from} --${event}--> ${to}`).toBe(to);
      expect(next.stateSince).toEqual(later(5));
      expect(record).toEqual({ taskId: 'task-1', from, to, event, at: later(5) });
    }
  });

  it('rejects every (state, event) pair the table does not list, with a typed error', () => {
    let rejected = 0;
    for (const s of TASK_STATES) {
      for (const e of TASK_EVENT_TYPES) {
        if (TRANSITIONS.some((t) => t.from === s && t.event === e)) continue;
        const task = status(s);
        let error: unknown;
        try {
          transition(task, SAMPLE_EVENTS[e], later(5));
        } catch (err) {
          error = err;
        }
        expect(error, `${s} --${e}-->`).toBeInstanceOf(InvalidTransitionError);
        expect((error as InvalidTransitionError).code).toBe('INVALID_TRANSITION');
        expect((error as InvalidTransitionError).rejection).toBe('no_such_transition');
        rejected++;
      }
    }
    expect(rejected).toBe(TASK_STATES.length * TASK_EVENT_TYPES.length - new Set(EXPECTED.map((r) => `${r[0]} ${r[1]}`)).size);
  });

  it('refuses to execute a task that needs approval straight from the queue', () => {
    const task = status('needs_action', { approvalRequired: true });
    expect(() => transition(task, { type: 'execute' }, t0)).toThrowError(/requires approval_not_required/);
    expect(transition(task, { type: 'plan' }, t0).status.state).toBe('planning');
  });

  it('refuses to plan a task that needs no approval', () => {
    const task = status('needs_action', { approvalRequired: false });
    expect(() => transition(task, { type: 'plan' }, t0)).toThrowError(InvalidTransitionError);
  });

  it('carries a task that needs approval through plan, approval and execution', () => {
    let task = newTaskStatus('pay-invoice', true, t0);
    task = transition(task, { type: 'plan' }, later(1)).status;
    expect(task.attempts).toBe(1);
    task = transition(task, { type: 'plan_ready' }, later(2)).status;
    task = transition(task, { type: 'approve', by: 'alice' }, later(3)).status;
    expect(task.approval).toEqual({ by: 'alice', at: later(3) });
    task = transition(task, { type: 'execute' }, later(4)).status;
    expect(task.attempts).toBe(2);
    task = transition(task, { type: 'succeed' }, later(5)).status;
    expect(task.state).toBe('done');
  });

  it('keeps the approval across a retry and an interrupt, and drops it on requeue', () => {
    const approved = status('executing', { approvalRequired: true, approval: { by: 'a', at: t0 }, attempts: 2 });
    const waiting = transition(approved, { type: 'fail', error: anError, retryAt: later(10) }, later(1)).status;
    expect(waiting.state).toBe('retry_wait');
    expect(waiting.lastError).toEqual(anError);
    expect(transition(waiting, { type: 'retry' }, later(10)).status.state).toBe('approved');
    expect(transition(approved, { type: 'interrupt', reason: 'stop' }, later(1)).status.state).toBe('approved');

    const failed = transition(approved, { type: 'dead_letter', error: anError }, later(1)).status;
    const revived = transition(failed, { type: 'requeue', by: 'ops' }, later(2)).status;
    expect(revived).toMatchObject({ state: 'needs_action', approval: null, attempts: 0, lastError: null });
  });

  it('refuses a retry before the backoff has elapsed', () => {
    const waiting = status('retry_wait', { retryAt: later(10) });
    const attempt = () => transition(waiting, { type: 'retry' }, later(9));
    expect(attempt).toThrowError(/backoff runs until 2026-11-25T10:10:00.000Z/);
    try {
      attempt();
    } catch (err) {
      expect((err as InvalidTransitionError).rejection).toBe('too_early');
    }
    expect(transition(waiting, { type: 'retry' }, later(10)).status.state).toBe('needs_action');
  });

  it('records who rejected and why', () => {
    const next = transition(status('pending_approval'), { type: 'reject', by: 'cfo', reason: 'wrong amount' }, t0);
    expect(next.status).toMatchObject({ state: 'rejected', reason: 'wrong amount' });
  });

  it('does not mutate its input', () => {
    const task = status('needs_action');
    const copy = structuredClone(task);
    transition(task, { type: 'execute' }, later(1));
    expect(task).toEqual(copy);
  });

  it('lists allowed events with guards applied', () => {
    expect(allowedEvents(status('needs_action', { approvalRequired: true })).sort()).toEqual(['cancel', 'plan', 'reject']);
    expect(allowedEvents(status('needs_action')).sort()).toEqual(['cancel', 'execute', 'reject']);
    expect(allowedEvents(status('done'))).toEqual([]);
  });
});
