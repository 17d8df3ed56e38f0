import { describe, expect, it } from 'vitest';
import { budgetState } from '../../lib/core/budget.ts';
import { validateConfig } from '../../lib/core/config.ts';
import type { HistoryEvent } from '../../lib/core/history.ts';

const now = new Date('2026-11-26T12:00:00Z');
const H = 3_600_000;
const spend = (hoursAgo: number, costUsd: number, taskType = 'email'): HistoryEvent => ({
  taskId: `t${hoursAgo}`,
  taskType,
  from: 'executing',
  to: 'done',
  event: 'succeed',
  at: now.getTime() - hoursAgo * H,
  attempt: 1,
  costUsd,
  durationMs: 1000,
});

describe('budgetState', () => {
  it('sums the rolling 24 h window only', () => {
    const s = budgetState([spend(1, 2), spend(23.9, 3), spend(24.1, 100), spend(-1, 50)], validateConfig({}), now);
    expect(s.spentUsd).toBe(5);
    expect(s.exhausted).toBeNull();
    expect(s.freesAt).toBe(now.getTime() - 23.9 * H + 24 * H);
  });

  it('is exhausted at the daily budget, counting what running loops have spent', () => {
    const config = validateConfig({ budget: { daily_usd: 10 } });
    expect(budgetState([spend(1, 9.99)], config, now).exhausted).toBeNull();
    expect(budgetState([spend(1, 10)], config, now).exhausted).toMatch(/\$10\.00 spent .* of \$10\.00/);
    expect(budgetState([spend(1, 9)], config, now, { email: 1 }).exhausted).not.toBeNull();
  });

  it('holds back only the task types whose own daily budget is spent', () => {
    const config = validateConfig({ budget: { per_type_daily_usd: { research: 1, code: 5 } } });
    const s = budgetState([spend(1, 1, 'research'), spend(2, 4, 'code'), spend(3, 50, 'email')], config, now);
    expect(Object.keys(s.exhaustedTypes)).toEqual(['research']);
    expect(s.exhausted).toBeNull();
    expect(s.spentByType).toEqual({ research: 1, code: 4, email: 50 });
  });
});
