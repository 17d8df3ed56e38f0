/**
 * fte writes what a person needs to see into the task note itself (the plan to approve, why approval is needed, the
 * outcome), in sections it owns. A section is delimited by HTML comments that Obsidian does not render, so fte can
 * replace its own section on a later attempt without touching a word the person wrote.
 */

const begin = (name: string): string => `<!-- fte:${name} -->`;
const end = (name: string): string => `<!-- /fte:${name} -->`;

/** Put `text` under `heading` in the fte section `name`, replacing an earlier version of that section. */
export function upsertSection(note: string, name: string, heading: string, text: string): string {
  const block = `${begin(name)}\n## ${heading}\n\n${text.trim()}\n${end(name)}`;
  const start = note.indexOf(begin(name));
  const stop = start < 0 ? -1 : note.indexOf(end(name), start);
  if (start >= 0 && stop >= 0) return `${note.slice(0, start)}${block}${note.slice(stop + end(name).length)}`;
  return `${note.replace(/\s*$/, '')}\n\n${block}\n`;
}

/** The text of section `name` (without its heading), or null. */
export function readSection(note: string, name: string): string | null {
  const start = note.indexOf(begin(name));
  if (start < 0) return null;
  const stop = note.indexOf(end(name), start);
  if (stop < 0) return null;
  const inner = note.slice(start + begin(name).length, stop).trim();
  return inner.replace(/^## .*\n+/, '').trim();
}

/** The note as the person wrote it: every fte section removed. */
export function withoutSections(note: string): string {
  return note.replace(/\n*<!-- fte:([a-z_-]+) -->[\s\S]*?<!-- \/fte:\1 -->\n?/g, '\n').replace(/\s*$/, '\n');
}
