import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { STATE_DIR, VAULT_FOLDERS, type VaultFolder } from '../core/vault-layout.ts';
import { assertValidTaskId } from '../core/task.ts';
import { FileWriteError } from '../core/errors.ts';
import { listNoteIds } from './notes.ts';

export class VaultConflictError extends Error {
  readonly code = 'VAULT_CONFLICT' as const;
}

/**
 * File operations on a vault. Every move is a rename within one file system, so a person browsing the vault (or a
 * sync tool) sees a note in its old folder or its new one, never in both and never half-written; and no operation
 * overwrites a file that is already there — the earlier system lost a finished task that way.
 */
export class Vault {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  get stateDir(): string {
    return join(this.root, STATE_DIR);
  }

  /** Create any missing folder; existing ones and their notes are left alone. */
  ensure(): void {
    for (const folder of VAULT_FOLDERS) mkdirSync(join(this.root, folder), { recursive: true });
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
  }

  folderPath(folder: VaultFolder): string {
    return join(this.root, folder);
  }

  notePath(folder: VaultFolder, id: string): string {
    assertValidTaskId(id);
    return join(this.root, folder, `${id}.md`);
  }

  /** The folders holding `<id>.md` right now (normally one). */
  locate(id: string): VaultFolder[] {
    return VAULT_FOLDERS.filter((folder) => existsSync(this.notePath(folder, id)));
  }

  /** True when `<id>.md` exists in any folder, or an `.error.md` of that id in Failed/. */
  isNameTaken(id: string): boolean {
    return this.locate(id).length > 0 || existsSync(join(this.root, 'Failed', `${id}.error.md`));
  }

  /**
   * Move `<id>.md` from `from` to `to`. Returns false when the note is not in `from` (a person moved it first).
   * Throws VaultConflictError when `to` already holds a note of that name: nothing is overwritten.
   */
  move(id: string, from: VaultFolder, to: VaultFolder): boolean {
    if (from === to) return existsSync(this.notePath(from, id));
    return this.renameNoReplace(this.notePath(from, id), this.notePath(to, id), `${to}/${id}.md`);
  }

  /**
   * Move `<id>.md` from `from` to `to` under the name `<newId>.md` (quarantine and re-admission under a free name).
   * Same guarantees as `move`.
   */
  moveAs(id: string, from: VaultFolder, to: VaultFolder, newId: string): boolean {
    return this.renameNoReplace(this.notePath(from, id), this.notePath(to, newId), `${to}/${newId}.md`);
  }

  /**
   * rename(2) is atomic — the note is in the old folder or the new one, never both, never neither — but it replaces an
   * existing target, and Node has no renameat2(RENAME_NOREPLACE). So the target is checked first: a note a person
   * creates under the same name in the instant between the check and the rename is the one window left, traded for
   * never showing a note in two folders (what link + unlink would do).
   */
  private renameNoReplace(source: string, target: string, shown: string): boolean {
    if (existsSync(target)) throw new VaultConflictError(`${shown} already exists; not overwriting it`);
    try {
      renameSync(source, target);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every note of every folder, read with one directory listing per folder: id → the folders holding it. */
  snapshot(folders: readonly VaultFolder[] = VAULT_FOLDERS): Map<string, VaultFolder[]> {
    const where = new Map<string, VaultFolder[]>();
    for (const folder of folders) {
      for (const id of listNoteIds(this.folderPath(folder))) {
        const list = where.get(id);
        if (list === undefined) where.set(id, [folder]);
        else list.push(folder);
      }
    }
    return where;
  }

  /**
   * When `<id>.md` in `folder` last changed (ctime: written, or moved there), or null when it is not there. The entry
   * itself, not what a symbolic link points to. Unlike mtime, nobody can set it back, so a copy that keeps the original's
   * times still reads as new.
   */
  changedAt(folder: VaultFolder, id: string): Date | null {
    try {
      return lstatSync(this.notePath(folder, id)).ctime;
    } catch {
      return null;
    }
  }

  read(folder: VaultFolder, id: string): string {
    return readFileSync(this.notePath(folder, id), 'utf8');
  }

  /** Replace a note's content atomically (write a temp file beside it, then rename over it). */
  /**
   * Rewrite `<id>.md` in `folder` with `edit(content)`, unless the note leaves that folder meanwhile. The rewrite goes
   * through a temp file and a rename (a crash never leaves half a note), and a rename recreates a note another process
   * just moved away — the orchestrator dispatching an approved task while `fte approve` adds its section left the note
   * in Approved/ and In_Progress/ at once. So the note's inode is checked again right before the rename, and a note
   * that moved is left to whoever moved it. The window left is between that check and the rename (microseconds,
   * against the milliseconds of a read-edit-write). Returns whether the note was rewritten.
   */
  edit(folder: VaultFolder, id: string, edit: (content: string) => string): boolean {
    const target = this.notePath(folder, id);
    let before: { ino: number; dev: number };
    let content: string;
    try {
      before = lstatSync(target);
      content = readFileSync(target, 'utf8');
    } catch {
      return false;
    }
    const temp = join(this.root, folder, `.${id}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      writeFileSync(temp, edit(content), { flag: 'wx' });
      const now = lstatSync(target, { throwIfNoEntry: false });
      if (now === undefined || now.ino !== before.ino || now.dev !== before.dev) {
        rmSync(temp, { force: true });
        return false;
      }
      renameSync(temp, target);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(temp, { force: true });
      throw new FileWriteError(target, err);
    }
  }

  rewrite(folder: VaultFolder, id: string, content: string): void {
    const target = this.notePath(folder, id);
    const temp = join(this.root, folder, `.${id}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      writeFileSync(temp, content, { flag: 'wx' });
      renameSync(temp, target);
    } catch (err) {
      // A full disk fails the write half-way: the note stays as it was, and no half-written temp file is left beside it
      // (unless the name was taken by a file that is not ours).
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(temp, { force: true });
      throw new FileWriteError(target, err);
    }
  }

  /** Create a new note; fails with VaultConflictError rather than replace one. */
  create(folder: VaultFolder, id: string, content: string): void {
    const path = this.notePath(folder, id);
    try {
      writeFileSync(path, content, { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new VaultConflictError(`${folder}/${id}.md already exists; not overwriting it`);
      }
      // A disk that fills part-way leaves a cut-short note that would be admitted as the whole task: take it back
      // ('wx' made it ours). Failing that, the write's own error is the one to report.
      try {
        rmSync(path, { force: true });
      } catch {
        // reported below
      }
      throw new FileWriteError(path, err);
    }
  }

  /** A name not used by any note in the vault: `id`, else `id-2`, `id-3`, … */
  freeName(id: string, taken: (candidate: string) => boolean = () => false): string {
    if (!this.isNameTaken(id) && !taken(id)) return id;
    for (let n = 2; ; n++) {
      const candidate = `${id}-${n}`;
      if (!this.isNameTaken(candidate) && !taken(candidate)) return candidate;
    }
  }

  stopFilePath(name: string): string {
    return join(this.root, name);
  }

  stopFilePresent(name: string): boolean {
    return existsSync(this.stopFilePath(name));
  }
}
