/**
 * A strict reader of the Prometheus text exposition format for tests, written from the format's rules rather than from
 * lib/core/prometheus.ts: it fails on anything a scraper would reject, so a page that parses here is a page Prometheus
 * takes.
 */

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  help: string;
  type: string;
  samples: ParsedSample[];
}

export interface ParsedPage {
  families: Map<string, ParsedFamily>;
  /** The value of the one sample with exactly these labels; throws when there is none. */
  value(name: string, labels?: Record<string, string>): number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const HELP_LINE = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_LINE = new RegExp(`^(${NAME})(\\{.*\\})? (\\S+)( -?\\d+)?$`);

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
}

/** `{a="x",b="y\"z"}` → record; the escapes are \\, \" and \n, and nothing else is allowed after a backslash. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 1; // after '{'
  const end = text.length - 1; // the closing '}'
  while (i < end) {
    const nameMatch = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (nameMatch === null) throw new Error(`bad label at ${text.slice(i)}`);
    const name = nameMatch[1] as string;
    i += nameMatch[0].length;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Error(`unterminated label value in ${text}`);
      if (c === '"') break;
      if (c === '\n') throw new Error('raw newline in a label value');
      if (c === '\\') {
        const next = text[i + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else throw new Error(`invalid escape \\${next} in ${text}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    i++; // closing quote
    if (name in labels) throw new Error(`label ${name} twice in ${text}`);
    labels[name] = value;
    if (text[i] === ',') i++;
    else if (i !== end) throw new Error(`expected , or } at ${text.slice(i)}`);
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === 'NaN') return NaN;
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad sample value ${text}`);
  return Number(text);
}

function familyOf(sampleName: string, families: Map<string, ParsedFamily>): ParsedFamily {
  const direct = families.get(sampleName);
  if (direct !== undefined && direct.type !== 'histogram') return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const family = families.get(sampleName.slice(0, -suffix.length));
    if (family !== undefined && family.type === 'histogram') return family;
  }
  throw new Error(`sample ${sampleName} belongs to no declared family (HELP and TYPE must come first)`);
}

function checkHistogram(family: ParsedFamily): void {
  const series = new Map<string, ParsedSample[]>();
  for (const s of family.samples) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const list = series.get(key) ?? [];
    list.push(s);
    series.set(key, list);
  }
  for (const samples of series.values()) {
    const buckets = samples.filter((s) => s.name === `${family.name}_bucket`);
    const sum = samples.filter((s) => s.name === `${family.name}_sum`);
    const count = samples.filter((s) => s.name === `${family.name}_count`);
    if (sum.length !== 1 || count.length !== 1) throw new Error(`${family.name}: each series needs one _sum and one _count`);
    if (buckets.some((b) => b.labels['le'] === undefined)) throw new Error(`${family.name}: a bucket without le`);
    const last = buckets[buckets.length - 1];
    if (last === undefined || last.labels['le'] !== '+Inf') throw new Error(`${family.name}: the last bucket must be le="+Inf"`);
    let previousLe = -Infinity;
    let previousCount = 0;
    for (const b of buckets) {
      const le = parseValue(b.labels['le'] as string);
      if (!(le > previousLe)) throw new Error(`${family.name}: le not increasing`);
      if (b.value < previousCount) throw new Error(`${family.name}: bucket counts not cumulative`);
      previousLe = le;
      previousCount = b.value;
    }
    if (last.value !== (count[0] as ParsedSample).value) throw new Error(`${family.name}: le="+Inf" differs from _count`);
  }
}

export function parseExposition(text: string): ParsedPage {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the page must end with a line feed');
  const families = new Map<string, ParsedFamily>();
  const helps = new Map<string, string>();
  for (const line of text.split('\n').slice(0, -1)) {
    if (line === '') continue;
    const help = HELP_LINE.exec(line);
    if (help !== null) {
      if (helps.has(help[1] as string)) throw new Error(`HELP for ${help[1]} twice`);
      helps.set(help[1] as string, unescapeHelp(help[2] as string));
      continue;
    }
    const type = TYPE_LINE.exec(line);
    if (type !== null) {
      const name = type[1] as string;
      if (families.has(name)) throw new Error(`TYPE for ${name} twice`);
      const helpText = helps.get(name);
      if (helpText === undefined) throw new Error(`TYPE for ${name} without a HELP line before it`);
      families.set(name, { name, help: helpText, type: type[2] as string, samples: [] });
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = SAMPLE_LINE.exec(line);
    if (sample === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const name = sample[1] as string;
    const labels = sample[2] === undefined ? {} : parseLabels(sample[2]);
    const family = familyOf(name, families);
    if (family.type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} is not named _total`);
    family.samples.push({ name, labels, value: parseValue(sample[3] as string) });
  }
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return {
    families,
    value(name: string, labels: Record<string, string> = {}): number {
      const wanted = JSON.stringify(Object.entries(labels).sort());
      for (const family of families.values()) {
        for (const s of family.samples) {
          if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted) return s.value;
        }
      }
      throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
    },
  };
}
