import { describe, expect, it } from 'vitest';
import { costBeforeAttempt, iterationGate, runFromIterations } from '../../lib/core/persistence.ts';
import type { IterationRecord } from '../../lib/core/persistence.ts';

describe('the persistence loop rules', () => {
  it('let an iteration run within max_iterations and the per-task budget, with what is left as its cap', () => {
    expect(iterationGate({ iteration: 1, maxIterations: 3, spentUsd: 0, perTaskUsd: undefined })).toEqual({ go: true, remainingUsd: null });
    const gate = iterationGate({ iteration: 3, maxIterations: 3, spentUsd: 0.5, perTaskUsd: 1.2 });
    expect(gate.go && gate.remainingUsd).toBeCloseTo(0.7, 10);
    expect(iterationGate({ iteration: 4, maxIterations: 3, spentUsd: 0, perTaskUsd: 1 })).toMatchObject({
      go: false,
      errorClass: 'iterations_exhausted',
      message: 'no completion promise after 3 iteration(s) (orchestrator.max_iterations)',
    });
    expect(iterationGate({ iteration: 2, maxIterations: 3, spentUsd: 1.2, perTaskUsd: 1.2 })).toMatchObject({
      go: false,
      errorClass: 'budget_exceeded',
      message: 'the task has cost $1.2000, reaching its budget of $1.20 (budget.per_task_usd)',
    });
  });

  it('count every earlier run, plans included, but not the execution of the attempt itself', () => {
    const runs = [
      { attempt: 1, kind: 'plan', costUsd: 0.1 },
      { attempt: 1, kind: 'execute', costUsd: 0.2 },
      { attempt: 2, kind: 'execute', costUsd: 0.4 },
    ] as const;
    expect(costBeforeAttempt(runs, 2)).toBeCloseTo(0.3, 10);
    expect(costBeforeAttempt(runs, 3)).toBeCloseTo(0.7, 10);
  });

  it('rebuild the run of an attempt that died from its iterations, or nothing when it journaled none', () => {
    const it = (attempt: number, iteration: number, costUsd: number, numTurns: number | null): IterationRecord => ({
      attempt, iteration, costUsd, numTurns, startedAt: `2026-01-01T00:0${iteration}:00.000Z`, endedAt: `2026-01-01T00:0${iteration}:30.000Z`,
      durationMs: 30_000, sessionId: `s${attempt}`, ok: true, errorClass: null, promiseSeen: false,
    });
    const iterations = [it(1, 1, 9, 9), it(2, 2, 0.25, 2), it(2, 3, 0.5, null)];
    expect(runFromIterations({ taskId: 't', attempt: 2, kind: 'execute', iterations, ok: false, errorClass: 'crash' })).toEqual({
      taskId: 't', attempt: 2, kind: 'execute', startedAt: new Date('2026-01-01T00:02:00.000Z'), endedAt: new Date('2026-01-01T00:03:30.000Z'),
      ok: false, errorClass: 'crash', exitCode: null, durationMs: 60_000, costUsd: 0.75, numTurns: 2, sessionId: 's2', logPath: null,
    });
    expect(runFromIterations({ taskId: 't', attempt: 2, kind: 'execute', iterations, ok: true, errorClass: 'crash' })?.errorClass).toBeNull();
    expect(runFromIterations({ taskId: 't', attempt: 3, kind: 'execute', iterations, ok: false, errorClass: 'crash' })).toBeNull();
  });
});
