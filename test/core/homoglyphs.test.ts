import { describe, expect, it } from 'vitest';
import { foldLookalikes, mixedScriptWords } from '../../lib/core/homoglyphs.ts';

describe('foldLookalikes', () => {
  it('writes Cyrillic and Greek look-alikes of Latin letters as those letters', () => {
    expect(foldLookalikes('\u0440\u0430yment')).toBe('payment');
    expect(foldLookalikes('w\u0456re')).toBe('wire');
    expect(foldLookalikes('W\u0406RE')).toBe('wire');
    expect(foldLookalikes('d\u0435pl\u03bfy')).toBe('deploy');
    expect(foldLookalikes('\u03a1\u0391\u03a5')).toBe('pay'); // Greek capitals
    expect(foldLookalikes('\u0412LOCK')).toBe('block'); // a Cyrillic В passes for B, though в passes for nothing
  });

  it('leaves ASCII as it reads (no skeleton "rn" for m, no "l" for I) and letters that pass for nothing alone', () => {
    expect(foldLookalikes('Payment Item 10')).toBe('payment item 10');
    expect(foldLookalikes('\u0431\u0436\u044f')).toBe('\u0431\u0436\u044f');
    expect(foldLookalikes('报告 📊')).toBe('报告 📊');
  });
});

describe('mixedScriptWords', () => {
  it('finds words that mix Latin, Cyrillic and Greek letters, once each, up to a limit', () => {
    expect(mixedScriptWords('pay the \u0440\u0430yment, the \u0440\u0430yment and d\u0435pl\u03bfy')).toEqual([
      { word: '\u0440\u0430yment', scripts: ['Latin', 'Cyrillic'] },
      { word: 'd\u0435pl\u03bfy', scripts: ['Latin', 'Cyrillic', 'Greek'] },
    ]);
    expect(mixedScriptWords('a\u0430 b\u0430 c\u0430 d\u0430', 2)).toHaveLength(2);
  });

  it('is not fooled by invisible characters or combining marks between the letters', () => {
    expect(mixedScriptWords('p\u200b\u0430\u00ady')).toEqual([{ word: 'p\u0430y', scripts: ['Latin', 'Cyrillic'] }]);
    expect(mixedScriptWords('p\u0301\u0430y')).toHaveLength(1);
  });

  it('passes text that keeps to one script a word, and signs that belong to no script', () => {
    expect(mixedScriptWords('Отчёт for Ann, Σύνοψη, iPhone-отзывы, 5 µm, Schrödinger')).toEqual([]);
  });
});

describe('the shipped look-alike table', () => {
  it('is exactly what scripts/gen-homoglyphs.ts derives from the unhomoglyph package (regenerate it if this fails)', async () => {
    const { readFileSync } = await import('node:fs');
    const { default: confusables } = await import('unhomoglyph/data.json', { with: { type: 'json' } });
    const { renderLookalikeTable } = await import('../../lib/core/homoglyph-render.ts');
    const shipped = readFileSync(new URL('../../lib/core/homoglyph-table.ts', import.meta.url), 'utf8');
    expect(shipped).toBe(renderLookalikeTable(confusables as Record<string, string>));
  });

  it('keeps every confusable of a Latin letter outside ASCII, and nothing else', async () => {
    const { default: confusables } = await import('unhomoglyph/data.json', { with: { type: 'json' } });
    const { deriveLatinLookalikes } = await import('../../lib/core/homoglyph-derive.ts');
    const table = deriveLatinLookalikes(confusables as Record<string, string>);
    const entries = Object.entries(table);
    expect(entries.length).toBeGreaterThan(1000);
    for (const [from, to] of entries) {
      expect(from).toMatch(/[^\u0000-\u007f]/);
      expect(to).toMatch(/^[a-z]+$/);
    }
    expect(table['\u0430']).toBe('a'); // Cyrillic а
    expect(table['\u0406']).toBe('i'); // Ukrainian capital І: the skeleton's "l" for a capital reads as I
  });
});
