import { createWriteStream, mkdirSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export type OutputSource = 'stdout' | 'stderr';

/**
 * The per-run log file: appended to, never truncated, so the attempts of one task can share a file. Output is written
 * as it arrives, interleaved in arrival order; a `--- stdout ---` or `--- stderr ---` marker line starts each stretch
 * from one stream, and `===` lines open and close each run.
 *
 * A log that cannot be written never fails the run: the first error is kept in `error` for the caller to report.
 */
export class RunLog {
  error: string | null = null;
  private readonly stream: WriteStream | null;
  private readonly closed: Promise<void>;
  private current: OutputSource | null = null;
  private atLineStart = true;

  constructor(path: string) {
    let stream: WriteStream | null = null;
    try {
      mkdirSync(dirname(path), { recursive: true });
      stream = createWriteStream(path, { flags: 'a' });
    } catch (err) {
      this.error = (err as Error).message;
    }
    this.stream = stream;
    this.closed = stream ? new Promise((resolve) => stream.once('close', () => resolve())) : Promise.resolve();
    stream?.on('error', (err) => {
      this.error ??= err.message;
    });
  }

  /** A line of fte's own, always on a line of its own. */
  line(text: string): void {
    this.write(`${this.atLineStart ? '' : '\n'}${text}\n`);
  }

  output(source: OutputSource, chunk: Buffer): void {
    if (source !== this.current) {
      this.line(`--- ${source} ---`);
      this.current = source;
    }
    this.write(chunk);
  }

  /** Flush and close; resolves once the file is closed (or failed). */
  async close(): Promise<void> {
    if (this.stream && !this.stream.destroyed) this.stream.end();
    await this.closed;
  }

  private write(data: string | Buffer): void {
    if (!this.stream || this.error !== null || data.length === 0) return;
    this.stream.write(data);
    this.atLineStart = typeof data === 'string' ? data.endsWith('\n') : data[data.length - 1] === 0x0a;
  }
}
