import { describe, expect, it } from 'vitest';
import { addEvent, emptyTotals, HistoryTotalsCache } from '../../lib/app/prometheus-metrics.ts';
import type { HistoryColumns } from '../../lib/core/history-columns.ts';
import type { NewTask, TaskStore } from '../../lib/core/store.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';

/**
 * The Prometheus counter cache folds settled history into a running sum once. Scrapes that arrive together — the first
 * scrape of two Prometheus servers after a restart — must each see every event once, not the settled range twice.
 */

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (minutes: number): Date => new Date(T0 + minutes * 60_000);

function newTask(id: string): NewTask {
  return { id, title: id, type: 'code', sender: null, urgency: 3, deadline: null, created: at(0), approvalRequired: false, approvalReasons: [] };
}

/** A store whose column reads all wait for `release`, so that concurrent scrapes overlap in their reads. */
function gated(store: TaskStore): { store: TaskStore; release: () => void; reads: () => number } {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let reads = 0;
  const wrapped = Object.create(store) as TaskStore;
  wrapped.historyColumns = async (range): Promise<HistoryColumns> => {
    reads++;
    await gate;
    return store.historyColumns(range);
  };
  return { store: wrapped, release: open, reads: () => reads };
}

describe('HistoryTotalsCache', () => {
  it('counts every event once when scrapes arrive together', async () => {
    const memory = new MemoryTaskStore();
    for (let i = 0; i < 6; i++) {
      const id = `t${i}`;
      await memory.create(newTask(id), at(i));
      await memory.apply(id, { type: 'execute' }, at(i));
      await memory.apply(id, i % 2 === 0 ? { type: 'succeed' } : { type: 'interrupt', reason: 'stop --now' }, at(i + 1), {
        run: {
          taskId: id, attempt: 1, kind: 'execute', startedAt: at(i), endedAt: at(i + 1), ok: i % 2 === 0, errorClass: null,
          exitCode: 0, durationMs: 1_000 * (i + 1), costUsd: 0.25, numTurns: 1, sessionId: null, logPath: null,
        },
      });
    }
    const expected = emptyTotals();
    for (const e of await memory.history({ since: new Date(0), until: at(60) })) addEvent(expected, e);

    const cache = new HistoryTotalsCache(60_000);
    const { store, release, reads } = gated(memory);
    const scrapes = [cache.read(store, at(30)), cache.read(store, at(30)), cache.read(store, at(31))];
    // Let every scrape get as far as it can before any read returns.
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(reads()).toBe(1);
    release();
    for (const totals of await Promise.all(scrapes)) expect(totals).toEqual(expected);
    expect(await cache.read(memory, at(40))).toEqual(expected);
    expect([expected.started, expected.succeeded, expected.durations.interrupted.count, expected.costUsd]).toEqual([6, 3, 3, 1.5]);
  });
});
