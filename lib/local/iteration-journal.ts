import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FileWriteError } from '../core/errors.ts';
import type { Checkpoint, IterationRecord } from '../core/persistence.ts';

// The records are the core's (the cloud runner journals the same shapes in DynamoDB); re-exported for this module's users.
export type { Checkpoint, IterationRecord } from '../core/persistence.ts';

/**
 * The persistence loop's journal: every iteration appended (and fsynced) as one JSON line per task, plus a checkpoint
 * file replaced atomically after each unfinished iteration. Kept beside the store rather than in it because an iteration
 * is not a state transition, and because both must survive kill -9 between any two lines of the loop.
 */
export class IterationJournal {
  constructor(private readonly dir: string) {}

  private file(taskId: string, ext: string): string {
    return join(this.dir, `${taskId}.${ext}`);
  }

  append(taskId: string, record: IterationRecord): void {
    const path = this.file(taskId, 'jsonl');
    try {
      mkdirSync(this.dir, { recursive: true });
      const fd = openSync(path, 'a');
      try {
        writeSync(fd, `${JSON.stringify(record)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      throw new FileWriteError(path, err);
    }
  }

  list(taskId: string): IterationRecord[] {
    let text: string;
    try {
      text = readFileSync(this.file(taskId, 'jsonl'), 'utf8');
    } catch {
      return [];
    }
    const out: IterationRecord[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as IterationRecord);
      } catch {
        // A line torn by a crash mid-write; the records before it stand.
      }
    }
    return out;
  }

  checkpoint(taskId: string): Checkpoint | null {
    try {
      const value = JSON.parse(readFileSync(this.file(taskId, 'checkpoint.json'), 'utf8')) as Checkpoint;
      return typeof value.sessionId === 'string' && Number.isInteger(value.iteration) ? value : null;
    } catch {
      return null;
    }
  }

  saveCheckpoint(taskId: string, checkpoint: Checkpoint): void {
    const path = this.file(taskId, 'checkpoint.json');
    const temp = this.file(taskId, 'checkpoint.tmp');
    try {
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(temp, JSON.stringify(checkpoint));
      const fd = openSync(temp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, path);
    } catch (err) {
      throw new FileWriteError(path, err);
    }
  }

  clearCheckpoint(taskId: string): void {
    rmSync(this.file(taskId, 'checkpoint.json'), { force: true });
  }

  /** What the iterations of one attempt cost together. */
  attemptCost(taskId: string, attempt: number): number {
    return this.list(taskId)
      .filter((r) => r.attempt === attempt)
      .reduce((sum, r) => sum + r.costUsd, 0);
  }
}
