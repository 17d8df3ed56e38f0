/**
 * Whole-word, case-insensitive phrase matching. The earlier system matched substrings, so "high" inside "highlight"
 * raised urgency and "wire" inside "wireframe" demanded approval; here a phrase matches only when letters and digits
 * do not continue it on either side. Whitespace inside a phrase matches any run of whitespace.
 */
const cache = new Map<string, RegExp>();

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function phraseRegExp(phrase: string): RegExp {
  let re = cache.get(phrase);
  if (re === undefined) {
    const words = phrase.trim().split(/\s+/).map(escapeRegExp).join('\\s+');
    re = new RegExp(`(?<![\\p{L}\\p{N}_])${words}(?![\\p{L}\\p{N}_])`, 'iu');
    cache.set(phrase, re);
  }
  return re;
}

export function containsPhrase(text: string, phrase: string): boolean {
  return phraseRegExp(phrase).test(text);
}

/** The phrases of `phrases` that occur in `text`, in the order given. */
export function matchingPhrases(text: string, phrases: readonly string[]): string[] {
  return phrases.filter((p) => containsPhrase(text, p));
}

const inflectedCache = new Map<string, RegExp>();

function inflections(word: string): string {
  const w = escapeRegExp(word);
  // -ing/-ed drop a final e (delete → deleting, deleted); -ment turns pay into payment; y → ies (copy → copies).
  const stem = word.endsWith('e') ? escapeRegExp(word.slice(0, -1)) : w;
  const yStem = word.endsWith('y') ? `|${escapeRegExp(word.slice(0, -1))}ies` : '';
  return `(?:${w}(?:s|es|d|ed|ing|ment|ments)?|${stem}(?:ing|ed)${yStem})`;
}

/**
 * Like `phraseRegExp`, but each word of the phrase also matches its common English inflections (deploy → deploying,
 * deployed, deployment; payment → payments; send email → sending emails). Used where a miss is the costly error — the
 * approval policy — while whole-word boundaries still keep "wire" out of "wireframe".
 */
export function inflectedPhraseRegExp(phrase: string): RegExp {
  let re = inflectedCache.get(phrase);
  if (re === undefined) {
    const words = phrase.trim().split(/\s+/).map(inflections).join('\\s+');
    re = new RegExp(`(?<![\\p{L}\\p{N}_])${words}(?![\\p{L}\\p{N}_])`, 'iu');
    inflectedCache.set(phrase, re);
  }
  return re;
}

/** The phrases of `phrases` that occur in `text` in any common inflection, in the order given. */
export function matchingInflectedPhrases(text: string, phrases: readonly string[]): string[] {
  return phrases.filter((p) => inflectedPhraseRegExp(p).test(text));
}
