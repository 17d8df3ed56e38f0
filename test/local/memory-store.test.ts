import { describe, expect, it } from 'vitest';
import { StoreError } from '../../lib/core/store-error.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { describeTaskStoreContract } from '../contract/task-store.contract.ts';

describeTaskStoreContract('memory', async () => {
  const store = new MemoryTaskStore();
  return { store, cleanup: () => store.close() };
});

describe('MemoryTaskStore', () => {
  const now = new Date('2026-11-25T10:00:00.000Z');
  const task = {
    id: 't1', title: 'T', type: 'email', sender: null, urgency: 3, deadline: null, created: now,
    approvalRequired: false, approvalReasons: [],
  } as const;

  it('hands out copies: mutating a returned record changes nothing stored', async () => {
    const store = new MemoryTaskStore();
    await store.create(task, now);
    const record = await store.get('t1');
    record?.stateSince.setTime(0);
    expect((await store.get('t1'))?.stateSince).toEqual(now);
  });

  it('refuses every call once closed', async () => {
    const store = new MemoryTaskStore();
    await store.close();
    await expect(store.get('t1')).rejects.toBeInstanceOf(StoreError);
    await expect(store.create(task, now)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});
