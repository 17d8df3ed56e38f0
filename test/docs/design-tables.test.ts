import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CLASSES, RETRYABLE } from '../../lib/core/retry.ts';
import { TASK_STATES, TERMINAL_STATES, TRANSITIONS, type TransitionDef } from '../../lib/core/state-machine.ts';
import {
  DESIGN_PATH,
  GENERATORS,
  REGENERATE_COMMAND,
  REGION_NAMES,
  beginMarker,
  endMarker,
  extractRegion,
  regionText,
  renderDesign,
  renderErrorClassesTable,
  renderStateDiagram,
  renderStatesTable,
  renderTransitionsTable,
  replaceRegion,
} from '../../scripts/gen-design-tables.ts';

const design = readFileSync(DESIGN_PATH, 'utf8');

/** The data rows of a rendered markdown table (header and separator dropped). */
function tableRows(rendered: string): string[][] {
  return rendered
    .split('\n')
    .filter((line) => line.startsWith('| '))
    .slice(1)
    .map((line) =>
      line
        .slice(2, -2)
        .split(' | ')
        .map((c) => c.replace(/^`|`$/g, '')),
    );
}

describe('docs/DESIGN.md generated regions', () => {
  it.each(REGION_NAMES)('has exactly one "%s" region', (name) => {
    expect(design.split(beginMarker(name)).length - 1, `docs/DESIGN.md needs one ${beginMarker(name)} line`).toBe(1);
    expect(design.split(endMarker(name)).length - 1, `docs/DESIGN.md needs one ${endMarker(name)} line`).toBe(1);
  });

  it.each(REGION_NAMES)('region "%s" matches the code', (name) => {
    const actual = extractRegion(design, name);
    expect(actual, `docs/DESIGN.md has no well-formed "${name}" region; run \`${REGENERATE_COMMAND}\``).not.toBeNull();
    expect(
      actual,
      `docs/DESIGN.md region "${name}" is out of date with lib/core; run \`${REGENERATE_COMMAND}\` and commit the result`,
    ).toBe(regionText(GENERATORS[name]()));
  });

  it('is a fixed point of the generator', () => {
    expect(renderDesign(design), `docs/DESIGN.md is stale; run \`${REGENERATE_COMMAND}\``).toBe(
      design.replace(/\r\n/g, '\n'),
    );
  });

  it('is linked from the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toContain('](docs/DESIGN.md)');
  });
});

describe('renderTransitionsTable', () => {
  it('renders every transition, in table order, with all six columns', () => {
    const rows = tableRows(renderTransitionsTable());
    expect(rows).toHaveLength(TRANSITIONS.length);
    rows.forEach((row, i) => {
      const t = TRANSITIONS[i] as TransitionDef;
      expect(row).toEqual([t.from, t.event, t.to, t.actor, t.guard ?? '—', t.description]);
    });
  });

  it('changes when the table changes, so a stale document fails the region test', () => {
    const first = TRANSITIONS[0] as TransitionDef;
    const edited: TransitionDef[] = [{ ...first, to: 'executing' }, ...TRANSITIONS.slice(1)];
    expect(renderTransitionsTable(edited)).not.toBe(renderTransitionsTable());
    expect(renderTransitionsTable(TRANSITIONS.slice(1))).not.toBe(renderTransitionsTable());
    const stale = replaceRegion(design, 'transitions', renderTransitionsTable(edited));
    expect(extractRegion(stale, 'transitions')).not.toBe(regionText(GENERATORS.transitions()));
  });

  it('escapes pipes so a description cannot break the table', () => {
    const first = TRANSITIONS[0] as TransitionDef;
    const rendered = renderTransitionsTable([{ ...first, description: 'a | b' }]);
    expect(rendered).toContain('a \\| b');
  });
});

describe('renderStatesTable', () => {
  it('has one row per state, marking the terminal ones', () => {
    const rows = tableRows(renderStatesTable());
    expect(rows.map((r) => r[0])).toEqual([...TASK_STATES]);
    for (const row of rows) {
      expect(row[1]).toBe(TERMINAL_STATES.has(row[0] as (typeof TASK_STATES)[number]) ? 'yes' : 'no');
    }
  });
});

describe('renderStateDiagram', () => {
  const diagram = renderStateDiagram();

  it('is a mermaid stateDiagram-v2 block', () => {
    expect(diagram).toContain('```mermaid\nstateDiagram-v2\n');
    expect(diagram.trimEnd().endsWith('```')).toBe(true);
  });

  it('draws every transition: as an arrow, or as a note for an event that leaves every non-terminal state', () => {
    for (const t of TRANSITIONS) {
      const arrow = new RegExp(`^    ${t.from} --> ${t.to} : .*\\b${t.event}\\b`, 'm');
      const note = `note right of ${t.to} : ${t.event} (${t.actor}) from every non-terminal state`;
      expect(arrow.test(diagram) || diagram.includes(note), `${t.from} --${t.event}--> ${t.to}`).toBe(true);
    }
    for (const s of TERMINAL_STATES) expect(diagram).toContain(`    ${s} --> [*]`);
  });
});

describe('renderErrorClassesTable', () => {
  it('has one row per error class with its retryability from RETRYABLE', () => {
    const rows = tableRows(renderErrorClassesTable());
    expect(rows.map((r) => r[0])).toEqual([...ERROR_CLASSES]);
    for (const row of rows) {
      expect(row[1]).toBe(RETRYABLE.has(row[0] as (typeof ERROR_CLASSES)[number]) ? 'yes' : 'no');
    }
  });
});

describe('region editing', () => {
  const doc = ['# t', '', beginMarker('transitions'), 'old', endMarker('transitions'), 'tail', ''].join('\n');

  it('replaces only the text between the markers', () => {
    const next = replaceRegion(doc, 'transitions', 'new');
    expect(next).toBe(['# t', '', beginMarker('transitions'), '', 'new', '', endMarker('transitions'), 'tail', ''].join('\n'));
    expect(extractRegion(next, 'transitions')).toBe(regionText('new'));
    expect(replaceRegion(next, 'transitions', 'new')).toBe(next);
  });

  it('refuses a document with missing, repeated or reversed markers', () => {
    expect(() => replaceRegion('# nothing here', 'transitions', 'x')).toThrow(/lacks/);
    expect(() => replaceRegion(`${doc}${doc}`, 'transitions', 'x')).toThrow(/more than one/);
    const reversed = [endMarker('transitions'), beginMarker('transitions')].join('\n');
    expect(() => replaceRegion(reversed, 'transitions', 'x')).toThrow(/before/);
    expect(extractRegion('# nothing here', 'transitions')).toBeNull();
  });

  it('reads a document checked out with CRLF line endings', () => {
    const crlf = design.replace(/\n/g, '\r\n');
    expect(extractRegion(crlf, 'transitions')).toBe(regionText(GENERATORS.transitions()));
  });
});
