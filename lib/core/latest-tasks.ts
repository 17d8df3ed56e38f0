import { TASK_STATES, type TaskState } from './state-machine.ts';

/**
 * The selection rule of `TaskStore.listLatest` and the shape of `TaskStore.stateCounts`, once for every adapter: each
 * adapter finds candidates its own way (an index range, a map, a projected Query), and they agree on what comes out.
 */

interface Entered {
  readonly id: string;
  readonly stateSince: Date;
}

/** Ids in the order SQLite gives TEXT (UTF-8 bytes), which `list` also uses; `<` on UTF-16 strings differs. */
function compareBinary(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Newest `stateSince` first, then id. */
export function byLatestThenId(a: Entered, b: Entered): number {
  return b.stateSince.getTime() - a.stateSince.getTime() || compareBinary(a.id, b.id);
}

/**
 * The first `limit` of `candidates` by `byLatestThenId`, and every other one that entered at the same millisecond as
 * the last of those. `candidates` must hold at least that much of the whole set (every adapter passes, per state, its
 * own `limit` latest with their ties, which is enough: a task among the overall latest is among its state's latest).
 */
export function latestWithTies<T extends Entered>(candidates: readonly T[], limit: number): T[] {
  assertLimit(limit);
  if (limit === 0) return [];
  const sorted = [...candidates].sort(byLatestThenId);
  if (sorted.length <= limit) return sorted;
  const cut = (sorted[limit - 1] as T).stateSince.getTime();
  let end = limit;
  while (end < sorted.length && (sorted[end] as T).stateSince.getTime() === cut) end++;
  return sorted.slice(0, end);
}

/** A limit is a count: anything else is a caller's bug, refused before any adapter sends it to its database. */
export function assertLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`a limit must be a whole number ≥ 0, not ${limit}`);
}

/** Every state at 0, for an adapter to add its counts to. */
export function zeroCounts(): Record<TaskState, number> {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
}
