import { createHash } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { admissionOf } from '../core/admission.ts';
import type { Config } from '../core/config.ts';
import { FileWriteError, type TaskParseError } from '../core/errors.ts';
import { upsertSection, withoutSections } from '../core/note-sections.ts';
import { DEFAULT_PARSE_LIMITS, parseTaskNote } from '../core/parse-task.ts';
import { isTerminal, type TaskEvent } from '../core/state-machine.ts';
import type { ApplyOptions, TaskRecord, TaskStore } from '../core/store.ts';
import { TaskNotFoundError } from '../core/store.ts';
import { isValidTaskId, type TaskDoc } from '../core/task.ts';
import { folderOf, type VaultFolder } from '../core/vault-layout.ts';
import { readNote, specialEntry } from './notes.ts';
import { SqliteTaskStore } from './sqlite-store.ts';
import { Vault, VaultConflictError } from './vault.ts';

/** What happened to a note offered for admission. */
export type AdmitResult =
  | { kind: 'admitted'; id: string; record: TaskRecord; renamedFrom: string | null }
  | { kind: 'known'; id: string }
  | { kind: 'quarantined'; id: string; quarantinedAs: string; error: TaskParseError | Error }
  | { kind: 'gone'; id: string }
  /** Written to moments ago, perhaps still being written: not read yet. Ask again at `readyAt` (epoch ms). */
  | { kind: 'settling'; id: string; readyAt: number };

/**
 * How long a note must have been left alone before the engine reads it. A note written in place (an editor, a copy, a
 * watcher that does not write aside and rename) exists, empty or half-written, for a moment before it is complete: read
 * then, it would be quarantined as empty or admitted cut short. Short enough to keep pick-up well within a second.
 */
export const NOTE_SETTLE_MS = 300;

/**
 * The operations on a task that touch both the store and the vault, shared by the engine and every CLI command so that
 * a task moves the same way whoever moves it. The store is the source of truth and is written first; the note follows
 * it into the folder of its new state. A crash between the two leaves a note in an old folder, which the engine's
 * reconciliation moves on — never a state the store did not record.
 */
export class TaskService {
  readonly vault: Vault;

  constructor(
    vaultDir: string,
    readonly store: TaskStore,
    readonly config: Config,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.vault = new Vault(vaultDir);
  }

  /** Open the vault's embedded store, creating the folders and the database if needed. */
  static open(vaultDir: string, config: Config, clock?: () => Date): TaskService {
    const vault = new Vault(vaultDir);
    // The store first: when it cannot be opened (corrupt, read-only, disk full), the vault is left as it was.
    mkdirSync(vault.stateDir, { recursive: true, mode: 0o700 });
    const store = SqliteTaskStore.open(join(vault.stateDir, 'fte.db'));
    try {
      vault.ensure();
    } catch (err) {
      void store.close();
      throw err;
    }
    return new TaskService(vaultDir, store, config, clock);
  }

  get snapshotDir(): string {
    return join(this.vault.stateDir, 'snapshots');
  }

  /** The note as it was when the task was admitted: what was assessed for approval is what runs. */
  snapshotPath(id: string): string {
    return join(this.snapshotDir, `${id}.md`);
  }

  readSnapshot(id: string): string | null {
    try {
      return readFileSync(this.snapshotPath(id), 'utf8');
    } catch {
      return null;
    }
  }

