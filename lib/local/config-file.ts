import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { defaultConfig, type Config } from '../core/config.ts';
import { parseConfig } from '../core/config-yaml.ts';

export interface LoadedConfig {
  config: Config;
  /** The file the settings came from, or null when every setting is a default. */
  path: string | null;
}

/**
 * Where settings come from, first match wins: `--config FILE`, `$FTE_CONFIG`, `<vault>/.fte/orchestrator.yaml`,
 * else the defaults. A file named explicitly must exist; the vault's own file is optional.
 */
export function loadConfig(options: {
  configPath?: string | undefined;
  vault?: string | undefined;
  env?: NodeJS.ProcessEnv;
}): LoadedConfig {
  const env = options.env ?? process.env;
  const explicit = options.configPath ?? env['FTE_CONFIG'];
  let path: string | null = null;
  if (explicit !== undefined && explicit !== '') {
    if (!existsSync(explicit)) throw new ConfigError([{ path: '', message: `file not found: ${explicit}` }], explicit);
    path = explicit;
  } else if (options.vault !== undefined) {
    const inVault = join(options.vault, '.fte', 'orchestrator.yaml');
    if (existsSync(inVault)) path = inVault;
  }
  let config = path === null ? defaultConfig() : parseConfig(readFileSync(path, 'utf8'), env, path);
  const commandOverride = env['FTE_CLAUDE_COMMAND'];
  const overridden = commandOverride !== undefined && commandOverride !== '';
  if (overridden) {
    config = { ...config, orchestrator: { ...config.orchestrator, claude_command: commandOverride } };
  }
  const command = config.orchestrator.claude_command;
  // A relative path in a config file means "next to this file", so a vault's settings work from any working directory.
  if (path !== null && command.includes('/') && !isAbsolute(command) && !overridden) {
    config = { ...config, orchestrator: { ...config.orchestrator, claude_command: resolve(dirname(path), command) } };
  }
  return { config, path };
}
