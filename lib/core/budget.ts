import type { Config } from './config.ts';
import type { HistoryEvent } from './history.ts';

export const BUDGET_WINDOW_MS = 24 * 3_600_000;

export interface BudgetState {
  /** Spend in the rolling window, USD. */
  spentUsd: number;
  spentByType: Record<string, number>;
  dailyUsd: number | null;
  /** Why no task may start, or null. */
  exhausted: string | null;
  /** Task types that may not start, with the reason. */
  exhaustedTypes: Record<string, string>;
  /** When the oldest spend in the window leaves it (the earliest moment the budget can free up), epoch ms. */
  freesAt: number | null;
}

/**
 * Spend control over a rolling 24 h window, from the cost the history records for each finished run plus what runs
 * still in progress have spent so far (`inFlightByType`). Pure, so the local engine, status, health and the cloud
 * scheduler all draw the line in the same place.
 */
export function budgetState(
  events: Iterable<HistoryEvent>,
  config: Pick<Config, 'budget'>,
  now: Date,
  inFlightByType: Readonly<Record<string, number>> = {},
): BudgetState {
  const since = now.getTime() - BUDGET_WINDOW_MS;
  const byType: Record<string, number> = {};
  let total = 0;
  let oldest: number | null = null;
  for (const e of events) {
    if (e.at < since || e.at > now.getTime() || !e.costUsd) continue;
    total += e.costUsd;
    byType[e.taskType] = (byType[e.taskType] ?? 0) + e.costUsd;
    if (oldest === null || e.at < oldest) oldest = e.at;
  }
  for (const [type, usd] of Object.entries(inFlightByType)) {
    total += usd;
    byType[type] = (byType[type] ?? 0) + usd;
  }
  const daily = config.budget.daily_usd ?? null;
  const exhausted =
    daily !== null && total >= daily
      ? `daily budget exhausted: $${total.toFixed(2)} spent in the last 24 h of $${daily.toFixed(2)} (budget.daily_usd)`
      : null;
  const exhaustedTypes: Record<string, string> = {};
  for (const [type, limit] of Object.entries(config.budget.per_type_daily_usd ?? {})) {
    const spent = byType[type] ?? 0;
    if (spent >= limit) {
      exhaustedTypes[type] = `daily budget of type ${type} exhausted: $${spent.toFixed(2)} of $${limit.toFixed(2)} (budget.per_type_daily_usd.${type})`;
    }
  }
  return {
    spentUsd: total,
    spentByType: byType,
    dailyUsd: daily,
    exhausted,
    exhaustedTypes,
    freesAt: oldest === null ? null : oldest + BUDGET_WINDOW_MS,
  };
}
