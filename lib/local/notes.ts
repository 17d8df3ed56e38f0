import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** A note file as read from a vault folder, before parsing. */
export interface NoteFile {
  id: string;
  path: string;
  /** The file's bytes, at most `maxBytes + 1` of them: enough for the parser to tell a file is too large. */
  content: Uint8Array;
  size: number;
  mtime: Date;
}

/** Markdown notes (`*.md`, not dot-files) of one folder, in name order; a missing folder has none. */
export function listNoteIds(folder: string): string[] {
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith('.md') && !n.startsWith('.') && !n.endsWith('.error.md'))
    .map((n) => n.slice(0, -3))
    .sort();
}

/**
 * Read a note without trusting its size: a 10 GB file costs `maxBytes + 1` bytes of memory, not 10 GB. Returns null
 * when the file vanished between listing and reading (a person moved it), which is not an error, and when it is not a
 * regular file (`specialEntry` says what it is). A symbolic link is not followed — it could name any file this process
 * may read, outside the vault — and a named pipe is not waited on: opening one for reading would block the whole loop
 * until somebody wrote to it.
 */
export function readNote(folder: string, id: string, maxBytes: number): NoteFile | null {
  const path = join(folder, `${id}.md`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ELOOP (EMLINK on some BSDs): the name is a symbolic link, refused by O_NOFOLLOW.
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'EMLINK') return null;
    throw err;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return null;
    const want = Math.min(stat.size, maxBytes + 1);
    const buffer = new Uint8Array(want);
    let read = 0;
    while (read < want) {
      const n = readSync(fd, buffer, read, want - read, read);
      if (n === 0) break;
      read += n;
    }
    return { id, path, content: buffer.subarray(0, read), size: stat.size, mtime: stat.mtime };
  } finally {
    closeSync(fd);
  }
}

/**
 * What `<id>.md` in `folder` is when it is not a regular file: 'symbolic link', 'directory', 'named pipe', 'socket',
 * 'device'; null when it is a regular file or gone.
 */
export function specialEntry(folder: string, id: string): string | null {
  let stat;
  try {
    stat = lstatSync(join(folder, `${id}.md`));
  } catch {
    return null;
  }
  if (stat.isFile()) return null;
  if (stat.isSymbolicLink()) return 'symbolic link';
  if (stat.isDirectory()) return 'directory';
  if (stat.isFIFO()) return 'named pipe';
  if (stat.isSocket()) return 'socket';
  return 'device';
}
