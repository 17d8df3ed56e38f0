/**
 * `--watch`: redraw a report every few seconds. On a terminal each frame is drawn over the previous one in place —
 * cursor home, every line followed by "clear to end of line", then "clear to end of screen" for what a longer previous
 * frame left below — so nothing blanks between frames (clearing the whole screen each time is what makes `watch`-style
 * tools flicker). Off a terminal (a pipe, a log file) frames are printed one after another, and with `--json` each
 * frame is one line of JSON.
 */

const ESC = '\u001b[';
export const CURSOR_HOME = `${ESC}H`;
export const CLEAR_LINE_END = `${ESC}K`;
export const CLEAR_SCREEN_END = `${ESC}J`;
export const HIDE_CURSOR = `${ESC}?25l`;
export const SHOW_CURSOR = `${ESC}?25h`;

// SGR sequences (colours) take no columns on screen.
const SGR = /\u001b\[[0-9;]*m/g;

/** Columns a line takes, counting code points (wide East Asian characters and emoji count as one: close enough). */
export function visibleWidth(line: string): number {
  return Array.from(line.replace(SGR, '')).length;
}

/**
 * Cut a line to `columns` visible characters, keeping its colour codes intact: a line that wrapped would push every
 * later line down and break drawing in place.
 */
export function fitWidth(line: string, columns: number): string {
  if (visibleWidth(line) <= columns) return line;
  let out = '';
  let used = 0;
  let coloured = false;
  let i = 0;
  while (i < line.length && used < columns - 1) {
    SGR.lastIndex = i;
    const m = SGR.exec(line);
    if (m !== null && m.index === i) {
      out += m[0];
      i += m[0].length;
      coloured = true;
      continue;
    }
    const cp = line.codePointAt(i) as number;
    const ch = String.fromCodePoint(cp);
    out += ch;
    i += ch.length;
    used++;
  }
  // Close any colour left open, so the next line starts plain.
  return coloured ? `${out}…${ESC}0m` : `${out}…`;
}

/** One frame drawn over the previous one, `rows` lines at most (a frame taller than the screen would scroll). */
export function inPlaceFrame(text: string, columns: number, rows: number): string {
  const lines = text.replace(/\n$/, '').split('\n').slice(0, Math.max(1, rows - 1));
  return `${CURSOR_HOME}${lines.map((l) => `${fitWidth(l, columns)}${CLEAR_LINE_END}`).join('\n')}\n${CLEAR_SCREEN_END}`;
}

/** What the loop writes to: a terminal or anything else (process.stdout by default). */
export interface WatchOutput {
  write(text: string): boolean;
  readonly isTTY?: boolean;
  readonly columns?: number;
  readonly rows?: number;
}

export interface WatchOptions {
  intervalMs: number;
  /** Stop after this many frames; unlimited when absent. */
  count?: number;
  json: boolean;
  out?: WatchOutput;
  /** Frame content: text for humans, a value for --json. */
  frame: () => Promise<{ text: string; json: unknown }>;
  /** A frame that failed: shown in its place, and the next refresh tries again. */
  onError: (err: unknown) => { text: string; json: unknown };
}

export async function watchLoop(options: WatchOptions): Promise<void> {
  const out: WatchOutput = options.out ?? process.stdout;
  const tty = out.isTTY === true && !options.json;
  let stopped = false;
  let wake: (() => void) | null = null;
  const stop = (): void => {
    stopped = true;
    wake?.();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // No clear-screen, not even once: the first frame overwrites from the top and clears what is left below it.
  if (tty) out.write(HIDE_CURSOR);
  try {
    for (let n = 0; !stopped; n++) {
      let content: { text: string; json: unknown };
      try {
        content = await options.frame();
      } catch (err) {
        content = options.onError(err);
      }
      if (options.json) out.write(`${JSON.stringify(content.json)}\n`);
      else if (tty) out.write(inPlaceFrame(content.text, positive(out.columns, 80), positive(out.rows, 24)));
      else out.write(`${n > 0 ? '\n' : ''}${content.text.replace(/\n$/, '')}\n`);
      if (options.count !== undefined && n + 1 >= options.count) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, options.intervalMs);
        function done(): void {
          clearTimeout(timer);
          wake = null;
          resolve();
        }
        wake = done;
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (tty) out.write(SHOW_CURSOR);
  }
}

/** A terminal that does not know its size (a pty without a window) reports 0 columns. */
function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && value > 0 ? value : fallback;
}
