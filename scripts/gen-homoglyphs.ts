// Regenerates lib/core/homoglyph-table.ts from the `unhomoglyph` package (a dev dependency):
//   npx tsx scripts/gen-homoglyphs.ts
// test/core/homoglyphs.test.ts fails when the shipped table and the package disagree.
import { writeFileSync } from 'node:fs';
import confusables from 'unhomoglyph/data.json' with { type: 'json' };
import { renderLookalikeTable } from '../lib/core/homoglyph-render.ts';

writeFileSync(new URL('../lib/core/homoglyph-table.ts', import.meta.url), renderLookalikeTable(confusables as Record<string, string>));
