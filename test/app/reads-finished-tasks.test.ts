import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { storeReads } from '../../lib/api/backend.ts';
import { validateConfig } from '../../lib/core/config.ts';
import type { TaskStore } from '../../lib/core/store.ts';
import { localReadSources } from '../../lib/local/api-backend.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { SqliteTaskStore } from '../../lib/local/sqlite-store.ts';
import { newTask, removeTempDirs, tempDir, writeNote } from '../api/fixtures.ts';

/**
 * The reads list only the open tasks and ask the store for counts and the latest finished ones. These cases pin what
 * that must not change: which finished tasks the dashboard shows when they tie, and which notes count as unadmitted.
 */

const NOW = new Date('2026-03-10T12:00:00.000Z');
const MIN = 60_000;
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);

const stores: ReadonlyArray<{ name: string; open: (dir: string) => TaskStore }> = [
  { name: 'memory', open: () => new MemoryTaskStore() },
  { name: 'sqlite', open: (dir) => SqliteTaskStore.open(join(dir, 'fte.db')) },
];

afterAll(() => removeTempDirs());

describe.each(stores)('reads over finished tasks ($name store)', ({ open }) => {
  it('shows the latest finished tasks, ties broken by id as JavaScript compares strings, not as the store orders bytes', async () => {
    const dir = tempDir();
    const store = open(dir);
    try {
      // U+FF01 sorts after the emoji's surrogate pair in UTF-16, before its bytes in UTF-8: the two orders disagree.
      const ids = ['\uff01-fullwidth', '\u{1f600}-emoji', 'older', 'rejected'];
      for (const id of ids) await store.create(newTask(id, ago(60 * MIN)), ago(60 * MIN));
      for (const id of ids.slice(0, 3)) await store.apply(id, { type: 'execute' }, ago(30 * MIN));
      await store.apply('older', { type: 'succeed' }, ago(20 * MIN));
      await store.apply('\uff01-fullwidth', { type: 'succeed' }, ago(10 * MIN));
      await store.apply('\u{1f600}-emoji', { type: 'cancel', by: 'ops' }, ago(10 * MIN));
      await store.apply('rejected', { type: 'reject', by: 'ops' }, ago(2 * MIN));
      const config = validateConfig({ dashboard: { max_recent_tasks: 2 } });
      const reads = storeReads({ store, config, clock: () => NOW, location: dir });

      const dashboard = await reads.dashboard({ since: ago(24 * 60 * MIN), until: NOW });
      // The cut falls between two tasks that finished at the same millisecond.
      expect(dashboard.recent.map((r) => r.id)).toEqual(['rejected', '\u{1f600}-emoji']);
      expect(dashboard.status.counts).toMatchObject({ done: 2, cancelled: 1, rejected: 1, executing: 0 });
      // Nothing waits, so the idle check reports the time since the last completion: the latest done task (10 min),
      // not the latest finished one (the rejection, 2 min).
      expect(dashboard.health.checks.find((c) => c.name === 'idle')?.value).toBe(600);
    } finally {
      await store.close();
    }
  });

  it('takes a note left in Needs_Action/ under a finished task’s name as known, and a new note as unadmitted', async () => {
    const vault = tempDir();
    mkdirSync(join(vault, 'Needs_Action'), { recursive: true });
    mkdirSync(join(vault, '.fte'), { recursive: true });
    const store = open(join(vault, '.fte'));
    try {
      await store.create(newTask('finished', ago(60 * MIN)), ago(60 * MIN));
      await store.apply('finished', { type: 'execute' }, ago(30 * MIN));
      await store.apply('finished', { type: 'succeed' }, ago(20 * MIN));
      await store.create(newTask('queued', ago(40 * MIN)), ago(40 * MIN));
      writeNote(vault, 'Needs_Action', 'finished', { title: 'A stray copy' });
      writeNote(vault, 'Needs_Action', 'queued', { title: 'Task queued' });
      writeNote(vault, 'Needs_Action', 'fresh', { title: 'Nobody admitted me' });
      const reads = storeReads(localReadSources({ vaultDir: vault, config: validateConfig({}), store, clock: () => NOW }));

      const queue = await reads.queue();
      expect(queue.tasks.map((t) => [t.id, t.state])).toEqual([
        ['queued', 'needs_action'],
        ['fresh', null],
      ]);
      expect(queue.invalid).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