  /**
   * Admit the note `<id>.md` of `folder` (normally Needs_Action). A malformed note is quarantined to Failed/ with a
   * sibling `<id>.error.md`; a name already used by another task is renamed to a free one first.
   */
  async admit(id: string, folder: VaultFolder = 'Needs_Action', options: { settleMs?: number } = {}): Promise<AdmitResult> {
    if (!isValidTaskId(id)) return this.quarantineRawName(id, folder);
    const existing = await this.store.get(id);
    let admittedId = id;
    let renamedFrom: string | null = null;
    if (existing !== null) {
      if (folder === folderOf(existing.state)) return { kind: 'known', id };
      if (!isTerminal(existing.state)) return { kind: 'known', id };
      if (existing.state === 'failed' || existing.state === 'expired') {
        // The person put a dead task back in the queue: that is a retry of the same task.
        const record = await this.requeue(id, 'vault');
        return { kind: 'admitted', id, record, renamedFrom: null };
      }
      if (this.isLeftBehind(existing, folder)) {
        // The task's own note, which a kill between the store's write and the move left here (a cancel or a reject of
        // a queued task): taken for a new note, it would run again as `<id>-2`. The move is finished instead.
        this.placeNote(existing);
        return { kind: 'known', id };
      }
      // A new note that happens to reuse the name of a finished task: a different task, so it gets a free name.
      admittedId = await this.freeId(id);
      if (!this.vault.moveAs(id, folder, folder, admittedId)) return { kind: 'gone', id };
      renamedFrom = id;
    } else if (this.vault.locate(id).some((f) => f !== folder)) {
      // A note of that name already sits in another folder, put there by hand and never admitted (a stray copy in
      // Done/, or one dropped into Approved/): a different note. Under the same name the two would be taken for one
      // task in two folders, and fte's moves would pick up the stray copy; so the new note gets a free name.
      admittedId = await this.freeId(id);
      if (!this.vault.moveAs(id, folder, folder, admittedId)) return { kind: 'gone', id };
      renamedFrom = id;
    }
    let note: ReturnType<typeof readNote>;
    try {
      note = readNote(this.vault.folderPath(folder), admittedId, DEFAULT_PARSE_LIMITS.maxBytes);
    } catch (err) {
      // Unreadable (permissions, an I/O error, a socket): one bad file must not stop the loop; it goes where a person
      // looks. Errors of this process rather than the file (EMFILE, ENOMEM) are not the note's fault and propagate.
      if (!UNREADABLE_CODES.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
      return this.quarantine(admittedId, folder, noteError('unreadable', `the note cannot be read: ${(err as Error).message}`));
    }
    if (note === null) {
      const special = specialEntry(this.vault.folderPath(folder), admittedId);
      if (special === null) return { kind: 'gone', id: admittedId };
      return this.quarantine(admittedId, folder, noteError('not_a_file', `the note is a ${special}, not a regular file; fte reads only regular files`));
    }
    // Real time, not this.clock(): it is compared with the file system's clock. A modification time in the future (a
    // clock skewed elsewhere) does not hold a note back.
    const age = Date.now() - note.mtime.getTime();
    if (options.settleMs !== undefined && age >= 0 && age < options.settleMs) {
      return { kind: 'settling', id: admittedId, readyAt: note.mtime.getTime() + options.settleMs };
    }
    const parsed = parseTaskNote({ id: admittedId, content: note.content, fallbackCreated: note.mtime });
    if (!parsed.ok) return this.quarantine(admittedId, folder, parsed.error);
    const now = this.clock();
    const doc = parsed.task;
    this.writeSnapshot(admittedId, note.content);
    await this.store.create(
      admissionOf(doc, this.config, now, admittedId),
      now,
    );
    const record = await this.mustGet(admittedId);
    if (folder !== folderOf(record.state)) this.placeNote(record);
    return { kind: 'admitted', id: admittedId, record, renamedFrom };
  }

  /** The parsed task as admitted (from the snapshot), with fte's own sections removed from the body. */
  admittedDoc(id: string): TaskDoc | null {
    const snapshot = this.readSnapshot(id);
    if (snapshot === null) return null;
    const parsed = parseTaskNote({ id, content: snapshot, fallbackCreated: this.clock() });
    if (!parsed.ok) return null;
    return { ...parsed.task, body: withoutSections(parsed.task.body) };
  }

  async approve(id: string, by: string): Promise<TaskRecord> {
    const record = await this.applyAndPlace(id, { type: 'approve', by });
    this.editNote(record, (c) => upsertSection(c, 'approval', 'Approved', `Approved by ${by} at ${this.clock().toISOString()}.`));
    return record;
  }

  async reject(id: string, by: string, reason?: string): Promise<TaskRecord> {
    const record = await this.applyAndPlace(id, reason === undefined ? { type: 'reject', by } : { type: 'reject', by, reason });
    this.editNote(record, (c) =>
      upsertSection(c, 'outcome', 'Outcome (fte)', `Rejected by ${by} at ${this.clock().toISOString()}${reason ? `: ${reason}` : ''}.`),
    );
    return record;
  }

  async cancel(id: string, by: string, reason?: string): Promise<TaskRecord> {
    return this.applyAndPlace(id, reason === undefined ? { type: 'cancel', by } : { type: 'cancel', by, reason });
  }

  async requeue(id: string, by: string): Promise<TaskRecord> {
    return this.applyAndPlace(id, { type: 'requeue', by });
  }

  /** Apply `event` in the store, then move the note to the folder of the new state. */
  async applyAndPlace(id: string, event: TaskEvent, options?: ApplyOptions): Promise<TaskRecord> {
    const record = await this.store.apply(id, event, this.clock(), options);
    this.placeNote(record);
    return record;
  }

  /**
   * Move the note to the folder of the record's state, from wherever it is. Returns the folder it is in afterwards,
   * or null when no folder holds it (a person deleted it).
   */
  placeNote(record: TaskRecord): VaultFolder | null {
    const target = folderOf(record.state);
    const found = this.vault.locate(record.id);
    if (found.includes(target)) return target;
    for (const from of found) {
      try {
        if (this.vault.move(record.id, from, target)) return target;
      } catch (err) {
        // Another process (the CLI, a person) moved this very note to the target between the look and the rename.
        if (err instanceof VaultConflictError && !this.vault.locate(record.id).includes(from)) return target;
        throw err;
      }
    }
    return null;
  }

  /** Rewrite the note in the folder of its state (fte's sections); a note missing there, or moved away meanwhile, is left alone. */
  editNote(record: TaskRecord, edit: (content: string) => string): boolean {
    return this.vault.edit(folderOf(record.state), record.id, edit);
  }

  async mustGet(id: string): Promise<TaskRecord> {
    const record = await this.store.get(id);
    if (record === null) throw new TaskNotFoundError(id);
    return record;
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  private async freeId(id: string): Promise<string> {
    for (let n = 2; ; n++) {
      const candidate = `${id}-${n}`;
      if (!this.vault.isNameTaken(candidate) && (await this.store.get(candidate)) === null) return candidate;
    }
  }

  private writeSnapshot(id: string, content: Uint8Array): void {
    try {
      mkdirSync(this.snapshotDir, { recursive: true, mode: 0o700 });
      writeFileSync(this.snapshotPath(id), content);
    } catch (err) {
      throw new FileWriteError(this.snapshotPath(id), err);
    }
  }

  /**
   * Whether `<id>.md` in `folder` is the note `record` finished with, left where it was by a move that never happened:
   * the folder of the record's state holds no note of that name, and this one has not changed (written, edited, moved
   * in) since the task reached its state. A note a person drops in, or moves back, afterwards changes then (a rename
   * sets the file's ctime too), so it stays new work. A file system whose clock runs ahead of this one's makes a left
   * note look new: then it is admitted under a free name, as before.
   */
  private isLeftBehind(record: TaskRecord, folder: VaultFolder): boolean {
    if (this.vault.locate(record.id).includes(folderOf(record.state))) return false;
    const changed = this.vault.changedAt(folder, record.id);
    return changed !== null && changed.getTime() <= record.stateSince.getTime();
  }

  /** Move a malformed note to Failed/ (under a free name) and write `<name>.error.md` beside it saying why. */
  quarantine(id: string, folder: VaultFolder, error: TaskParseError | Error): AdmitResult {
    const failed = this.vault.folderPath('Failed');
    // Any entry counts, a dangling symbolic link included: writing through one would create a file outside the vault.
    const taken = (candidate: string): boolean =>
      entryExists(join(failed, `${candidate}.md`)) || entryExists(join(failed, `${candidate}.error.md`));
    let name = id;
    for (let n = 2; taken(name); n++) name = `${id}-${n}`;
    if (!this.vault.moveAs(id, folder, 'Failed', name)) return { kind: 'gone', id };
    this.writeErrorNote(name, id, folder, error);
    return { kind: 'quarantined', id, quarantinedAs: name, error };
  }

  /** A file whose name cannot be a task id (control characters, too long): renamed to a safe one in Failed/. */
  private quarantineRawName(fileId: string, folder: VaultFolder): AdmitResult {
    const safe = fileId.replace(/[\u0000-\u001f\u007f/\\]/g, '_').replace(/^[.\s]+/, '').trim().slice(0, 120) || 'unnamed';
    const hash = createHash('sha256').update(fileId).digest('hex').slice(0, 8);
    const failed = this.vault.folderPath('Failed');
    const name = this.vault.freeName(`${safe}-${hash}`, (c) => entryExists(join(failed, `${c}.md`)) || entryExists(join(failed, `${c}.error.md`)));
    const source = join(this.vault.folderPath(folder), `${fileId}.md`);
    try {
      linkSync(source, this.vault.notePath('Failed', name));
      unlinkSync(source);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'gone', id: fileId };
      throw err;
    }
    const error = new Error(`the file name ${JSON.stringify(`${fileId}.md`)} cannot be a task id`);
    this.writeErrorNote(name, fileId, folder, error);
    return { kind: 'quarantined', id: fileId, quarantinedAs: name, error };
  }

  private writeErrorNote(name: string, originalId: string, folder: VaultFolder, error: TaskParseError | Error): void {
    const reason = 'reason' in error ? String(error.reason) : 'invalid_name';
    const lines = [
      '---',
      `quarantined: ${this.clock().toISOString()}`,
      `reason: ${reason}`,
      '---',
      `# Why ${name}.md was not queued`,
      '',
      `fte could not read \`${folder}/${JSON.stringify(originalId).slice(1, -1)}.md\` as a task: ${error.message}.`,
      '',
      `Fix the note, then move \`Failed/${name}.md\` back to \`Needs_Action/\` (and delete this file).`,
      '',
    ];
    const errorPath = join(this.vault.folderPath('Failed'), `${name}.error.md`);
    try {
      // 'wx' (O_EXCL): never through a symbolic link, never over a file that appeared since the name was chosen.
      writeFileSync(errorPath, lines.join('\n'), { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new FileWriteError(errorPath, err);
    }
  }
}

const UNREADABLE_CODES = new Set(['EACCES', 'EPERM', 'EIO', 'ENXIO', 'ENODEV', 'EOPNOTSUPP']);

/** A note that could not be admitted for a reason of the file itself rather than its text. */
function noteError(reason: 'unreadable' | 'not_a_file', message: string): Error & { reason: string } {
  return Object.assign(new Error(message), { reason });
}

/** True when `path` names any directory entry, a dangling symbolic link included (existsSync follows links). */
function entryExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
