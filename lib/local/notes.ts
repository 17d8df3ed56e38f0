import { closeSync, fstatSync, openSync, readSync, readdirSync } from 'node:fs';
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
 * when the file vanished between listing and reading (a person moved it), which is not an error.
 */
export function readNote(folder: string, id: string, maxBytes: number): NoteFile | null {
  const path = join(folder, `${id}.md`);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
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
