import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../lib/core/config.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import { Vault, VaultConflictError } from '../../lib/local/vault.ts';

let root: string;
let vault: Vault;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'fte-vault-'));
  vault = new Vault(root);
  vault.ensure();
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('Vault', () => {
  it('moves a note between folders and never overwrites', () => {
    vault.create('Needs_Action', 'a', 'one');
    vault.create('Done', 'b', 'existing');
    expect(vault.move('a', 'Needs_Action', 'In_Progress')).toBe(true);
    expect(vault.locate('a')).toEqual(['In_Progress']);
    expect(vault.move('a', 'Needs_Action', 'Done')).toBe(false); // not there any more: a person moved it first
    vault.create('In_Progress', 'b', 'mine');
    expect(() => vault.move('b', 'In_Progress', 'Done')).toThrow(VaultConflictError);
    expect(vault.read('Done', 'b')).toBe('existing');
    expect(vault.read('In_Progress', 'b')).toBe('mine');
    expect(() => vault.create('Done', 'b', 'again')).toThrow(VaultConflictError);
  });

  it('refuses ids that would leave the folder', () => {
    expect(() => vault.notePath('Done', '../escape')).toThrow(/path separator/);
    expect(() => vault.notePath('Done', '.hidden')).toThrow(/dot/);
  });

  it('rewrites atomically, leaving no temp file behind', () => {
    vault.create('Needs_Action', 'n', 'old');
    vault.rewrite('Needs_Action', 'n', 'new');
    expect(vault.read('Needs_Action', 'n')).toBe('new');
    expect(readdirSync(join(root, 'Needs_Action'))).toEqual(['n.md']);
  });

  it('edits a note in place, but leaves one that another process moves away mid-edit where it went (no copy left behind)', () => {
    vault.create('Approved', 'n', 'plan');
    expect(vault.edit('Approved', 'n', (c) => `${c}\napproved`)).toBe(true);
    expect(vault.read('Approved', 'n')).toBe('plan\napproved');
    // The orchestrator dispatches the task between this read and the write: the note goes on to In_Progress/.
    const edited = vault.edit('Approved', 'n', (c) => {
      expect(vault.move('n', 'Approved', 'In_Progress')).toBe(true);
      return `${c}\nagain`;
    });
    expect(edited).toBe(false);
    expect(vault.locate('n')).toEqual(['In_Progress']);
    expect(vault.read('In_Progress', 'n')).toBe('plan\napproved');
    expect(readdirSync(join(root, 'Approved'))).toEqual([]);
    expect(vault.edit('Done', 'missing', (c) => c)).toBe(false);
  });

  it('lists where every note is with one listing per folder', () => {
    vault.create('Needs_Action', 'a', '');
    vault.create('Done', 'b', '');
    vault.create('Approved', 'b', '');
    const where = vault.snapshot();
    expect(where.get('a')).toEqual(['Needs_Action']);
    expect(where.get('b')).toEqual(['Approved', 'Done']);
  });
});

describe('TaskService.admit', () => {
  const service = (): TaskService => new TaskService(root, new MemoryTaskStore(), defaultConfig(), () => new Date('2026-11-26T10:00:00Z'));

  it('admits a note with the approval decision and a snapshot of what was assessed', async () => {
    const s = service();
    vault.create('Needs_Action', 'pay', '---\ntitle: Pay ACME\ntype: payment\n---\nbody');
    const result = await s.admit('pay');
    expect(result.kind).toBe('admitted');
    const record = await s.mustGet('pay');
    expect(record).toMatchObject({ state: 'needs_action', approvalRequired: true, type: 'payment' });
    expect(record.created.toISOString()).toBe('2026-11-26T10:00:00.000Z'); // age counts from admission
    expect(readFileSync(s.snapshotPath('pay'), 'utf8')).toContain('Pay ACME');
    expect((await s.admit('pay')).kind).toBe('known');
  });

  it('quarantines a malformed note with a sibling error note, under a free name', async () => {
    const s = service();
    vault.create('Failed', 'bad', 'an older failure with the same name');
    vault.create('Needs_Action', 'bad', '---\ntitle: [unclosed\n---\n');
    const result = await s.admit('bad');
    expect(result).toMatchObject({ kind: 'quarantined', quarantinedAs: 'bad-2' });
    expect(vault.read('Failed', 'bad')).toBe('an older failure with the same name');
    expect(readFileSync(join(root, 'Failed', 'bad-2.error.md'), 'utf8')).toMatch(/reason: bad_yaml/);
    expect(existsSync(join(root, 'Needs_Action', 'bad.md'))).toBe(false);
    expect(await s.store.list()).toEqual([]);
  });

  it('quarantines a file whose name cannot be a task id', async () => {
    const s = service();
    const name = `evil\u0007name${'x'.repeat(200)}`;
    writeFileSync(join(root, 'Needs_Action', `${name}.md`), '---\ntitle: t\n---\n');
    const result = await s.admit(name);
    expect(result.kind).toBe('quarantined');
    const failed = readdirSync(join(root, 'Failed'));
    expect(failed.some((n) => n.endsWith('.error.md'))).toBe(true);
    expect(failed.every((n) => !n.includes('\u0007'))).toBe(true);
    expect(readdirSync(join(root, 'Needs_Action'))).toEqual([]);
  });

  it('finishes the move of a finished task note left behind in Needs_Action/; a note that arrives after the end is new work', async () => {
    // The task ends (here: a cancel while queued) at `endedAt`; the note in Needs_Action/ was last changed before it
    // (left behind by a kill between the store write and the move) or after it (put there by a person since).
    const store = new MemoryTaskStore();
    const s = new TaskService(root, store, defaultConfig(), () => new Date());
    /** Admit `id` and record its cancel at `endedAt` in the store only, as a kill before the move leaves it. */
    const cancelledQueued = async (id: string, endedAt: Date) => {
      vault.create('Needs_Action', id, `---\ntitle: ${id}\n---\nbody`);
      expect((await s.admit(id)).kind).toBe('admitted');
      await store.apply(id, { type: 'cancel', by: 'operator' }, endedAt);
    };

    await cancelledQueued('left', new Date(Date.now() + 60_000));
    expect(await s.admit('left')).toEqual({ kind: 'known', id: 'left' });
    expect(vault.locate('left')).toEqual(['Rejected']);
    expect((await store.list()).map((r) => r.id)).toEqual(['left']);

    await cancelledQueued('again', new Date(Date.now() - 60_000));
    expect(await s.admit('again')).toMatchObject({ kind: 'admitted', id: 'again-2', renamedFrom: 'again' });

    // Nor is a note of that name that arrives while the task's own note already sits where its state says.
    await cancelledQueued('twin', new Date(Date.now() + 60_000));
    vault.move('twin', 'Needs_Action', 'Rejected');
    vault.create('Needs_Action', 'twin', '---\ntitle: twin\n---\nanother');
    expect(await s.admit('twin')).toMatchObject({ kind: 'admitted', id: 'twin-2' });
    expect(vault.read('Rejected', 'twin')).toContain('body');
  });
});
