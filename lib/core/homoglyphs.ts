import { LATIN_LOOKALIKES_BY_TARGET } from './homoglyph-table.ts';

/**
 * Letters of other scripts that a reader takes for Latin ones: a Cyrillic "а" or "р" in "раyment", a Ukrainian "і" in
 * "wіre", a Greek "ο" in "dеplοy". The table is generated from Unicode's confusables.txt (UTS #39) with the rule in
 * homoglyph-derive.ts; see homoglyph-table.ts.
 */
const LATIN_LOOKALIKES: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>();
  for (const [to, chars] of Object.entries(LATIN_LOOKALIKES_BY_TARGET)) for (const ch of chars) map.set(ch, to);
  return map;
})();

/**
 * `text` with every look-alike of a Latin letter written as that letter, in lower case (callers match
 * case-insensitively). A letter is looked up as written before its small form: a Greek capital "Υ" passes for "Y"
 * though its small "υ" passes for "u", and a Cyrillic "В" for "B" though "в" passes for no Latin letter.
 */
export function foldLookalikes(text: string): string {
  return text
    .replace(/[^\u0000-\u007f]/gu, (ch) => LATIN_LOOKALIKES.get(ch) ?? LATIN_LOOKALIKES.get(ch.toLowerCase()) ?? ch)
    .toLowerCase();
}

/** The scripts whose letters pass for each other in a word: UTS #39 calls a word mixing them "not highly restrictive". */
const CONFUSABLE_SCRIPTS = [
  ['Latin', /\p{Script=Latin}/u],
  ['Cyrillic', /\p{Script=Cyrillic}/u],
  ['Greek', /\p{Script=Greek}/u],
] as const;

export interface MixedScriptWord {
  readonly word: string;
  readonly scripts: readonly string[];
}

/**
 * Words whose letters come from more than one of Latin, Cyrillic and Greek. Honest text in any of these scripts keeps
 * to one per word; a word that mixes them is almost always a disguise ("pаyment" with a Cyrillic "а"), whether or not
 * it spells a keyword, so the mix itself is worth a person's look. Invisible characters and combining marks are
 * dropped first, so a zero-width space between the letters cannot cut the word in single-script pieces. Compatibility
 * forms are not folded: the micro sign in "5 µm" would become a Greek mu.
 */
export function mixedScriptWords(text: string, limit = 3): MixedScriptWord[] {
  const found: MixedScriptWord[] = [];
  // Most notes hold no Cyrillic or Greek at all; they need no word-by-word look.
  if (!/[\p{Script=Cyrillic}\p{Script=Greek}]/u.test(text)) return found;
  const words = text.replace(/[\p{Default_Ignorable_Code_Point}\p{M}]/gu, '').match(/\p{L}+/gu) ?? [];
  for (const word of words) {
    const scripts = CONFUSABLE_SCRIPTS.filter(([, re]) => re.test(word)).map(([name]) => name);
    if (scripts.length > 1 && !found.some((f) => f.word === word)) {
      found.push({ word, scripts });
      if (found.length >= limit) break;
    }
  }
  return found;
}
