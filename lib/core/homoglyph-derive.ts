/**
 * How fte's look-alike table is cut from Unicode's confusables table (UTS #39 "skeleton" prototypes, as the
 * `unhomoglyph` package ships it). Kept apart from the table itself so the generator (scripts/gen-homoglyphs.mjs) and
 * the test that re-derives the shipped table from the package use one rule, and the runtime bundles only the ~1,400
 * entries it needs instead of the package's 100 KB file.
 *
 * Only entries whose prototype is plain Latin letters are kept, because the approval keywords are Latin words and a
 * fold into other symbols would only add noise. Three departures from the skeleton, all so that folded text still
 * reads as the words it spells: ASCII itself is never remapped (the skeleton turns "m" into "rn" and "I" into "l",
 * which would change every keyword); the "rn" prototype of the m-like letters is written back as "m", the letter they
 * are mistaken for; and a capital whose prototype is "l" is an "i" (the skeleton files capital I under "l", so a
 * Cyrillic "І" in "WІRE" is one).
 */
export function deriveLatinLookalikes(confusables: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [from, to] of Object.entries(confusables)) {
    if (/^[\u0000-\u007f]$/.test(from)) continue;
    const prototype = to.toLowerCase();
    if (!/^[a-z]+$/.test(prototype)) continue;
    const capital = from !== from.toLowerCase();
    out[from] = prototype === 'rn' ? 'm' : prototype === 'l' && capital ? 'i' : prototype;
  }
  return out;
}
