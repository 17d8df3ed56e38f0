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
