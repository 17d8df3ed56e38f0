import { describe, expect, it } from 'vitest';
import { CLEAR_LINE_END, CLEAR_SCREEN_END, CURSOR_HOME, HIDE_CURSOR, SHOW_CURSOR, fitWidth, inPlaceFrame, visibleWidth, watchLoop } from '../../lib/cli/watch.ts';
import { sparkline, table } from '../../lib/cli/format.ts';

describe('drawing in place', () => {
  it('homes the cursor, clears each line’s end and what is left below — never the whole screen', () => {
    const frame = inPlaceFrame('one\ntwo\n', 80, 24);
    expect(frame).toBe(`${CURSOR_HOME}one${CLEAR_LINE_END}\ntwo${CLEAR_LINE_END}\n${CLEAR_SCREEN_END}`);
    expect(frame).not.toContain('\u001b[2J');
  });

  it('keeps a frame within the screen: lines cut to its width, frames to its height', () => {
    const frame = inPlaceFrame(Array.from({ length: 50 }, (_v, i) => `line ${i} ${'x'.repeat(100)}`).join('\n'), 40, 10);
    const lines = frame.split('\n').slice(0, -1);
    expect(lines).toHaveLength(9);
    for (const line of lines) expect(visibleWidth(line.replace(CURSOR_HOME, '').replace(CLEAR_LINE_END, ''))).toBeLessThanOrEqual(40);
  });

  it('cuts by visible characters, keeps colour codes whole and closes them', () => {
    const red = '\u001b[31mabcdefghij\u001b[39m';
    expect(visibleWidth(red)).toBe(10);
    expect(fitWidth(red, 20)).toBe(red);
    const cut = fitWidth(red, 5);
    expect(cut).toBe('\u001b[31mabcd…\u001b[0m');
    expect(visibleWidth(cut)).toBe(5);
    expect(fitWidth('ab😀cdef', 4)).toBe('ab😀…');
  });
});

describe('watchLoop', () => {
  function terminal() {
    const writes: string[] = [];
    return { writes, out: { isTTY: true, columns: 60, rows: 20, write: (t: string) => writes.push(t) > 0 } };
  }

  it('on a terminal: hides the cursor, draws each frame in place, shows the cursor again', async () => {
    const { writes, out } = terminal();
    let n = 0;
    await watchLoop({ intervalMs: 5, count: 3, json: false, out, frame: async () => ({ text: `frame ${++n}\n`, json: n }), onError: () => ({ text: 'x', json: null }) });
    expect(writes[0]).toBe(HIDE_CURSOR);
    expect(writes.slice(1, 4)).toEqual([1, 2, 3].map((i) => inPlaceFrame(`frame ${i}\n`, 60, 20)));
    expect(writes.at(-1)).toBe(SHOW_CURSOR);
  });

  it('keeps going after a failed refresh, showing the error in its place', async () => {
    const { writes, out } = terminal();
    let n = 0;
    await watchLoop({
      intervalMs: 5,
      count: 2,
      json: false,
      out,
      frame: async () => {
        n++;
        if (n === 1) throw new Error('API went away');
        return { text: 'back\n', json: null };
      },
      onError: (err) => ({ text: `cannot refresh: ${(err as Error).message}\n`, json: null }),
    });
    expect(writes[1]).toContain('cannot refresh: API went away');
    expect(writes[2]).toContain('back');
  });

  it('stops on SIGINT and restores the cursor', async () => {
    const { writes, out } = terminal();
    const listeners = process.listenerCount('SIGINT');
    const loop = watchLoop({ intervalMs: 60_000, json: false, out, frame: async () => ({ text: 'f\n', json: null }), onError: () => ({ text: '', json: null }) });
    await new Promise((r) => setTimeout(r, 20));
    process.emit('SIGINT');
    await loop;
    expect(writes.at(-1)).toBe(SHOW_CURSOR);
    expect(process.listenerCount('SIGINT')).toBe(listeners);
  });
});

describe('text helpers', () => {
  it('draws a sparkline scaled to the largest value', () => {
    expect(sparkline([0, 1, 2, 4, 8])).toBe('▁▁▂▄█');
    expect(sparkline([0, 0])).toBe('▁▁');
  });

  it('aligns table columns', () => {
    expect(table([['A', 'NUM'], ['long', '1']], new Set([1]))).toEqual(['A     NUM', 'long    1']);
  });
});
