import { parseDocument } from 'yaml';
import { validateConfig, type Config } from './config.ts';
import { ConfigError, type ConfigIssue } from './errors.ts';

/**
 * Reading `config/orchestrator.yaml`: YAML parsing and `${VAR}` substitution, then the schema in config.ts. Kept apart
 * from the schema so code that receives settings as JSON (the Lambdas, which get FTE_CONFIG_JSON) does not bundle the
 * YAML library.
 */

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE_VAR = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/;

/**
 * Replace `${VAR}` and `${VAR:-default}` inside string values (never in keys or comments, and never by textual
 * splicing, so a variable's value cannot inject YAML structure). A value that is exactly one reference takes the
 * referenced text's YAML scalar type, so `max_concurrent_tasks: ${FTE_MAX:-5}` is a number.
 */
function substitute(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  path: string[],
  issues: ConfigIssue[],
): unknown {
  if (typeof value === 'string') {
    const lookup = (name: string, fallback: string | undefined): string => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      issues.push({ path: path.join('.'), message: `environment variable ${name} is not set and has no default` });
      return '';
    };
    const whole = WHOLE_VAR.exec(value);
    if (whole) {
      const text = lookup(whole[1] as string, whole[2]);
      return scalarOf(text);
    }
    return value.replace(VAR, (_m, name: string, fallback: string | undefined) => lookup(name, fallback));
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, env, [...path, String(i)], issues));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substitute(v, env, [...path, k], issues)]),
    );
  }
  return value;
}

function scalarOf(text: string): unknown {
  if (text === '') return text;
  const doc = parseDocument(text);
  const js: unknown = doc.errors.length === 0 ? doc.toJS() : text;
  return js === null || typeof js === 'object' ? text : js;
}

/**
 * Parse and validate the YAML text of a config file. `source` names the file in error messages. Throws ConfigError
 * naming every bad key; never returns a partial config.
 */
export function parseConfig(
  text: string,
  env: Readonly<Record<string, string | undefined>> = {},
  source = 'config',
): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message}` })), source);
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ path: '', message: 'expected a mapping of settings at the top level' }], source);
  }
  const issues: ConfigIssue[] = [];
  const substituted = substitute(raw, env, [], issues);
  if (issues.length > 0) throw new ConfigError(issues, source);
  return validateConfig(substituted, source);
}
